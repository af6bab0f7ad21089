"""Per-pod outliers: one pod worse than its siblings at the same moment (throttled, out of memory,
erring, slow, restarting), which a restart of that pod fixes and a scale-up or rollback does not.

A pod is an outlier on a signal when, against the median of its siblings, it is worse by all of:
an absolute minimum that matters operationally, a multiple of the siblings' median (relative), and
a robust z-score (median absolute deviation) — so noise among many quiet pods, or a spread-out
workload, does not single one out. At least :data:`MIN_SIBLINGS` siblings are needed to compare
with, and when more than a third of the pods stand out the problem is not one pod's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from stanch.core.investigation.analysis.context import RuleContext, pct
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.analysis.series import CPU, ERROR_RATIO, LATENCY, MEMORY
from stanch.core.investigation.per_pod import RESTARTS
from stanch.core.models import Hypothesis, HypothesisCategory, OnsetSource, PodSpread, PodValue

MIN_SIBLINGS = 2
"""Pods besides the suspect needed to say what normal looks like."""
MAD_Z = 5.0
"""Robust z-score (difference / (1.4826 x MAD)) a pod must reach against its siblings."""
MAD_SCALE = 1.4826
"""MAD → standard deviation for normally distributed values."""
MAX_SHARE = 1 / 3
"""More pods than this standing out is a workload (or revision, or node) problem, not one pod's."""
MAX_RESTARTED = 5
"""Pods named in one suggested restart."""


@dataclass(frozen=True)
class Threshold:
    """When a pod's value counts as an outlier on one signal."""

    absolute: float
    """Minimum difference from the siblings' median."""
    relative: float
    """Minimum difference as a multiple of the siblings' median."""
    level: float = 0.0
    """Minimum value of the pod itself (a CPU outlier at 30 % of its limit hurts nobody)."""
    what: str = ""
    confidence: float = 55.0


THRESHOLDS: dict[str, Threshold] = {
    CPU: Threshold(0.3, 0.5, level=0.8, what="CPU near its limit (throttled)", confidence=60.0),
    MEMORY: Threshold(0.25, 0.3, level=0.8, what="memory near its limit", confidence=55.0),
    ERROR_RATIO: Threshold(0.05, 1.0, what="errors", confidence=60.0),
    LATENCY: Threshold(0.1, 1.0, what="latency", confidence=55.0),
    RESTARTS: Threshold(3.0, 1.0, what="container restarts", confidence=50.0),
}


def _format(signal: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if signal in (CPU, MEMORY):
        return f"{pct(value)} of the limit"
    if signal == ERROR_RATIO:
        return pct(value)
    if signal == LATENCY:
        return f"{value:.3g}s"
    return f"{value:g}"


def standing_out(spread: PodSpread, threshold: Threshold) -> list[PodValue]:
    """The pods of ``spread`` that are outliers against their siblings, highest first."""
    if spread.pods < MIN_SIBLINGS + 1 or spread.siblings_median is None:
        return []
    median = spread.siblings_median
    noise = MAD_SCALE * (spread.siblings_mad or 0.0)
    margin = max(threshold.absolute, threshold.relative * abs(median), MAD_Z * noise)
    out = [p for p in spread.highest if p.value >= threshold.level and p.value - median >= margin]
    if len(out) > max(1, int(spread.pods * MAX_SHARE)):
        return []
    return out


@dataclass
class _Suspect:
    pod: PodValue
    lines: list[str]
    confidence: float = 0.0


def _findings(ctx: RuleContext) -> dict[str, _Suspect]:
    suspects: dict[str, _Suspect] = {}
    flagged: defaultdict[str, list[str]] = defaultdict(list)
    for spread in ctx.evidence.pod_spreads:
        threshold = THRESHOLDS.get(spread.signal)
        if threshold is None:
            continue
        for pod in standing_out(spread, threshold):
            flagged[pod.pod].append(spread.signal)
            line = (
                f"pod {pod.pod}: {threshold.what} at {_format(spread.signal, pod.value)}; its "
                f"{spread.pods - 1} siblings at {_format(spread.signal, spread.siblings_median)} (median)"
            )
            suspect = suspects.setdefault(pod.pod, _Suspect(pod, []))
            suspect.lines.append(line)
            suspect.confidence = max(suspect.confidence, threshold.confidence)
    for name, signals in flagged.items():
        # Independent signals agreeing on the same pod (throttled *and* slow) is stronger evidence.
        suspects[name].confidence += 10 * (len(set(signals)) - 1)
    return suspects


def pod_outlier(ctx: RuleContext) -> Hypothesis | None:
    """One pod (or a few) stands out from its siblings: restart those pods."""
    suspects = _findings(ctx)
    if not suspects:
        return None
    ordered = sorted(suspects.values(), key=lambda s: (-s.confidence, s.pod.pod))[:MAX_RESTARTED]
    names = [s.pod.pod for s in ordered]
    supporting = [line for s in ordered for line in s.lines]
    contradicting: list[str] = []
    confidence = ordered[0].confidence
    if ctx.onset.source is OnsetSource.CHANGE_POINT:
        confidence += 5
        supporting.append("the target's own error/latency signal shows the incident")
    serving = {g.key: g.total for g in ctx.evidence.pod_health.by_revision if g.total}
    per_revision = Counter(s.pod.revision for s in ordered if s.pod.revision is not None)
    for rev, count in sorted(per_revision.items()):
        if serving.get(rev) == count and len(serving) >= 2:
            # Every pod of one revision stands out while other revisions serve: that is the
            # revision (a canary, a rollout under way), which the deploy rules judge.
            confidence -= 25
            which = "the only pod" if count == 1 else f"all {count} pods"
            contradicting.append(
                f"{which} of revision {rev} stand{'s' if count == 1 else ''} out: its revision, not "
                "the pod, may be what differs"
            )
            break
    bad_nodes = {n.name for n in ctx.evidence.nodes if n.ready is False or n.problems}
    on_bad = [s.pod for s in ordered if s.pod.node in bad_nodes]
    if on_bad:
        confidence -= 15
        contradicting.append(f"pod {on_bad[0].pod} runs on node {on_bad[0].node}, which has problems")
    which = names[0] if len(names) == 1 else f"{len(names)} pods ({', '.join(names)})"
    statement = (
        f"pod {which} stands out from its siblings; the other pods are fine — restart it"
        if len(names) == 1
        else f"{which} stand out from their siblings; the other pods are fine — restart them"
    )
    return hypothesis(
        HypothesisCategory.POD_OUTLIER,
        statement,
        confidence,
        supporting,
        contradicting,
        ctx.suggest(
            f"restart {'pod ' + names[0] if len(names) == 1 else 'pods ' + ', '.join(names)}"
            " (deleted one by one; their ReplicaSet replaces them)",
            restart={"pods": names},
        ),
    )
