"""Which Mitigation outcomes a human must hear about, grouped and rate-limited so that a bad hour
sends a handful of messages rather than hundreds.

Pure: the sink (``stanch.adapters.notify``) only posts what :func:`flush` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from stanch.core.policy.history import parse_time
from stanch.core.redaction import redact_text

NEEDS_HUMAN = ("AwaitingApproval", "NeedsAttention", "Reverted")
# A phase reached longer ago than this is not news (e.g. every AwaitingApproval seen after a restart).
FRESHNESS = timedelta(minutes=15)


@dataclass(frozen=True)
class Notice:
    key: str
    """``<namespace>/<name>/<phase>``: one notice per Mitigation and phase."""
    phase: str
    namespace: str
    name: str
    target: str
    message: str
    at: datetime


def notice_for(mitigation: Mapping[str, Any], now: datetime) -> Notice | None:
    """A notice when the Mitigation has just reached a phase that needs a human."""
    meta = mitigation.get("metadata") or {}
    status = mitigation.get("status") or {}
    phase = status.get("phase")
    if phase not in NEEDS_HUMAN:
        return None
    entered = [
        parse_time(e.get("time"))
        for e in status.get("audit") or ()
        if isinstance(e, Mapping) and e.get("toPhase") == phase
    ]
    times = [t for t in entered if t is not None]
    at = max(times) if times else parse_time(meta.get("creationTimestamp"))
    if at is None or now - at > FRESHNESS:
        return None
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    reasons = (status.get("policy") or {}).get("reasons") or []
    message = status.get("message") or (reasons[0] if reasons else "")
    return Notice(
        key=f"{namespace}/{name}/{phase}",
        phase=phase,
        namespace=namespace,
        name=name,
        target=str(status.get("target") or ""),
        message=redact_text(str(message))[:300],
        at=at,
    )


@dataclass(frozen=True)
class Limits:
    group_for: timedelta = timedelta(seconds=30)
    """Wait this long after the first pending notice so that its neighbours join the same message."""
    max_per_hour: int = 6
    """Messages per rolling hour; notices wait (and are counted) beyond that."""
    max_listed: int = 20
    """Notices spelled out per message; the rest are counted."""


@dataclass(frozen=True)
class Outbox:
    pending: tuple[Notice, ...] = ()
    overflow: int = 0
    """Notices dropped from ``pending`` (beyond 10 times max_listed), still reported as a count."""
    seen: frozenset[str] = frozenset()
    sent_at: tuple[datetime, ...] = ()
    first_queued: datetime | None = None


@dataclass(frozen=True)
class Batch:
    notices: tuple[Notice, ...]
    omitted: int


def offer(outbox: Outbox, notice: Notice, now: datetime, limits: Limits = Limits()) -> Outbox:
    """Queue a notice unless the same Mitigation and phase were already queued or sent."""
    if notice.key in outbox.seen:
        return outbox
    # `seen` is bounded by forgetting the oldest half; a repeat notice after that is harmless.
    seen = outbox.seen if len(outbox.seen) < 4096 else frozenset(list(outbox.seen)[2048:])
    pending = (*outbox.pending, notice)
    overflow = outbox.overflow
    cap = limits.max_listed * 10
    if len(pending) > cap:
        overflow += len(pending) - cap
        pending = pending[-cap:]
    first = outbox.first_queued if outbox.pending else now
    return replace(outbox, pending=pending, overflow=overflow, seen=seen | {notice.key}, first_queued=first)


def flush(outbox: Outbox, now: datetime, limits: Limits = Limits()) -> tuple[Outbox, Batch | None]:
    """A batch when notices have waited ``group_for`` and the hourly budget allows one."""
    if not outbox.pending:
        return outbox, None
    if outbox.first_queued is not None and now - outbox.first_queued < limits.group_for:
        return outbox, None
    recent = tuple(t for t in outbox.sent_at if now - t < timedelta(hours=1))
    if len(recent) >= limits.max_per_hour:
        return replace(outbox, sent_at=recent), None
    listed = outbox.pending[: limits.max_listed]
    omitted = len(outbox.pending) - len(listed) + outbox.overflow
    batch = Batch(listed, omitted)
    return Outbox(pending=(), overflow=0, seen=outbox.seen, sent_at=(*recent, now)), batch


def generic_payload(batch: Batch) -> dict[str, Any]:
    return {
        "source": "stanch",
        "notices": [
            {
                "phase": n.phase,
                "namespace": n.namespace,
                "mitigation": n.name,
                "target": n.target,
                "message": n.message,
                "at": n.at.isoformat(),
            }
            for n in batch.notices
        ],
        "omitted": batch.omitted,
    }


def slack_payload(batch: Batch) -> dict[str, Any]:
    """Slack incoming-webhook shape: a ``text`` fallback (mrkdwn)."""
    lines = [f"*Stanch: {len(batch.notices) + batch.omitted} mitigation(s) need a human*"]
    for n in batch.notices:
        lines.append(f"• `{n.namespace}/{n.name}` {n.phase} on {n.target or '?'}: {_slack_escape(n.message)}")
    if batch.omitted:
        lines.append(f"…and {batch.omitted} more (see `kubectl get mitigations -A`)")
    return {"text": "\n".join(lines)}


def _slack_escape(text: str) -> str:
    # Slack treats these three as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
