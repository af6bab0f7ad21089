"""Recent Mitigations as rate limits and cooldowns see them: when each started and ended.

Read leniently from plain JSON: a half-written status must still count against a rate limit, so a
field we cannot read falls back to the earliest safe answer (the object's own timestamps) instead of
making the Mitigation invisible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.core.models.actions import ACTION_FIELDS, ActionKind
from stanch.core.models.mitigation import DRY_RUN_RULE, TERMINAL_PHASES, MitigationPhase

# Phases in which the target may already have been touched.
_STARTED = frozenset(
    {
        MitigationPhase.BASELINE,
        MitigationPhase.APPLYING,
        MitigationPhase.BAKING,
        MitigationPhase.SUCCEEDED,
        MitigationPhase.REVERTING,
        MitigationPhase.REVERTED,
    }
)


@dataclass(frozen=True)
class PastMitigation:
    """One Mitigation, reduced to what anti-flapping rules need."""

    name: str
    namespace: str
    target_namespace: str
    target_name: str
    action: ActionKind | None
    dry_run: bool
    phase: MitigationPhase | None
    created_at: datetime | None
    started_at: datetime | None
    """When it was allowed to act (None: never allowed, e.g. Rejected or still awaiting approval)."""
    ended_at: datetime | None
    """When it reached a terminal phase (None while active)."""

    @property
    def active(self) -> bool:
        """Holds (or is about to hold) its target: not terminal, and not a dry run."""
        return not self.dry_run and (self.phase is None or self.phase not in TERMINAL_PHASES)

    def on_target(self, namespace: str, name: str) -> bool:
        return self.target_namespace == namespace and self.target_name == name

    def display(self) -> str:
        return f"{self.namespace}/{self.name} ({self.phase.value if self.phase else 'Pending'})"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def past_mitigation(obj: Mapping[str, Any]) -> PastMitigation:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    namespace = str(meta.get("namespace", ""))
    target = spec.get("target") or {}
    action = next((kind for kind, attr in ACTION_FIELDS.items() if _wire(attr) in spec), None)
    try:
        phase = MitigationPhase(status["phase"]) if status.get("phase") else None
    except ValueError:
        phase = None
    created = parse_time(meta.get("creationTimestamp"))
    audit = [entry for entry in status.get("audit") or () if isinstance(entry, Mapping)]
    decision = status.get("policy") or {}
    decided = parse_time(decision.get("decidedAt"))

    started = next(
        (parse_time(e.get("time")) for e in audit if e.get("toPhase") in {p.value for p in _STARTED}),
        None,
    )
    if started is None:
        applied = status.get("applied") or {}
        if applied.get("at"):
            started = parse_time(applied["at"])
        elif phase in _STARTED or (
            phase in (None, MitigationPhase.PENDING) and decision.get("decision") == "Allow"
        ):
            # Allowed and about to act: it counts against a rate limit already.
            started = decided or created

    ended = None
    if phase in TERMINAL_PHASES:
        times = [parse_time(e.get("time")) for e in audit if e.get("toPhase") == phase.value]
        verdict = parse_time((status.get("verdict") or {}).get("decidedAt"))
        known = [t for t in (*times, verdict, decided, started, created) if t is not None]
        ended = max(known) if known else None
    return PastMitigation(
        name=str(meta.get("name", "")),
        namespace=namespace,
        target_namespace=str(target.get("namespace") or namespace),
        target_name=str(target.get("name", "")),
        action=action,
        dry_run=_dry_run(spec, decision),
        phase=phase,
        created_at=created,
        started_at=started,
        ended_at=ended,
    )


def _dry_run(spec: Mapping[str, Any], decision: Mapping[str, Any]) -> bool:
    """Whether it runs as a dry run: as the policy decided once it has (the machine runs that, see
    ``as_decided``), so a ``dryRun`` edited after the decision (the CRD refuses it; an older CRD did
    not) neither hides a real change from the one-at-a-time check and rate limits nor counts a dry
    run against them. Before a decision, the spec's."""
    if decision.get("decision"):
        return decision.get("rule") == DRY_RUN_RULE
    return bool(spec.get("dryRun", False))


def _wire(attr: str) -> str:
    head, *rest = attr.split("_")
    return head + "".join(part.title() for part in rest)
