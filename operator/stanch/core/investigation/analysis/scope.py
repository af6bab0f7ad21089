"""Scope: when it started (onset), how bad it is (impact) and which way it is going (trend)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from stanch.core.investigation.analysis.onset import EffectFloor, Shift, find_shift, floor_for
from stanch.core.investigation.analysis.series import (
    ERROR_RATIO,
    LATENCY,
    by_scope,
    mean,
    noise_sigma,
    overall,
    points_of,
    slope,
)
from stanch.core.models import (
    Evidence,
    ImpactSummary,
    IncidentSpec,
    MetricPoint,
    OnsetSource,
    Trend,
)

ONSET_SIGNALS = (ERROR_RATIO, LATENCY)
"""Symptom signals, in order of preference when two shifts start at the same sample."""
TREND_TAIL = 8
"""Samples at the end of the series that decide the trend (4 minutes at a 30 s step)."""


@dataclass(frozen=True)
class Onset:
    """The onset and where it came from; ``shift`` and ``signal`` only for a detected change point."""

    time: datetime
    source: OnsetSource
    signal: str | None = None
    shift: Shift | None = None


def resolve_onset(
    spec: IncidentSpec,
    evidence: Evidence,
    created_at: datetime,
    shifts: Mapping[str, Shift | None] | None = None,
) -> Onset:
    """The earliest change point among the symptom signals, else the reported start, else the
    Incident's creation time. ``shifts`` are change points already looked for, per signal."""
    found = []
    for rank, signal in enumerate(ONSET_SIGNALS):
        if shifts is not None and signal in shifts:
            shift = shifts[signal]
        else:
            shift = find_shift(points_of(evidence, signal), floor_for(signal))
        if shift is not None:
            found.append((shift.start_time, rank, signal, shift))
    if found:
        time, _, signal, shift = min(found, key=lambda f: (f[0], f[1]))
        return Onset(time, OnsetSource.CHANGE_POINT, signal, shift)
    if spec.started_at is not None:
        return Onset(spec.started_at, OnsetSource.STARTED_AT)
    return Onset(created_at, OnsetSource.CREATION_TIME)


@dataclass(frozen=True)
class SignalImpact:
    before: float | None
    now: float | None
    peak: float | None


def signal_impact(evidence: Evidence, signal: str, onset: datetime) -> SignalImpact:
    """Mean before the onset, latest value and worst value since the onset; the collector's own
    summary numbers fill in when there is no series."""
    points = points_of(evidence, signal)
    summary = overall(evidence, signal)
    before_pts = [p.value for p in points if p.time < onset]
    after_pts = [p.value for p in points if p.time >= onset]
    before = mean(before_pts) if before_pts else (summary.before if summary else None)
    now = points[-1].value if points else (summary.now if summary else None)
    peak = max(after_pts) if after_pts else (summary.peak if summary else None)
    return SignalImpact(before, now, peak)


def _ratio(value: float | None) -> float | None:
    return None if value is None else min(1.0, max(0.0, value))


def _seconds(value: float | None) -> float | None:
    return None if value is None else max(0.0, value)


def elevated_nodes(evidence: Evidence, baseline: float | None) -> frozenset[str]:
    """Nodes whose pods' error ratio is clearly above the error ratio before the onset."""
    if baseline is None:
        return frozenset()
    floor = floor_for(ERROR_RATIO)
    return frozenset(
        k
        for k, v in by_scope(evidence, ERROR_RATIO, "node").items()
        if v.current is not None and v.current - baseline >= floor.of(baseline)
    )


def affected_pods(
    evidence: Evidence, bad_revisions: Collection[str], bad_nodes: Collection[str] = ()
) -> int | None:
    """Pods not ready, plus the ready pods of revisions (or nodes) whose own metrics show the
    errors. A pod belongs to one revision and one node, so the two counts are never added: the
    breakdown that tells elevated pods from healthy ones wins (one bad node inside an elevated
    revision counts that node's pods), else the larger count."""
    health = evidence.pod_health
    if health.total == 0:
        return None
    by_revision = sum(g.ready for g in health.by_revision if g.key in bad_revisions)
    by_node = sum(g.ready for g in health.by_node if g.key in bad_nodes)
    node_splits = bool(by_node) and any(g.ready and g.key not in bad_nodes for g in health.by_node)
    revision_splits = bool(by_revision) and any(
        g.ready and g.key not in bad_revisions for g in health.by_revision
    )
    if node_splits and not revision_splits:
        elevated = by_node  # one node's pods err; the revision's ratio only averages them in
    elif revision_splits and not node_splits:
        elevated = by_revision
    else:
        elevated = max(by_revision, by_node)
    affected = health.total - health.ready + elevated
    return min(health.total, affected)


def impact(
    evidence: Evidence,
    onset: Onset,
    bad_revisions: Collection[str] = (),
    bad_nodes: Collection[str] = (),
) -> ImpactSummary:
    errors = signal_impact(evidence, ERROR_RATIO, onset.time)
    latency = signal_impact(evidence, LATENCY, onset.time)
    return ImpactSummary(
        error_ratio_before=_ratio(errors.before),
        error_ratio_now=_ratio(errors.now),
        error_ratio_peak=_ratio(errors.peak),
        latency_before_seconds=_seconds(latency.before),
        latency_now_seconds=_seconds(latency.now),
        latency_peak_seconds=_seconds(latency.peak),
        affected_pods=affected_pods(evidence, bad_revisions, bad_nodes),
        total_pods=evidence.pod_health.total if evidence.pod_health.total else None,
    )


def recovery_tolerance(shift: Shift, floor: EffectFloor) -> float:
    """How close to the baseline counts as back to normal."""
    return max(floor.of(shift.baseline) / 2, 2 * shift.sigma)


def recovered_at(points: Sequence[MetricPoint], shift: Shift, floor: EffectFloor) -> datetime | None:
    """When the signal came back to its baseline for good after the shift, if it did."""
    tolerance = recovery_tolerance(shift, floor)
    back: datetime | None = None
    for p in points[shift.start :]:
        if p.value - shift.baseline < tolerance:
            if back is None:
                back = p.time
        else:
            back = None
    if back is not None and back <= points[shift.start].time:
        return None  # never left the baseline at all after the rise started
    return back


def trend(points: Sequence[MetricPoint], shift: Shift | None, floor: EffectFloor) -> Trend:
    """Recovered (back at the baseline), Worsening/Improving (a significant slope over the tail),
    Stable, or Unknown without enough data."""
    if len(points) < 4:
        return Trend.UNKNOWN
    values = [p.value for p in points]
    if shift is not None and mean(values[-3:]) - shift.baseline < recovery_tolerance(shift, floor):
        return Trend.RECOVERED
    # Only the samples since the signal reached its new level: the rise itself (or a rate window
    # still filling) is the onset, not a trend.
    since = values[shift.end :] if shift is not None else values
    if len(since) < 4:
        return Trend.UNKNOWN
    tail = since[-TREND_TAIL:]
    b, se = slope(tail)
    sigma = noise_sigma(values)
    reference = shift.baseline if shift is not None else mean(values)
    total = b * (len(tail) - 1)
    if se < float("inf") and abs(b) > 3 * se and abs(total) >= max(floor.of(reference) / 2, 2 * sigma):
        return Trend.WORSENING if b > 0 else Trend.IMPROVING
    return Trend.STABLE


def symptom_trend(evidence: Evidence, onset: Onset) -> Trend:
    """Trend of the signal the onset came from (errors when no change point was found)."""
    signal = onset.signal or ERROR_RATIO
    points = points_of(evidence, signal)
    if not points and onset.signal is None:
        signal, points = LATENCY, points_of(evidence, LATENCY)
    return trend(points, onset.shift if onset.signal == signal else None, floor_for(signal))
