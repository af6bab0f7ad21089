"""Incident investigation, the pure part: Scope → Correlate → Hypothesize.

:func:`investigate` turns gathered :class:`~stanch.core.models.Evidence` into :class:`Findings`:
the onset (a change point in the error/latency signal, else the reported start, else the Incident's
creation), impact and trend, the merged timeline, every change measured against the onset, and
hypotheses from :data:`~stanch.core.investigation.analysis.rules.RULES` ranked best first.
Missing metrics, failed collectors and a vanished workload become conditions and lower
confidence: a confident wrong answer is worse than "unknown".

No I/O and no clock: ``now`` and ``created_at`` come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from stanch.core.investigation.analysis.comparison import compare
from stanch.core.investigation.analysis.context import RuleContext, compare_revisions, pct
from stanch.core.investigation.analysis.correlation import all_changes, correlate
from stanch.core.investigation.analysis.findings import EventTuple, Findings
from stanch.core.investigation.analysis.log_signatures import (
    LogLine,
    group_log_signatures,
    is_error_line,
    normalise_log_message,
)
from stanch.core.investigation.analysis.milestones import Observed, conditions, events
from stanch.core.investigation.analysis.ranking import rank, top_text
from stanch.core.investigation.analysis.retime import retimed
from stanch.core.investigation.analysis.scope import (
    Onset,
    elevated_nodes,
    impact,
    resolve_onset,
    signal_impact,
    symptom_trend,
)
from stanch.core.investigation.analysis.series import ERROR_RATIO, LATENCY, points_of
from stanch.core.investigation.analysis.symptom import Symptom, detect
from stanch.core.investigation.analysis.timeline import TimelineInput, build_timeline
from stanch.core.models import (
    Evidence,
    Hypothesis,
    IncidentMitigation,
    IncidentSpec,
    IncidentStatus,
    MitigationPhase,
    OnsetSource,
    Scope,
    SliState,
    parse_duration,
)

LOG_COLLECTORS = frozenset({"logs", "log_signatures", "logSignatures"})
TARGET_COLLECTORS = frozenset({"target", "workload", "deployment"})


def target_missing(evidence: Evidence, partial: Sequence[str]) -> bool:
    """A Deployment always has a ReplicaSet; no revisions and no pods means it is gone (or the
    collector said so)."""
    if any(p in TARGET_COLLECTORS for p in partial):
        return True
    return not evidence.rollouts and evidence.pod_health.total == 0


def _onset_text(onset: Onset) -> str:
    shift = onset.shift
    if shift is None:
        return f"onset {onset.time.isoformat()} ({onset.source.value})"
    if onset.signal == ERROR_RATIO:
        levels = f"{pct(shift.baseline)} to {pct(shift.level)}"
    else:
        levels = f"{shift.baseline:.3g} to {shift.level:.3g}"
    return f"{onset.signal} rose from {levels} at {onset.time.isoformat()} (change point)"


def build_context(
    spec: IncidentSpec,
    evidence: Evidence,
    *,
    now: datetime,
    created_at: datetime,
    partial: Sequence[str] = (),
    onset: Onset | None = None,
) -> RuleContext:
    """Scope and correlations worked out once, for every rule to read; ``onset`` fixes the onset
    instead of detecting it (a diagnosis kept as of the first mitigation)."""
    lookback = parse_duration(spec.lookback)
    missing = target_missing(evidence, partial)
    symptom = detect(evidence, now, target_missing=missing)
    onset = onset or resolve_onset(spec, evidence, created_at, symptom.shifts)
    baseline = signal_impact(evidence, ERROR_RATIO, onset.time).before
    revisions = compare_revisions(evidence, baseline)
    by_revision = compare(evidence, "revision")
    by_node = compare(evidence, "node")
    scope_impact = impact(
        evidence,
        onset,
        revisions.bad | revisions.elevated | (by_revision.worse_groups() & by_revision.serving()),
        elevated_nodes(evidence, baseline),
    )
    changes = all_changes(evidence, spec.target.namespace)
    return RuleContext(
        spec=spec,
        evidence=evidence,
        now=now,
        onset=onset,
        trend=symptom_trend(evidence, onset),
        impact=scope_impact,
        correlated=correlate(changes, onset.time, lookback, onset_noun(onset, symptom)),
        lookback=lookback,
        metrics_available=bool(points_of(evidence, ERROR_RATIO) or points_of(evidence, LATENCY)),
        logs_available=not any(p in LOG_COLLECTORS for p in partial),
        target_missing=missing,
        partial=frozenset(partial),
        revisions=revisions,
        symptom=symptom,
        by_revision=by_revision,
        by_node=by_node,
    )


def onset_noun(onset: Onset, symptom: Symptom) -> str:
    """What began at the onset, for "… 4m after revision 7": never "error spike" without errors."""
    if onset.signal == ERROR_RATIO:
        return "error spike"
    if onset.signal == LATENCY:
        return "latency rise"
    if symptom.state_of(ERROR_RATIO) is SliState.ANOMALOUS:
        return "error spike"
    if symptom.anomalous:
        return symptom.noun()
    return "reported start" if onset.source is OnsetSource.STARTED_AT else "Incident"


ACTED = frozenset(
    {
        MitigationPhase.BASELINE,
        MitigationPhase.APPLYING,
        MitigationPhase.BAKING,
        MitigationPhase.SUCCEEDED,
        MitigationPhase.REVERTING,
        MitigationPhase.NEEDS_ATTENTION,
    }
)
"""Phases of a Mitigation about to change, changing or having changed the target. From Baseline on:
the Incident hears of a phase after the Mitigation has moved on, and the target is untouched while
the baseline is taken, so the diagnosis then is still the one acted on."""


@dataclass(frozen=True)
class KeptDiagnosis:
    mitigation: str
    onset: Onset
    hypotheses: list[Hypothesis]
    top: str | None
    acted_at: datetime | None = None
    """When the acting Mitigation was created: anything the signal shows after it may be its doing."""


def kept_diagnosis(
    mitigations: Sequence[IncidentMitigation], previous: IncidentStatus | None
) -> KeptDiagnosis | None:
    """The diagnosis a standing mitigation acted on, kept as it was.

    Once Stanch has changed the target, its own change is the newest one and the symptom it cured
    leaves the signal: re-ranking would blame the rollback and suggest rolling "back" to the bad
    revision. So while a Mitigation that acted on this Incident stands, the onset and hypotheses
    stay those of the refresh before it (evidence, impact and trend keep refreshing). A Mitigation
    that was reverted, failed, rejected or only dry-run releases the diagnosis: it was wrong, or
    nothing changed.
    """
    acting = next(
        (m for m in mitigations if not m.suggested and not m.dry_run and m.phase in ACTED),
        None,
    )
    if acting is None or previous is None or not previous.hypotheses or previous.scope is None:
        return None
    scope = previous.scope
    if scope.onset is None or scope.onset_source is None:
        return None
    return KeptDiagnosis(
        acting.name,
        Onset(scope.onset, scope.onset_source),
        list(previous.hypotheses),
        previous.top_hypothesis,
        acting.created_at,
    )


def kept_onset(kept: KeptDiagnosis, detected: Onset) -> Onset:
    """The kept onset, refined when it was only a guess.

    An Incident filed seconds after its errors began has too few elevated samples for a change
    point, so its onset is the report time or the creation time; a mitigation acting at once then
    froze that guess into the report. A change point found later that starts *before* the
    mitigation was created is the incident's own and replaces the guess; one after it could be the
    mitigation's doing and does not."""
    if kept.onset.source is OnsetSource.CHANGE_POINT or detected.source is not OnsetSource.CHANGE_POINT:
        return kept.onset
    if kept.acted_at is None or detected.time > kept.acted_at:
        return kept.onset
    return detected


def investigate(
    spec: IncidentSpec,
    evidence: Evidence,
    *,
    now: datetime,
    created_at: datetime,
    mitigations: Sequence[IncidentMitigation] = (),
    partial: Sequence[str] = (),
    previous: IncidentStatus | None = None,
) -> Findings:
    """Investigate one Incident.

    ``partial`` names the collectors that failed (each becomes part of the ``PartialEvidence``
    condition); ``previous`` is the Incident's current status, used only to keep condition
    transition times and to post Events for what changed since.
    """
    kept = kept_diagnosis(mitigations, previous)
    onset = None
    if kept is not None:
        onset = kept_onset(kept, resolve_onset(spec, evidence, created_at))
    ctx = build_context(spec, evidence, now=now, created_at=created_at, partial=partial, onset=onset)
    scope = Scope(
        onset=ctx.onset.time,
        onset_source=ctx.onset.source,
        impact=ctx.impact,
        trend=ctx.trend,
        symptom=ctx.symptom.model(),
    )
    if kept is not None:
        hypotheses = retimed(
            kept.hypotheses, kept.onset, ctx.onset, ctx.correlated, ctx.impact.error_ratio_before
        )
        top = top_text(hypotheses) if hypotheses != kept.hypotheses else kept.top
    else:
        hypotheses = rank(ctx)
        top = top_text(hypotheses)
    timeline = build_timeline(
        TimelineInput(spec, evidence, ctx.onset, ctx.correlated, mitigations, created_at, now, ctx.lookback)
    )
    seen = Observed(
        scope,
        hypotheses,
        top,
        partial,
        ctx.metrics_available,
        ctx.target_missing,
        _onset_text(ctx.onset),
        kept_for=kept.mitigation if kept is not None else None,
        symptom=scope.symptom,
    )
    return Findings(
        scope=scope,
        timeline=timeline,
        hypotheses=hypotheses,
        top_hypothesis=top,
        conditions=conditions(seen, previous, now),
        events=events(seen, previous),
    )


__all__ = [
    "EventTuple",
    "Findings",
    "LogLine",
    "RuleContext",
    "build_context",
    "group_log_signatures",
    "investigate",
    "is_error_line",
    "normalise_log_message",
]
