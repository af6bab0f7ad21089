"""Capacity rules: pods running out of memory or CPU, pods that cannot be scheduled, and traffic
growing beyond what the workload can serve."""

from __future__ import annotations

import math
import re

from stanch.core.investigation.analysis.context import RuleContext, pct
from stanch.core.investigation.analysis.onset import find_shift, floor_for
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.analysis.series import CPU, MEMORY, THROUGHPUT, overall, points_of, slope
from stanch.core.models import Hypothesis, HypothesisCategory, PodSpread, SuggestedMitigation

AT_LIMIT = 0.9
"""Memory or CPU over this fraction of the limit counts as at the limit."""
RESOURCE_WORDS = ("resources", "limits", "requests", "memory", "cpu")
SURGE_RATIO = 1.5
_SCALED_DOWN = re.compile(r"Scaled down replica set (?P<rs>\S+) from (?P<old>\d+) to (?P<new>\d+)")
"""Throughput this many times its level before the onset is a surge even without a change point."""


def _reason_count(ctx: RuleContext, *reasons: str) -> int:
    return sum(r.count for r in ctx.evidence.pod_health.reasons if r.reason in reasons)


def _event_count(ctx: RuleContext, *reasons: str) -> int:
    return sum(e.count for e in ctx.evidence.events_by_reason if e.reason in reasons)


def _peak(ctx: RuleContext, signal: str) -> float | None:
    summary = overall(ctx.evidence, signal)
    if summary is None:
        return None
    values = [p.value for p in summary.points]
    candidates = [v for v in (summary.peak, summary.now, *values) if v is not None]
    return max(candidates) if candidates else None


def _leaking(ctx: RuleContext) -> bool:
    """Memory climbing steadily over the whole window, the signature of a leak."""
    values = [p.value for p in points_of(ctx.evidence, MEMORY)]
    if len(values) < 8:
        return False
    b, se = slope(values)
    return b > 0 and b > 4 * se and b * (len(values) - 1) > 0.2


def _spread(ctx: RuleContext, signal: str) -> PodSpread | None:
    return next((s for s in ctx.evidence.pod_spreads if s.signal == signal and s.pods), None)


def most_pods_at_limit(spread: PodSpread) -> bool:
    """Whether most of the pods are at the limit: counted exactly when every pod's value is known,
    else read from the median (at least half of them at the limit)."""
    if spread.pods <= len(spread.highest):
        return sum(p.value >= AT_LIMIT for p in spread.highest) * 2 > spread.pods
    return spread.median is not None and spread.median >= AT_LIMIT


def _workload_wide(ctx: RuleContext, signal: str, peak: float | None, what: str) -> tuple[bool, str]:
    """Whether the worst pod's ``peak`` at the limit is the workload's state, and a line when it is
    one pod's only (the overall signal takes the busiest pod)."""
    if peak is None or peak < AT_LIMIT:
        return False, ""
    spread = _spread(ctx, signal)
    if spread is None or most_pods_at_limit(spread):
        return True, ""
    median = pct(spread.median)
    return False, (
        f"only some pods reach their {what} limit (the median pod is at {median} of it): a per-pod "
        "problem, not the workload's"
    )


def resource_exhaustion(ctx: RuleContext) -> Hypothesis | None:
    """OOMKilled containers or memory/CPU at the limit across most pods. A limit changed by the
    suspect revision is rolled back; a leak is bought time with a restart; otherwise load is spread
    over more pods. One pod at its limit while its siblings are fine is not this (``pod_outlier``)."""
    ooms = _reason_count(ctx, "OOMKilled") + _event_count(ctx, "OOMKilling")
    memory = _peak(ctx, MEMORY)
    cpu = _peak(ctx, CPU)
    memory_high, memory_note = _workload_wide(ctx, MEMORY, memory, "memory")
    cpu_high, cpu_note = _workload_wide(ctx, CPU, cpu, "CPU")
    if not (ooms or memory_high or cpu_high):
        return None
    supporting = []
    if ooms:
        supporting.append(f"{ooms} container(s) OOMKilled")
    if memory_high:
        supporting.append(f"memory reached {pct(memory)} of the limit")
    if cpu_high:
        supporting.append(f"CPU reached {pct(cpu)} of the limit (throttling)")
    confidence = 75 if ooms and memory_high else 65 if ooms else 50 if memory_high else 45
    contradicting = [note for note in (memory_note, cpu_note) if note]
    for signal, high in ((MEMORY, memory_high), (CPU, cpu_high)):
        spread = _spread(ctx, signal)
        if high and spread is not None and spread.pods > 1:
            supporting.append(f"{signal}: the median of {spread.pods} pods is at {pct(spread.median)}")
    if memory is None and cpu is None:
        contradicting.append("no memory/CPU metrics to confirm the pressure")
    statement = "pods are running out of " + ("memory" if ooms or memory_high else "CPU")
    suggestion: SuggestedMitigation | None
    rev = ctx.current_revision
    deploy = ctx.deploy_of(rev.revision) if rev is not None else None
    limit_changed = (
        rev is not None
        and deploy is not None
        and deploy.possible_cause
        and any(word in change.lower() for change in rev.changes for word in RESOURCE_WORDS)
    )
    previous = ctx.previous_revision(rev.revision) if rev is not None else None
    if limit_changed and rev is not None and previous is not None:
        confidence += 10
        supporting.append(f"revision {rev.revision} changed resources: {'; '.join(rev.changes)}")
        statement += f" since revision {rev.revision} changed their resources"
        suggestion = ctx.suggest(
            f"roll back to revision {previous.revision} (its resource settings)",
            rollback={"toRevision": previous.revision},
        )
    elif _leaking(ctx):
        supporting.append("memory climbs steadily over the whole window (a leak)")
        statement += " (memory grows steadily: likely a leak)"
        suggestion = ctx.suggest(
            "rolling restart to reclaim leaked memory while the leak is fixed", restart={}
        )
    else:
        statement += "; raise the limit in the manifest"
        suggestion = ctx.suggest("add replicas (x1.5) to spread the load per pod", scale={"factor": 1.5})
    return hypothesis(
        HypothesisCategory.RESOURCE_EXHAUSTION, statement, confidence, supporting, contradicting, suggestion
    )


def scheduling_capacity(ctx: RuleContext) -> Hypothesis | None:
    """Pods stuck Pending: the cluster (or the namespace quota) has no room for them."""
    pending = _reason_count(ctx, "Unschedulable", "Pending")
    failed = [e for e in ctx.evidence.events_by_reason if e.reason == "FailedScheduling"]
    quota = [
        e
        for e in ctx.evidence.events_by_reason
        if e.reason == "FailedCreate" and "quota" in e.sample_message.lower()
    ]
    full_quotas = [
        c
        for c in ctx.evidence.config_changes
        if c.object.kind == "ResourceQuota" and "at its limit" in c.summary
    ]
    if not (pending or failed or quota):
        return None
    supporting = [c.summary for c in full_quotas]
    if pending:
        supporting.append(f"{pending} pod(s) cannot be scheduled")
    for event in (*failed, *quota):
        supporting.append(f"{event.reason}x{event.count}: {event.sample_message}")
    confidence = 70 if (pending and (failed or quota)) else 55
    what = "the namespace quota is exhausted" if quota or full_quotas else "no node has room for the pods"
    return hypothesis(
        HypothesisCategory.CAPACITY,
        f"pods cannot be scheduled: {what}; add nodes, lower requests or raise the quota "
        "(scaling out would only add pending pods)",
        confidence,
        supporting,
    )


def traffic_surge(ctx: RuleContext) -> Hypothesis | None:
    """Throughput jumped at the onset: the workload is short of capacity, not broken."""
    points = points_of(ctx.evidence, THROUGHPUT)
    floor = floor_for(THROUGHPUT)
    shift = find_shift(points, floor)
    ratio: float | None = None
    supporting = []
    if shift is not None and shift.baseline > 0:
        ratio = shift.level / shift.baseline
        supporting.append(
            f"throughput rose from {shift.baseline:.3g} to {shift.level:.3g} req/s (x{ratio:.1f})"
        )
        gap = (ctx.onset.time - shift.start_time).total_seconds()
        if abs(gap) <= 300:
            supporting.append("the traffic rise coincides with the onset")
        elif gap < -300:
            return None  # traffic rose well after the errors began: a consequence, if anything
    else:
        before = [p.value for p in points if p.time < ctx.onset.time]
        after = [p.value for p in points if p.time >= ctx.onset.time]
        if before and after and sum(before) > 0:
            ratio = (sum(after) / len(after)) / (sum(before) / len(before))
            if ratio < SURGE_RATIO:
                return None
            supporting.append(f"throughput since the onset is x{ratio:.1f} the level before")
    if ratio is None or ratio < 1.2:
        return None
    confidence = 75.0
    contradicting = []
    changes = [c for c in ctx.causal_changes() if not c.change.is_scaling]
    if changes:
        confidence -= 25
        contradicting.append(f"a change preceded the onset too: {changes[0].sentence()}")
    else:
        supporting.append("no deploy or configuration change before the onset")
    factor = min(3.0, max(1.5, math.ceil(ratio * 10) / 10))
    return hypothesis(
        HypothesisCategory.TRAFFIC_CHANGE,
        f"a traffic surge (x{ratio:.1f}) exceeds the workload's capacity",
        confidence,
        supporting,
        contradicting,
        ctx.suggest(f"scale out x{factor:g} to absorb the extra traffic", scale={"factor": factor}),
    )


def _scale_down_of(ctx: RuleContext, replica_set: str) -> tuple[int, int] | None:
    """``(from, to)`` of the latest scale-down of the current ReplicaSet (not a rollout step, which
    scales the older ReplicaSets down)."""
    for event in ctx.evidence.events_by_reason:
        if event.reason != "ScalingReplicaSet":
            continue
        match = _SCALED_DOWN.search(event.sample_message)
        if match is not None and match.group("rs") == replica_set:
            return int(match.group("old")), int(match.group("new"))
    return None


def scaled_down(ctx: RuleContext) -> Hypothesis | None:
    """The workload runs no pods at all: someone (or something) scaled it to zero. Scaling back to
    the count it had is the fix; rolling back would not bring pods back."""
    rev = ctx.current_revision
    health = ctx.evidence.pod_health
    if rev is None or ctx.target_missing or health.total or any(r.replicas for r in ctx.rollouts):
        return None
    if "pods" in ctx.partial:
        return None  # not knowing the pods is not the same as having none
    scaled = _scale_down_of(ctx, rev.replica_set)
    supporting = [f"no pod of {ctx.spec.target.name} exists; no retained ReplicaSet has replicas"]
    contradicting = []
    if scaled is not None and scaled[1] == 0:
        replicas = scaled[0]
        supporting.append(f"ReplicaSet {rev.replica_set} was scaled down from {scaled[0]} to 0")
        confidence = 85.0
        how = f"back to {replicas} (its count before the scale-down)"
    else:
        replicas = 1
        confidence = 70.0
        how = "to 1: the count before is unknown, raise it to what the workload needs"
        contradicting.append("no scale-down event found: the replica count before is unknown")
    return hypothesis(
        HypothesisCategory.CAPACITY,
        f"{ctx.spec.target.name} was scaled to 0 replicas: nothing serves its traffic",
        confidence,
        supporting,
        contradicting,
        ctx.suggest(f"scale {ctx.spec.target.name} {how}", scale={"replicas": replicas}),
    )
