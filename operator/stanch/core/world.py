"""What an ``ObserveTarget`` read: the target and the objects around it, as the API returned them.

Data, not decisions: the action plans check their writes against it and the reducer receives it in
``TargetObserved``, so it lives below both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
