"""Settling: while a mitigation's new pods start, latency and saturation are not yet its verdict.

A rollback replaces every pod; a scale-up adds cold ones. While they start, fewer pods serve and
new ones serve slowly, so p99 latency rises even when the change is curing the incident. Scenario
14 showed the cost: a rollback that was taking the error ratio from 40 % to 0 was reverted 6 s into
its bake for a p99 of 0.099 → 0.118 s during its own rollout, restoring the outage. Flagger waits
for the rollout to be ready before it analyses; Stanch keeps checking (errors must still be caught
at once) but does not count latency or saturation against the change until its pods are available
and their metrics' rate windows have moved past the rollout (``settleTime``).

Only the rollout the mitigation started is excused, and only pods *starting*: a scale-down that
overloads the remaining pods has nothing starting and is judged at once. A rollout past its
progress deadline is stalled, not settling. Error ratio, restarts and throughput are never excused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from stanch.core.models import RolloutProgress, SignalKind

SETTLING_KINDS = frozenset({SignalKind.LATENCY, SignalKind.SATURATION})
"""Signal kinds a starting pod moves for reasons that pass on their own."""


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def read_rollout(
    workload: Mapping[str, Any] | None, *, previous: RolloutProgress | None, now: datetime
) -> RolloutProgress | None:
    """The workload's rollout as the Deployment controller reports it, carrying ``settled_at``
    forward: it is set when pods that were starting are all available, and only then. A read from
    before the controller saw the current spec says nothing new: ``previous`` is kept."""
    if workload is None:
        return previous
    meta = workload.get("metadata") or {}
    status = workload.get("status") or {}
    # Until the controller has seen the current generation its counts describe the old spec: a
    # scale-down read then would look like pods starting and win a settling grace it must not get.
    if _int(status.get("observedGeneration"), -1) < _int(meta.get("generation"), 0):
        return previous
    spec = workload.get("spec") or {}
    desired = _int(spec.get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    stalled = any(
        c.get("type") == "Progressing"
        and c.get("status") == "False"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or ()
    )
    starting = not stalled and (updated < desired or available < desired)
    was_starting = previous is not None and previous.starting
    settled_at = previous.settled_at if previous is not None else None
    if starting:
        settled_at = None
    elif was_starting:
        settled_at = now
    return RolloutProgress(
        desired=desired,
        updated=updated,
        available=available,
        starting=starting,
        stalled=stalled,
        settled_at=settled_at,
    )


def pods_started() -> RolloutProgress:
    """The rollout as the machine knows it the moment it applied a change that starts pods (see
    :func:`stanch.core.plans.starts_pods`): starting, counts unknown until the first read. A kwok
    or a fast cluster can finish the rollout before that read; the settling grace must not be
    lost because the guard never saw the pods start."""
    return RolloutProgress(starting=True)


def settling_reason(progress: RolloutProgress | None, *, now: datetime, settle_time: timedelta) -> str | None:
    """Why latency and saturation are still settling at ``now``, or None when they count."""
    if progress is None or progress.stalled:
        return None
    if progress.starting:
        if not progress.desired:
            return "new pods starting"
        return (
            f"new pods starting ({progress.updated}/{progress.desired} updated, "
            f"{progress.available}/{progress.desired} available)"
        )
    if progress.settled_at is not None and now - progress.settled_at < settle_time:
        waited = (now - progress.settled_at).total_seconds()
        return f"new pods all available {waited:.0f}s ago (settleTime {settle_time.total_seconds():g}s)"
    return None
