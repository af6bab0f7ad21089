"""Incident investigation, the pure part: Scope → Correlate → Hypothesize.

:func:`investigate` turns gathered :class:`~stanch.core.models.Evidence` into :class:`Findings`:
the onset (a change point in the error/latency signal, else the reported start, else the Incident's
creation), impact and trend, the merged timeline, every change measured against the onset, and
hypotheses from :data:`~stanch.core.analysis.rules.RULES` ranked best first. Missing metrics, failed
collectors and a vanished workload become conditions and lower confidence: a confident wrong answer
is worse than "unknown".

No I/O and no clock: ``now`` and ``created_at`` come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from stanch.core.analysis.context import RuleContext, compare_revisions, pct
from stanch.core.analysis.correlation import all_changes, correlate
from stanch.core.analysis.findings import EventTuple, Findings
from stanch.core.analysis.log_signatures import (
    LogLine,
    group_log_signatures,
    is_error_line,
    normalise_log_message,
)
from stanch.core.analysis.milestones import Observed, conditions, events
from stanch.core.analysis.ranking import rank, top_text
from stanch.core.analysis.scope import (
    Onset,
    elevated_nodes,
    impact,
    resolve_onset,
    signal_impact,
    symptom_trend,
)
from stanch.core.analysis.series import ERROR_RATIO, LATENCY, points_of
from stanch.core.analysis.timeline import TimelineInput, build_timeline
from stanch.core.models import (
    Evidence,
    IncidentMitigation,
    IncidentSpec,
    IncidentStatus,
    Scope,
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
) -> RuleContext:
    """Scope and correlations worked out once, for every rule to read."""
    lookback = parse_duration(spec.lookback)
    onset = resolve_onset(spec, evidence, created_at)
    baseline = signal_impact(evidence, ERROR_RATIO, onset.time).before
    revisions = compare_revisions(evidence, baseline)
    scope_impact = impact(
        evidence, onset, revisions.bad | revisions.elevated, elevated_nodes(evidence, baseline)
    )
    return RuleContext(
        spec=spec,
        evidence=evidence,
        now=now,
        onset=onset,
        trend=symptom_trend(evidence, onset),
        impact=scope_impact,
        correlated=correlate(all_changes(evidence, spec.target.namespace), onset.time, lookback),
        lookback=lookback,
        metrics_available=bool(points_of(evidence, ERROR_RATIO) or points_of(evidence, LATENCY)),
        logs_available=not any(p in LOG_COLLECTORS for p in partial),
        target_missing=target_missing(evidence, partial),
        partial=frozenset(partial),
        revisions=revisions,
    )


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
    ctx = build_context(spec, evidence, now=now, created_at=created_at, partial=partial)
    scope = Scope(
        onset=ctx.onset.time,
        onset_source=ctx.onset.source,
        impact=ctx.impact,
        trend=ctx.trend,
    )
    hypotheses = rank(ctx)
    top = top_text(hypotheses)
    timeline = build_timeline(
        TimelineInput(spec, evidence, ctx.onset, ctx.correlated, mitigations, created_at, now, ctx.lookback)
    )
    seen = Observed(
        scope, hypotheses, top, partial, ctx.metrics_available, ctx.target_missing, _onset_text(ctx.onset)
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
