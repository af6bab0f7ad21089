"""``kubectl stanch audit MITIGATION``: what happened to a Mitigation, in time order, from both
records a cluster admin audits (design: "who asked, which policy rule allowed it, who approved, what
changed, why it reverted"): the status's append-only ``audit`` and the Kubernetes Events about the
object. The status survives the Events' retention (an hour by default); the Events carry what the
status has no room for. Neither is deduplicated against the other: each line says where it is from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stanch.core.console.text import NONE, one_line, stamp, table
from stanch.core.redaction import redact_text

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AuditLine:
    time: datetime | None
    source: str
    """``status`` or ``event``."""
    kind: str
    """The audit entry's event, or the Event's type (Normal/Warning)."""
    reason: str
    actor: str
    message: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat().replace("+00:00", "Z") if self.time else None,
            "source": self.source,
            "kind": self.kind,
            "reason": self.reason,
            "actor": self.actor,
            "message": self.message,
            "count": self.count,
        }


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def from_status(mitigation: Mapping[str, Any]) -> list[AuditLine]:
    entries = ((mitigation.get("status") or {}).get("audit")) or []
    out = []
    for e in entries:
        if not isinstance(e, Mapping):
            continue
        moved = ""
        if e.get("fromPhase") or e.get("toPhase"):
            moved = f"{e.get('fromPhase') or '-'} → {e.get('toPhase') or '-'}"
        out.append(
            AuditLine(
                time=_time(e.get("time")),
                source="status",
                kind=moved or "-",
                reason=str(e.get("event") or ""),
                actor=str(e.get("actor") or ""),
                message=redact_text(str(e.get("reason") or "")),
            )
        )
    return out


def from_events(events: Sequence[Mapping[str, Any]]) -> list[AuditLine]:
    out = []
    for ev in events:
        # A series' last occurrence is when the line happened last; eventTime for events.k8s.io.
        when = _time(ev.get("lastTimestamp")) or _time(ev.get("eventTime")) or _time(ev.get("firstTimestamp"))
        when = when or _time((ev.get("metadata") or {}).get("creationTimestamp"))
        source = ev.get("source") or {}
        actor = ev.get("reportingComponent") or source.get("component") or ""
        out.append(
            AuditLine(
                time=when,
                source="event",
                kind=str(ev.get("type") or "Normal"),
                reason=str(ev.get("reason") or ""),
                actor=str(actor),
                message=redact_text(str(ev.get("message") or "")),
                count=int(ev.get("count") or 1),
            )
        )
    return out


def audit_lines(mitigation: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> list[AuditLine]:
    """Both records merged in time order (stable: within one instant the status comes first, in its
    own order)."""
    lines = from_status(mitigation) + from_events(events)
    return sorted(lines, key=lambda line: line.time or _EPOCH)


def render_audit(lines: Sequence[AuditLine]) -> str:
    if not lines:
        return "No audit entries and no Events (Events expire after an hour by default).\n"
    rows = [
        [
            stamp(line.time) if line.time else NONE,
            line.source,
            line.kind,
            line.reason or NONE,
            line.actor or NONE,
            one_line(line.message) + (f" (x{line.count})" if line.count > 1 else ""),
        ]
        for line in lines
    ]
    return "\n".join(table(["TIME (UTC)", "SOURCE", "TYPE/PHASES", "REASON", "BY", "MESSAGE"], rows)) + "\n"
