"""Correlation: every change (deploy, config, scaling) measured against the onset.

A change can only cause what comes after it. Changes after the onset (beyond a small grace for
clock skew and sample spacing) are recorded as "not a cause"; changes before it are stronger the
closer they are — full strength while a rollout is still propagating and a ``rate()`` window is
filling, then decaying.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.core.models import (
    ConfigChange,
    EventGroup,
    Evidence,
    ObjectRef,
    RolloutRevision,
    TimelineKind,
    format_duration,
)

GRACE_AFTER_ONSET = timedelta(seconds=60)
"""A change this soon after the detected onset may still be its cause: the onset is the first
elevated sample, and clocks of Prometheus and the API server differ a little."""
FULL_STRENGTH = timedelta(minutes=5)
"""A change this close before the onset gets full weight (rollout time + a 5m rate window)."""
DECAY = timedelta(minutes=10)
"""Beyond :data:`FULL_STRENGTH`, weight falls by a factor e every this long."""
SCALING_REASONS = frozenset({"ScalingReplicaSet", "SuccessfulRescale"})
WITH_WORKLOAD = timedelta(minutes=2)
"""An object created this close to revision 1 (the Deployment's creation) was created together with
the workload: part of the initial deploy, not a change."""
_CREATION_SKEW = timedelta(seconds=2)


@dataclass(frozen=True)
class Change:
    """Something that changed: a deploy, a configuration object, or a scaling step."""

    time: datetime
    kind: TimelineKind
    label: str
    """Short name, e.g. ``revision 7`` or ``ConfigMap/flags``."""
    detail: str
    """What changed, e.g. ``image api:1.4.2 → api:1.5.0``."""
    object: ObjectRef | None = None
    revision: RolloutRevision | None = None
    config: ConfigChange | None = None
    with_workload: bool = False
    """Created together with the workload (see :data:`WITH_WORKLOAD`): never a cause."""

    @property
    def is_scaling(self) -> bool:
        """A replica-count step (ReplicaSet scaling, an HPA rescale): more often an effect of load
        than a cause."""
        if self.kind is TimelineKind.SCALING:
            return True
        return (
            self.config is not None
            and self.config.object.kind == "HorizontalPodAutoscaler"
            and "last scaled" in self.config.summary
        )

    def describe(self) -> str:
        return f"{self.label}: {self.detail}" if self.detail else self.label


def describe_offset(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=round(abs(delta.total_seconds()))))


@dataclass(frozen=True)
class Correlated:
    """A change and its distance to the onset (positive ``offset``: the change came first)."""

    change: Change
    offset: timedelta
    proximity: float
    """0..1: how strongly the timing alone points at this change."""
    symptom: str = "error spike"
    """What began at the onset, in words (``error spike``, ``latency rise`` …)."""

    @property
    def possible_cause(self) -> bool:
        return self.proximity > 0

    def sentence(self, symptom: str | None = None) -> str:
        """``error spike 4m10s after revision 7: image api:1.4.2 → api:1.5.0``."""
        symptom = symptom or self.symptom
        if self.change.with_workload:
            return f"{self.change.label} was created together with the workload (initial deploy), not changed"
        if self.offset >= timedelta(0):
            return f"{symptom} {describe_offset(self.offset)} after {self.change.describe()}"
        if self.offset >= -GRACE_AFTER_ONSET:
            skew = describe_offset(self.offset)
            return f"{symptom} {skew} before {self.change.describe()} (within clock skew)"
        return (
            f"{self.change.describe()} came {describe_offset(self.offset)} after the onset, so it cannot "
            "have caused it"
        )


def proximity(offset: timedelta, lookback: timedelta) -> float:
    if offset < -GRACE_AFTER_ONSET or offset > lookback:
        return 0.0
    if offset <= FULL_STRENGTH:
        return 1.0
    return math.exp(-(offset - FULL_STRENGTH) / DECAY)


def _deploy_detail(rev: RolloutRevision) -> str:
    if rev.changes:
        return "; ".join(rev.changes)
    if rev.change_cause:
        return rev.change_cause
    return f"images {', '.join(rev.images)}" if rev.images else ""


def revision_changes(rollouts: Sequence[RolloutRevision], namespace: str | None) -> list[Change]:
    """Deploys: every retained revision with a time, except revision 1, the workload's creation
    (there was nothing before it to change). The oldest retained revision is a change too: after a
    rollback it is the bad deploy the rollback undid (its ReplicaSet is older than the rollback's,
    whose number it took); one rolled out long ago falls outside the lookback by its time."""
    dated = sorted((r for r in rollouts if r.since is not None), key=lambda r: r.revision)
    out = []
    for rev in (r for r in dated if r.revision > 1):
        assert rev.since is not None
        # A rollback reuses an old ReplicaSet: the change is when it went out again, not its creation.
        out.append(
            Change(
                time=rev.since,
                kind=TimelineKind.DEPLOY,
                label=f"revision {rev.revision}",
                detail=_deploy_detail(rev),
                object=ObjectRef(kind="ReplicaSet", name=rev.replica_set, namespace=namespace),
                revision=rev,
            )
        )
    return out


def workload_created(rollouts: Sequence[RolloutRevision]) -> datetime | None:
    """When the workload was created: revision 1's creation, if it is still retained."""
    return next((r.created_at for r in rollouts if r.revision == 1 and r.created_at is not None), None)


def created_with_workload(change: ConfigChange, workload_created_at: datetime | None) -> bool:
    """The change is the object's creation, within :data:`WITH_WORKLOAD` of the workload's own:
    a Service or ConfigMap shipped with the Deployment, not a change made to it."""
    if change.changed_at is None or change.created_at is None or workload_created_at is None:
        return False
    if abs(change.changed_at - change.created_at) > _CREATION_SKEW:
        return False  # updated since it was created
    return abs(change.created_at - workload_created_at) <= WITH_WORKLOAD


def config_changes(
    changes: Sequence[ConfigChange], workload_created_at: datetime | None = None
) -> list[Change]:
    return [
        Change(
            time=c.changed_at,
            kind=TimelineKind.CONFIG_CHANGE,
            label=f"{c.object.kind}/{c.object.name}",
            detail=c.summary,
            object=c.object,
            config=c,
            with_workload=created_with_workload(c, workload_created_at),
        )
        for c in changes
        if c.changed_at is not None
    ]


def scaling_changes(events: Sequence[EventGroup]) -> list[Change]:
    return [
        Change(
            time=e.first_seen,
            kind=TimelineKind.SCALING,
            label=e.reason,
            detail=e.sample_message,
        )
        for e in events
        if e.reason in SCALING_REASONS and e.first_seen is not None
    ]


def all_changes(evidence: Evidence, namespace: str | None) -> list[Change]:
    return sorted(
        [
            *revision_changes(evidence.rollouts, namespace),
            *config_changes(evidence.config_changes, workload_created(evidence.rollouts)),
            *scaling_changes(evidence.events_by_reason),
        ],
        key=lambda c: c.time,
    )


def correlate(
    changes: Sequence[Change], onset: datetime, lookback: timedelta, symptom: str = "error spike"
) -> list[Correlated]:
    """Each change with its offset and proximity to the onset, strongest first."""
    out = [
        Correlated(
            c, onset - c.time, 0.0 if c.with_workload else proximity(onset - c.time, lookback), symptom
        )
        for c in changes
    ]
    return sorted(out, key=lambda c: (-c.proximity, abs(c.offset)))
