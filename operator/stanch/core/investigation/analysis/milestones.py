"""Conditions and milestone Events of an investigation, computed against the previous status so a
refresh that finds nothing new writes no transition and posts no Event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.core.investigation.analysis.context import clip
from stanch.core.investigation.analysis.findings import EventTuple
from stanch.core.models import (
    Condition,
    ConditionStatus,
    Hypothesis,
    IncidentStatus,
    OnsetSource,
    Scope,
    SliState,
    SymptomDetection,
    Trend,
)

ONSET_MOVED = timedelta(seconds=60)
"""An onset that moves less than this between refreshes is the same onset."""
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class Observed:
    """What this investigation saw, as far as conditions and Events care."""

    scope: Scope
    hypotheses: Sequence[Hypothesis]
    top: str | None
    partial: Sequence[str]
    metrics_available: bool
    target_missing: bool
    onset_text: str
    kept_for: str | None = None
    """The Mitigation whose diagnosis is kept (hypotheses not re-ranked), if any."""
    symptom: SymptomDetection | None = None
    """Whether the SLIs are anomalous at all."""


def _condition(
    previous: IncidentStatus | None,
    type_: str,
    holds: bool | None,
    reason: str,
    message: str,
    now: datetime,
) -> Condition:
    status = (
        ConditionStatus.UNKNOWN if holds is None else ConditionStatus.TRUE if holds else ConditionStatus.FALSE
    )
    before = next((c for c in (previous.conditions if previous else []) if c.type == type_), None)
    since = before.last_transition_time if before is not None and before.status == status else now
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=clip(message, MESSAGE_MAX),
        last_transition_time=since,
    )


SYMPTOM_REASONS = {SliState.ANOMALOUS: "Anomalous", SliState.NORMAL: "NoAnomaly", SliState.UNKNOWN: "Unknown"}


def symptom_condition(seen: Observed, previous: IncidentStatus | None, now: datetime) -> Condition:
    """``SymptomDetected``: True when an SLI is anomalous, False when errors, latency and
    availability were all seen and normal, Unknown when data was missing."""
    symptom = seen.symptom
    if symptom is None:
        return _condition(previous, "SymptomDetected", None, "Unknown", "not judged", now)
    holds = {SliState.ANOMALOUS: True, SliState.NORMAL: False}.get(symptom.state)
    return _condition(
        previous, "SymptomDetected", holds, SYMPTOM_REASONS[symptom.state], symptom.summary, now
    )


def conditions(seen: Observed, previous: IncidentStatus | None, now: datetime) -> list[Condition]:
    partial = sorted(set(seen.partial))
    return [
        symptom_condition(seen, previous, now),
        _condition(
            previous,
            "Investigated",
            True,
            "DiagnosisKept"
            if seen.kept_for
            else "Partial"
            if partial or seen.target_missing or not seen.metrics_available
            else "Complete",
            (seen.top or "no hypothesis")
            + (
                f" (diagnosis kept as Mitigation {seen.kept_for} acted on it; evidence keeps refreshing)"
                if seen.kept_for
                else ""
            ),
            now,
        ),
        _condition(
            previous,
            "PartialEvidence",
            bool(partial),
            "CollectorsFailed" if partial else "AllCollected",
            f"could not collect: {', '.join(partial)}" if partial else "every collector answered",
            now,
        ),
        _condition(
            previous,
            "NoMetrics",
            not seen.metrics_available,
            "NoSignalData" if not seen.metrics_available else "SignalData",
            "no error-ratio or latency series: onset and impact are estimates, confidence is lowered"
            if not seen.metrics_available
            else "error-ratio or latency series available",
            now,
        ),
        _condition(
            previous,
            "TargetMissing",
            seen.target_missing,
            "NotFound" if seen.target_missing else "Found",
            "the target workload has no revisions and no pods: it was deleted or never existed"
            if seen.target_missing
            else "the target workload exists",
            now,
        ),
    ]


def _onset_moved(seen: Observed, previous: IncidentStatus | None) -> bool:
    old = previous.scope if previous is not None else None
    if old is None or old.onset is None or old.onset_source is not OnsetSource.CHANGE_POINT:
        return True
    assert seen.scope.onset is not None
    return abs(seen.scope.onset - old.onset) >= ONSET_MOVED


def _was_true(previous: IncidentStatus | None, type_: str) -> bool:
    return any(
        c.type == type_ and c.status is ConditionStatus.TRUE
        for c in (previous.conditions if previous else [])
    )


def events(seen: Observed, previous: IncidentStatus | None) -> list[EventTuple]:
    """Milestones: onset found or moved, best hypothesis changed, evidence missing, trend turned."""
    out: list[EventTuple] = []
    if seen.scope.onset_source is OnsetSource.CHANGE_POINT and _onset_moved(seen, previous):
        out.append(("Normal", "OnsetDetected", clip(seen.onset_text, MESSAGE_MAX)))
    old_top = previous.hypotheses[0] if previous and previous.hypotheses else None
    new_top = seen.hypotheses[0] if seen.hypotheses else None
    if new_top is not None and (
        old_top is None or (old_top.category, old_top.statement) != (new_top.category, new_top.statement)
    ):
        out.append(("Normal", "HypothesisChanged", clip(f"top hypothesis: {seen.top}", MESSAGE_MAX)))
    old_partial = next(
        (
            c.message
            for c in (previous.conditions if previous else [])
            if c.type == "PartialEvidence" and c.status is ConditionStatus.TRUE
        ),
        None,
    )
    if seen.partial and old_partial != f"could not collect: {', '.join(sorted(set(seen.partial)))}":
        out.append(
            ("Warning", "PartialEvidence", f"could not collect: {', '.join(sorted(set(seen.partial)))}")
        )
    if not seen.metrics_available and not _was_true(previous, "NoMetrics"):
        out.append(("Warning", "NoMetrics", "no error-ratio or latency data: confidence is lowered"))
    if seen.target_missing and not _was_true(previous, "TargetMissing"):
        out.append(("Warning", "TargetMissing", "the target workload has no revisions and no pods"))
    old_trend = previous.scope.trend if previous is not None and previous.scope is not None else None
    if seen.scope.trend is not old_trend and seen.scope.trend in (Trend.WORSENING, Trend.RECOVERED):
        kind = "Warning" if seen.scope.trend is Trend.WORSENING else "Normal"
        out.append(
            (kind, f"Signal{seen.scope.trend.value}", f"the error signal is {seen.scope.trend.value.lower()}")
        )
    return out
