"""What the mitigation wiring resolves around the state machine: the guard, the signal templates,
the policy decision when no policy evaluator applies, and the Incident's view of a Mitigation.

Pure functions over data, so the Kopf handlers only read, call these and write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stanch.core.investigation.signals import SIGNAL_DESCRIPTIONS
from stanch.core.models import (
    DEFAULT_GUARD,
    DRY_RUN_RULE,
    TIMELINE_MAX,
    ActionKind,
    Direction,
    GuardError,
    GuardProblem,
    GuardSpec,
    IncidentMitigation,
    IncidentPhase,
    MitigationPhase,
    MitigationSpec,
    MitigationStatus,
    ObjectRef,
    OnsetSource,
    PolicyDecision,
    PolicyDecisionKind,
    ResolvedGuard,
    SignalKind,
    SignalTemplate,
    TimelineEntry,
    TimelineKind,
    guard_layers,
)

# How the built-in templates of stanch.core.investigation.signals read: a guard must know which way is bad.
_BUILTIN_KINDS: Mapping[str, tuple[SignalKind, Direction, str]] = {
    "error_ratio": (SignalKind.ERROR_RATIO, Direction.LOWER_IS_BETTER, "ratio"),
    "latency_p99": (SignalKind.LATENCY, Direction.LOWER_IS_BETTER, "seconds"),
    "throughput": (SignalKind.THROUGHPUT, Direction.HIGHER_IS_BETTER, "rps"),
    "cpu_vs_limit": (SignalKind.SATURATION, Direction.LOWER_IS_BETTER, "ratio"),
    "memory_vs_limit": (SignalKind.SATURATION, Direction.LOWER_IS_BETTER, "ratio"),
    "restarts": (SignalKind.RESTARTS, Direction.LOWER_IS_BETTER, "restarts"),
}


def signal_templates(queries: Mapping[str, str]) -> dict[str, SignalTemplate]:
    """The operator's configured templates (``--signals``) as typed templates. A custom name is read
    as a saturation-like signal where rising is bad, the safe reading for an unknown metric."""
    out: dict[str, SignalTemplate] = {}
    for name, query in queries.items():
        kind, direction, unit = _BUILTIN_KINDS.get(
            name, (SignalKind.SATURATION, Direction.LOWER_IS_BETTER, "")
        )
        out[name] = SignalTemplate(
            name=name,
            query=query,
            kind=kind,
            direction=direction,
            unit=unit or None,
            description=SIGNAL_DESCRIPTIONS.get(name),
        )
    return out


def mitigation_signals(
    operator_queries: Mapping[str, str], policy_templates: Mapping[str, SignalTemplate]
) -> dict[str, SignalTemplate]:
    """The signal templates one Mitigation runs under: the operator's (``--signals``), overridden
    name by name by the deciding policy's ``spec.signals``. A policy's template of a built-in name
    replaces its query *and* its kind, direction and threshold together: a threshold judged on a
    query it was not written for would be a wrong verdict, not a stricter one."""
    return {**signal_templates(operator_queries), **policy_templates}


def signal_queries(templates: Mapping[str, SignalTemplate]) -> dict[str, str]:
    """What the sampler queries for each signal name: exactly the PromQL of the templates the guard
    judges by (:func:`mitigation_signals`), so the query and its threshold never come from two
    different templates."""
    return {name: template.query for name, template in templates.items()}


def resolve_guard(
    spec: MitigationSpec, policy_defaults: GuardSpec | None = None, policy: str | None = None
) -> ResolvedGuard:
    """The Mitigation's guard over the policy's ``guardDefaults`` over :data:`BUILTIN_GUARD`, with
    the default signals filled in when nobody named any. Raises ``GuardError`` naming the field."""
    return ResolvedGuard.resolve(*guard_layers(spec.guard, policy_defaults, policy))


def resolve_guard_or_problem(
    spec: MitigationSpec, policy_defaults: GuardSpec | None = None, policy: str | None = None
) -> tuple[ResolvedGuard, GuardProblem | None]:
    """:func:`resolve_guard`, or the built-in guard and the problem when the merge is invalid.

    The reducer ends (or reverts) a Mitigation whose guard has a problem before any phase would judge
    with the stand-in guard; a deletion still completes. Raising here instead stalled every pass."""
    try:
        return resolve_guard(spec, policy_defaults, policy), None
    except GuardError as err:
        return DEFAULT_GUARD, err.problem


FROZEN_GUARD_INVALID = (
    "status.guard, the guard frozen when the policy decided, does not hold this version of Stanch's"
    " rules ({error}); no check can run under it: delete the Mitigation and create it again to run it"
    " under the guard it would get now"
)


def read_status(raw: Mapping[str, Any]) -> tuple[MitigationStatus, GuardProblem | None]:
    """A Mitigation's status as stored, and the problem with its frozen guard if it no longer
    validates (written under rules a later Stanch tightened). Such a guard is left out of the status
    rather than failing the whole read: the Mitigation can still be stopped, reverted and deleted,
    and the problem ends it visibly (``MachineState.guard_problem``) instead of every pass raising."""
    fields = {k: v for k, v in raw.items() if k != "kopf"}
    frozen = fields.pop("guard", None)
    status = MitigationStatus.model_validate(fields)
    if frozen is None:
        return status, None
    try:
        guard = ResolvedGuard.model_validate(frozen)
    except ValidationError as exc:
        error = "; ".join(
            f"{'.'.join(str(p) for p in ('status.guard', *e['loc']))}: {e['msg']}" for e in exc.errors()[:3]
        ).replace("Value error, ", "")
        return status, GuardProblem("guard", FROZEN_GUARD_INVALID.format(error=error))
    return status.model_copy(update={"guard": guard}), None


def running_guard(
    spec: MitigationSpec, status: MitigationStatus, policy_defaults: GuardSpec | None = None
) -> tuple[ResolvedGuard, GuardProblem | None]:
    """The guard a pass runs under: the one frozen in ``status.guard`` when the policy decided, so a
    later ``guardDefaults`` edit changes nothing; before the decision, or for a Mitigation decided by
    an older Stanch (no ``status.guard``), resolved as :func:`resolve_guard_or_problem` does."""
    if status.guard is not None:
        return status.guard, None
    policy = status.policy.policy if status.policy is not None else None
    return resolve_guard_or_problem(spec, policy_defaults, policy)


def as_decided(spec: MitigationSpec, status: MitigationStatus) -> MitigationSpec:
    """The spec with ``dryRun`` as it was when the policy decided (design invariant 12: what runs is
    exactly what the policy allowed). The CRD refuses an edit of ``dryRun``; this still holds where
    that rule does not (a cluster whose CRD predates it): a dry run, always allowed, switched to a
    real one between passes would act without any policy having allowed it; a real one switched to a
    dry run mid-bake would write nothing more, leaving its change and its lock behind."""
    if status.policy is None:
        return spec
    decided = status.policy.rule == DRY_RUN_RULE
    return spec if spec.dry_run == decided else spec.model_copy(update={"dry_run": decided})


NO_POLICY = "no policy evaluator: default deny (design invariant 4)"


def default_decision(spec: MitigationSpec, now: datetime) -> PolicyDecision:
    """The decision when no policy applies: dry run is always allowed, everything else is denied."""
    if spec.dry_run:
        return PolicyDecision(
            decision=PolicyDecisionKind.ALLOW,
            rule=DRY_RUN_RULE,
            reasons=["dry run is always allowed: it records the plan and changes nothing"],
            decided_at=now,
        )
    return PolicyDecision(
        decision=PolicyDecisionKind.DENY,
        reasons=[f"{NO_POLICY}; only dryRun mitigations are allowed without a matching policy"],
        decided_at=now,
    )


def action_of(spec: MitigationSpec) -> ActionKind:
    """The one action a spec sets."""
    for kind, field in (
        (ActionKind.ROLLBACK, spec.rollback),
        (ActionKind.SCALE, spec.scale),
        (ActionKind.RESTART, spec.restart),
        (ActionKind.CANARY, spec.canary),
        (ActionKind.CONFIG_TOGGLE, spec.config_toggle),
        (ActionKind.EVACUATE, spec.evacuate),
        (ActionKind.PAUSE, spec.pause),
        (ActionKind.AUTOSCALER, spec.autoscaler),
    ):
        if field is not None:
            return kind
    raise ValueError("the Mitigation sets no action")


def incident_entry(
    name: str, spec: MitigationSpec, status: MitigationStatus, created_at: datetime | None
) -> IncidentMitigation:
    """How the Incident lists this Mitigation (the investigation places it on the timeline by
    ``createdAt`` when it rebuilds the timeline)."""
    return IncidentMitigation(
        name=name,
        action=action_of(spec),
        phase=status.phase,
        verdict=status.verdict.result if status.verdict else None,
        created_by=status.requested_by,
        created_at=created_at,
        dry_run=spec.dry_run,
    )


def phase_summary(
    name: str, spec: MitigationSpec, before: MitigationPhase | None, status: MitigationStatus
) -> str:
    """One timeline line for a phase change, with the reason when status has one."""
    after = status.phase.value if status.phase else "unknown"
    moved = f"{before.value} → {after}" if before else after
    reason = status.message or (status.verdict.reason if status.verdict else "")
    line = f"Mitigation {name} ({action_of(spec).value}): {moved}"
    return (f"{line}: {reason}" if reason else line)[:512]


def link_into_incident(
    incident_status: Mapping[str, Any] | None,
    entry: IncidentMitigation,
    timeline: TimelineEntry | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Incident's ``status.mitigations`` with ``entry`` upserted by name, and its
    ``status.timeline`` with ``timeline`` appended in time order (both capped like the schema)."""
    current = dict(incident_status or {})
    mitigations: list[dict[str, Any]] = [dict(m) for m in current.get("mitigations") or []]
    wire = entry.to_dict()
    for i, existing in enumerate(mitigations):
        if existing.get("name") == entry.name:
            mitigations[i] = {**existing, **wire}
            break
    else:
        mitigations.append(wire)
    mitigations = mitigations[-20:]
    items: list[dict[str, Any]] = [dict(t) for t in current.get("timeline") or []]
    if timeline is not None:
        items.append(timeline.to_dict())
        items.sort(key=lambda t: str(t.get("time", "")))
    return mitigations, items[-TIMELINE_MAX:]


def timeline_entry(
    now: datetime, namespace: str, name: str, uid: str | None, summary: str, details: Mapping[str, str]
) -> TimelineEntry:
    return TimelineEntry(
        time=now,
        kind=TimelineKind.MITIGATION,
        summary=summary,
        object=ObjectRef(kind="Mitigation", name=name, namespace=namespace, uid=uid),
        details={k: v[:512] for k, v in list(details.items())[:16]},
    )


def names(signals: Sequence[Any]) -> tuple[str, ...]:
    """Signal names from a guard's ``signals`` list."""
    return tuple(s.name for s in signals)


@dataclass(frozen=True)
class IncidentFacts:
    """What a Mitigation needs from its linked Incident."""

    resolved: bool = False
    onset: datetime | None = None
    """A detected change point or the reported start; the Incident's creation time is not an onset
    (the errors may have begun long before anyone filed it)."""


def incident_facts(incident: Mapping[str, Any] | None) -> IncidentFacts:
    if not incident:
        return IncidentFacts()
    resolved = bool((incident.get("spec") or {}).get("resolved"))
    scope = (incident.get("status") or {}).get("scope") or {}
    onset = None
    if scope.get("onsetSource") in (OnsetSource.CHANGE_POINT.value, OnsetSource.STARTED_AT.value):
        try:
            onset = datetime.fromisoformat(str(scope.get("onset")))
        except ValueError:
            onset = None
        if onset is not None and onset.tzinfo is None:
            onset = None  # an onset without a zone cannot be placed
    return IncidentFacts(resolved=resolved, onset=onset)


UNDER_WAY = frozenset(
    {
        MitigationPhase.PENDING,
        MitigationPhase.AWAITING_APPROVAL,
        MitigationPhase.BASELINE,
        MitigationPhase.APPLYING,
        MitigationPhase.BAKING,
        MitigationPhase.REVERTING,
        MitigationPhase.NEEDS_ATTENTION,
    }
)
"""A Mitigation in one of these phases is still being carried out (or needs a human to finish)."""


def incident_phase(
    current: IncidentPhase | None, resolved: bool, mitigations: Sequence[IncidentMitigation]
) -> IncidentPhase:
    """Where the Incident stands, from its mitigations: ``Mitigating`` while one is under way,
    ``Monitoring`` once one succeeded and none is under way (the fix holds; is it over?),
    ``Investigating`` otherwise. ``Resolved`` only by the human's ``spec.resolved``, and a reopened
    Incident is investigated again. Suggested-only and dry-run Mitigations change nothing, so they
    do not move the phase."""
    if resolved and current is IncidentPhase.RESOLVED:
        return IncidentPhase.RESOLVED
    real = [m for m in mitigations if not m.suggested and not m.dry_run]
    if any(m.phase in UNDER_WAY for m in real):
        return IncidentPhase.MITIGATING
    if any(m.phase is MitigationPhase.SUCCEEDED for m in real):
        return IncidentPhase.MONITORING
    return IncidentPhase.INVESTIGATING


def phase_after_link(incident: Mapping[str, Any], mitigations: Sequence[Mapping[str, Any]]) -> IncidentPhase:
    """:func:`incident_phase` for an Incident as the API returns it and its linked mitigations as
    :func:`link_into_incident` wrote them."""
    raw = (incident.get("status") or {}).get("phase")
    current = IncidentPhase(raw) if raw in {p.value for p in IncidentPhase} else None
    resolved = bool((incident.get("spec") or {}).get("resolved"))
    return incident_phase(current, resolved, [IncidentMitigation.model_validate(m) for m in mitigations])
