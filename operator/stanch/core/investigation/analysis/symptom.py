"""Detection: is anything wrong with the target at all? A claim about the symptom, made before any
cause is blamed.

Each SLI is judged against its own baseline inside the window — errors and latency by a change
point (or, too early for one, by the latest samples against the median before them), saturation by
a rise towards the limit, availability by ready against desired pods and failing pods, the rollout
by the Deployment's own progress. An SLI without data is ``Unknown``, never ``Normal``: only when
errors, latency and availability were all seen, all normal, is the verdict "no anomaly" — and then
nothing is blamed and nothing is suggested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from stanch.core.investigation.analysis.onset import EffectFloor, Shift, find_shift, floor_for
from stanch.core.investigation.analysis.scope import recovered_at
from stanch.core.investigation.analysis.series import (
    CPU,
    ERROR_RATIO,
    LATENCY,
    MEMORY,
    median,
    noise_sigma,
    overall,
    points_of,
)
from stanch.core.models import (
    Evidence,
    MetricPoint,
    PodHealth,
    SliCheck,
    SliState,
    SymptomDetection,
    WorkloadStatus,
    format_duration,
)

AVAILABILITY = "availability"
ROLLOUT = "rollout"
RESTARTS = "restarts"
REQUIRED = (ERROR_RATIO, LATENCY, AVAILABILITY)
"""SLIs that must all be seen and normal before "no anomaly" is said."""
SATURATION = (CPU, MEMORY)
MIN_SAMPLES = 4
"""Fewer samples than this say nothing about a baseline."""
HIGH_ERRORS = 0.05
"""An error ratio this high throughout the window is a symptom even with no healthier stretch
inside the window to compare with (the incident began before it)."""
RISING_SIGMAS = 4.0
"""The latest samples must stand this many noise sigmas above the median before them, as well as the
effect floor, to count as a rise too young for a change point."""
YOUNG = 2
"""Samples at the end of the series that must all be elevated for such a rise."""
SATURATED = 0.9
"""Usage over limit from which a pod is close to throttling (CPU) or to an OOM kill (memory)."""
SATURATION_RISE = 0.1
"""…and how much it must have risen in the window to be an anomaly rather than its usual level."""
PINNED = 0.98
STUCK_AFTER = timedelta(minutes=10)
"""A rollout whose new pods are still not all ready this long after it began is stuck, whatever the
Deployment's progress deadline says."""
RUNNING_FAILURES = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "StartError",
        "Unschedulable",
        "Evicted",
        "NodeLost",
        "Failed",
    }
)
"""Reasons that describe a pod's state now."""
PAST_FAILURES = frozenset({"OOMKilled", "Error"})
"""Reasons that may be the last termination of a pod that restarted long ago: a symptom only when
restarts happen inside the window."""


@dataclass(frozen=True)
class Symptom:
    """The verdict and every SLI looked at."""

    state: SliState
    checks: Sequence[SliCheck] = ()
    window: tuple[datetime, datetime] | None = None
    shifts: Mapping[str, Shift | None] = field(default_factory=dict)
    """Change points looked for per signal (None: looked for, none found)."""

    @property
    def anomalous(self) -> list[SliCheck]:
        return [c for c in self.checks if c.state is SliState.ANOMALOUS]

    def state_of(self, sli: str) -> SliState:
        return next((c.state for c in self.checks if c.sli == sli), SliState.UNKNOWN)

    def noun(self) -> str:
        """What went wrong, for sentences like "the … began 4m after revision 7": the errors only
        when the error ratio is what is anomalous."""
        words = {
            ERROR_RATIO: "errors",
            LATENCY: "latency rise",
            AVAILABILITY: "unavailability",
            ROLLOUT: "stalled rollout",
            CPU: "CPU saturation",
            MEMORY: "memory saturation",
        }
        found = [words[c.sli] for c in self.anomalous if c.sli in words]
        return " and ".join(found[:2]) if found else "symptom"

    def summary(self) -> str:
        looked = ", ".join(f"{c.sli} {c.state.value.lower()}" for c in self.checks)
        if self.state is SliState.ANOMALOUS:
            head = "anomalous: " + "; ".join(f"{c.sli}: {c.detail}" for c in self.anomalous)
        elif self.state is SliState.NORMAL:
            head = "no anomaly: errors, latency and availability are at their baseline"
        else:
            missing = [s for s in REQUIRED if self.state_of(s) is SliState.UNKNOWN]
            head = f"unknown: no anomaly seen, but {', '.join(missing) or 'some SLIs'} could not be judged"
        window = ""
        if self.window is not None:
            start, end = self.window
            window = f" {format_duration(end - start)} of data ({start.isoformat()} to {end.isoformat()})"
        return f"{head}. Looked at{window}: {looked}"

    def model(self) -> SymptomDetection:
        return SymptomDetection(
            state=self.state,
            summary=self.summary()[:1024],
            window_start=self.window[0] if self.window else None,
            window_end=self.window[1] if self.window else None,
            checks=list(self.checks),
        )


def _fmt(signal: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if signal == ERROR_RATIO:
        return f"{value * 100:.1f}%"
    if signal == LATENCY:
        return f"{value:.3g}s"
    if signal in SATURATION:
        return f"{value * 100:.0f}% of the limit"
    return f"{value:.3g}"


def _span(points: Sequence[MetricPoint]) -> str:
    return f"{len(points)} samples over {format_duration(points[-1].time - points[0].time)}"


def _check(sli: str, state: SliState, detail: str) -> SliCheck:
    return SliCheck(sli=sli, state=state, detail=detail[:512])


def _series_check(
    evidence: Evidence, signal: str, floor: EffectFloor
) -> tuple[SliCheck, Shift | None, list[MetricPoint]]:
    """Errors or latency: a change point, else a young rise in the latest sample, else (errors) a
    level high throughout; normal otherwise."""
    points = points_of(evidence, signal)
    summary = overall(evidence, signal)
    if not points:
        why = (summary.error if summary is not None else None) or "not collected"
        return _check(signal, SliState.UNKNOWN, f"no data ({why})"), None, points
    if len(points) < MIN_SAMPLES:
        return _check(signal, SliState.UNKNOWN, f"only {len(points)} sample(s): no baseline"), None, points
    values = [p.value for p in points]
    shift = find_shift(points, floor)
    if shift is not None:
        back = recovered_at(points, shift, floor)
        detail = (
            f"rose from {_fmt(signal, shift.baseline)} to {_fmt(signal, shift.level)} at "
            f"{shift.start_time.isoformat()} (change point; {_span(points)})"
        )
        if back is not None:
            detail += f"; back at its baseline since {back.isoformat()}"
        return _check(signal, SliState.ANOMALOUS, detail), shift, points
    # The last two samples, not one: a p99 read off histogram buckets jumps a bucket now and then.
    earlier = values[:-YOUNG]
    base = median(earlier)
    rise = min(values[-YOUNG:]) - base
    if rise >= floor.of(base) and rise >= RISING_SIGMAS * noise_sigma(earlier):
        detail = (
            f"latest samples {_fmt(signal, values[-YOUNG])}, {_fmt(signal, values[-1])} against "
            f"{_fmt(signal, base)} before them: rising, too recently for a change point ({_span(points)})"
        )
        return _check(signal, SliState.ANOMALOUS, detail), None, points
    level = median(values)
    if signal == ERROR_RATIO and level >= HIGH_ERRORS:
        detail = f"{_fmt(signal, level)} throughout ({_span(points)}): no healthy stretch in the window"
        return _check(signal, SliState.ANOMALOUS, detail), None, points
    detail = (
        f"{_fmt(signal, values[-1])} now, {_fmt(signal, base)} median before; no change point "
        f"({_span(points)})"
    )
    return _check(signal, SliState.NORMAL, detail), None, points


def _saturation_check(evidence: Evidence, signal: str) -> tuple[SliCheck | None, Shift | None]:
    """Busiest pod's usage over its limit: anomalous when near the limit after a rise (or pinned
    at it); a steady high level is that workload's normal."""
    points = points_of(evidence, signal)
    if overall(evidence, signal) is None:
        return None, None
    if len(points) < MIN_SAMPLES:
        return _check(signal, SliState.UNKNOWN, "no data (no limit set, or not collected)"), None
    values = [p.value for p in points]
    first = median(values[: max(MIN_SAMPLES, len(values) // 4)])
    now = values[-1]
    shift = None
    rose = now - first >= SATURATION_RISE
    if now >= SATURATED and not rose and now < PINNED:
        # Only a level near the limit is worth the change-point search.
        shift = find_shift(points, floor_for(signal))
        rose = shift is not None
    if now >= PINNED or (now >= SATURATED and rose):
        detail = f"busiest pod at {_fmt(signal, now)}, from {_fmt(signal, first)} ({_span(points)})"
        return _check(signal, SliState.ANOMALOUS, detail), shift
    detail = f"busiest pod at {_fmt(signal, now)}, {_fmt(signal, first)} at the start ({_span(points)})"
    return _check(signal, SliState.NORMAL, detail), None


def _restarting(evidence: Evidence) -> bool | None:
    """Whether containers restarted inside the window (None: no restarts signal to tell)."""
    points = points_of(evidence, RESTARTS)
    if not points:
        return None
    return max(p.value for p in points) > 0


def _rollout_under_way(evidence: Evidence) -> bool:
    workload = evidence.workload
    if workload is not None and workload.progressing_reason == "ReplicaSetUpdated":
        return True
    return sum(1 for g in evidence.pod_health.by_revision if g.total) > 1


def _availability_check(evidence: Evidence) -> SliCheck:
    health: PodHealth = evidence.pod_health
    workload: WorkloadStatus | None = evidence.workload
    desired = workload.desired if workload is not None else None
    now_failing = {r.reason: r.count for r in health.reasons if r.reason in RUNNING_FAILURES and r.count}
    past = {r.reason: r.count for r in health.reasons if r.reason in PAST_FAILURES and r.count}
    of = f"{health.ready}/{health.total} pods ready" + (
        f" (desired {desired})" if desired is not None else ""
    )
    if now_failing:
        reasons = ", ".join(f"{r}x{c}" for r, c in now_failing.items())
        return _check(AVAILABILITY, SliState.ANOMALOUS, f"{of}; failing: {reasons}")
    if past:
        restarting = _restarting(evidence)
        reasons = ", ".join(f"{r}x{c}" for r, c in past.items())
        if restarting:
            return _check(AVAILABILITY, SliState.ANOMALOUS, f"{of}; restarting in the window: {reasons}")
        if restarting is None:
            return _check(
                AVAILABILITY,
                SliState.UNKNOWN,
                f"{of}; terminated before ({reasons}), no restarts signal to date it",
            )
    if workload is None and health.total == 0:
        return _check(AVAILABILITY, SliState.UNKNOWN, "no Deployment status and no pods")
    if health.ready == 0 and (health.total or desired == 0):
        return _check(AVAILABILITY, SliState.ANOMALOUS, f"{of}: nothing serves")
    wanted = desired if desired is not None else health.total
    if health.ready < wanted and not _rollout_under_way(evidence):
        return _check(AVAILABILITY, SliState.ANOMALOUS, f"{of}, no rollout under way")
    return _check(AVAILABILITY, SliState.NORMAL, f"{of}, no failing pod")


def _rollout_check(evidence: Evidence, now: datetime) -> SliCheck:
    workload = evidence.workload
    current = next((r for r in evidence.rollouts if r.current), None)
    if workload is None or current is None:
        return _check(ROLLOUT, SliState.UNKNOWN, "no Deployment status")
    rev = f"revision {current.revision}"
    if workload.progressing_reason == "ProgressDeadlineExceeded":
        return _check(
            ROLLOUT, SliState.ANOMALOUS, f"rollout to {rev} stuck: {workload.message or 'deadline exceeded'}"
        )
    group = next((g for g in evidence.pod_health.by_revision if g.key == str(current.revision)), None)
    failing = [r.reason for r in (group.reasons if group else []) if r.reason in RUNNING_FAILURES]
    if _rollout_under_way(evidence):
        if failing:
            return _check(
                ROLLOUT,
                SliState.ANOMALOUS,
                f"rollout to {rev} not progressing: its pods {', '.join(failing)}",
            )
        began = current.since
        if (
            began is not None
            and now - began >= STUCK_AFTER
            and group is not None
            and group.ready < group.total
        ):
            return _check(
                ROLLOUT,
                SliState.ANOMALOUS,
                f"rollout to {rev} under way for {format_duration(now - began)}: "
                f"{group.ready}/{group.total} of its pods ready",
            )
        return _check(ROLLOUT, SliState.NORMAL, f"rollout to {rev} under way ({workload.updated} updated)")
    if current.completed_at is not None:
        return _check(
            ROLLOUT, SliState.NORMAL, f"rollout to {rev} completed at {current.completed_at.isoformat()}"
        )
    return _check(ROLLOUT, SliState.NORMAL, f"{rev} serves; no rollout under way")


def detect(evidence: Evidence, now: datetime, *, target_missing: bool = False) -> Symptom:
    """Judge every SLI; the verdict is Anomalous if any is, Normal only if the required ones were
    all seen and normal."""
    checks: list[SliCheck] = []
    shifts: dict[str, Shift | None] = {}
    starts: list[datetime] = []
    for signal in (ERROR_RATIO, LATENCY):
        check, shift, points = _series_check(evidence, signal, floor_for(signal))
        checks.append(check)
        if len(points) >= MIN_SAMPLES:
            shifts[signal] = shift
        if points:
            starts.append(points[0].time)
    for signal in SATURATION:
        sat, shift = _saturation_check(evidence, signal)
        if sat is not None:
            checks.append(sat)
    if target_missing:
        checks.append(_check(AVAILABILITY, SliState.UNKNOWN, "the target workload is missing"))
    else:
        checks.append(_availability_check(evidence))
        checks.append(_rollout_check(evidence, now))
    window = (min(starts), now) if starts else None
    by_sli = {c.sli: c.state for c in checks}
    if any(c.state is SliState.ANOMALOUS for c in checks):
        state = SliState.ANOMALOUS
    elif all(by_sli.get(s) is SliState.NORMAL for s in REQUIRED):
        state = SliState.NORMAL
    else:
        state = SliState.UNKNOWN
    return Symptom(state, checks, window, shifts)
