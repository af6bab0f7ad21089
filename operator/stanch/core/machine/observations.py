"""What the wiring feeds the reducer: typed events, one per thing that happened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.core.models import PolicyDecision

K8sObject = Mapping[str, Any]
"""A Kubernetes object as the API returns it (camelCase JSON as a dict)."""


@dataclass(frozen=True)
class World:
    """The target and its related objects, as read by ``ObserveTarget``. ``None`` = absent/not read."""

    target: K8sObject | None
    replica_sets: Sequence[K8sObject] = ()
    hpa: K8sObject | None = None
    config_map: K8sObject | None = None
    node: K8sObject | None = None
    pods: Sequence[K8sObject] = ()
    """Pods named by ``Reads.pods`` that exist."""
    pods_on_node: Sequence[K8sObject] = ()
    canary: K8sObject | None = None
    lock_holder_active: bool = False
    """The Mitigation named by the target's lock annotation exists and is not in a terminal phase.
    Lock annotations leak into ReplicaSets (the Deployment controller copies annotations) and come
    back with a later rollback, so an annotation alone does not prove the lock is held."""


@dataclass(frozen=True)
class SignalSeries:
    """One signal over a query window. ``points is None`` means no data (``error`` says why)."""

    signal: str
    points: tuple[float, ...] | None
    error: str | None = None


@dataclass(frozen=True)
class PolicyDecided:
    decision: PolicyDecision


@dataclass(frozen=True)
class Approved:
    by: str
    reason: str = ""


@dataclass(frozen=True)
class TargetObserved:
    world: World


@dataclass(frozen=True)
class BaselineCollected:
    start: datetime
    end: datetime
    series: tuple[SignalSeries, ...]


@dataclass(frozen=True)
class IntentPersisted:
    step: str
    attempt: int


@dataclass(frozen=True)
class ChangeApplied:
    """Every mutating effect of ``step`` succeeded; rv/generation of the step's primary object after."""

    step: str
    resource_version: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class ApplyFailed:
    step: str
    reason: str
    retriable: bool = False
    conflict: bool = False
    """A precondition failed (HTTP 409/422 on a test op): the object is not what we planned from."""


@dataclass(frozen=True)
class GuardSample:
    at: datetime
    series: tuple[SignalSeries, ...]


@dataclass(frozen=True)
class RevertApplied:
    resource_version: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class DeleteRequested:
    pass


@dataclass(frozen=True)
class IncidentResolved:
    pass


@dataclass(frozen=True)
class Tick:
    """Time passed (a timer, a resume after restart, a ``WakeAt``)."""


Observation = (
    PolicyDecided
    | Approved
    | TargetObserved
    | BaselineCollected
    | IntentPersisted
    | ChangeApplied
    | ApplyFailed
    | GuardSample
    | RevertApplied
    | DeleteRequested
    | IncidentResolved
    | Tick
)
"""Everything the reducer reacts to. (Not :class:`stanch.core.models.Observation`, which is one
guard check stored in status.)"""
