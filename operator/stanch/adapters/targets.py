"""Read a mitigation's target and the objects around it, exactly as the machine's ``Reads`` asks.

Plain reads and filters by identity (ownerReference uid, ``scaleTargetRef``, label selector); what
the objects *mean* is decided in core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stanch.adapters.kube import KubeClient
from stanch.core.effects import ObjectKey, Reads
from stanch.core.models import LOCK_ANNOTATION, TERMINAL_PHASES
from stanch.core.scope import lock_holder as scoped_lock_holder

K8sObject = dict[str, Any]


@dataclass(frozen=True)
class TargetReads:
    """What was read; ``None`` is absent (or not asked for)."""

    target: K8sObject | None
    replica_sets: tuple[K8sObject, ...] = ()
    hpa: K8sObject | None = None
    config_map: K8sObject | None = None
    node: K8sObject | None = None
    pods: tuple[K8sObject, ...] = ()
    pods_on_node: tuple[K8sObject, ...] = ()
    canary: K8sObject | None = None
    lock_holder_active: bool = False
    lock_holder: str | None = None
    """Name of the Mitigation the target's lock annotation names, if any."""
    extra: Mapping[str, Any] = field(default_factory=dict)


async def _get(kube: KubeClient, key: ObjectKey | None) -> K8sObject | None:
    if key is None:
        return None
    return await kube.get(key.kind, key.name, key.namespace)


def selector_string(selector: Mapping[str, Any] | None) -> str | None:
    """A label selector (``matchLabels`` and ``matchExpressions``) as the API's query syntax."""
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None


async def read_target(kube: KubeClient, reads: Reads) -> TargetReads:
    key = reads.target
    target = await _get(kube, key)
    replica_sets: tuple[K8sObject, ...] = ()
    hpa = None
    pods: tuple[K8sObject, ...] = ()
    lock_holder = None
    lock_active = False
    if target is not None:
        uid = target["metadata"].get("uid")
        if reads.replica_sets:
            replica_sets = tuple(
                rs
                for rs in await kube.list("ReplicaSet", key.namespace)
                if any(
                    ref.get("uid") == uid and ref.get("controller")
                    for ref in rs["metadata"].get("ownerReferences") or []
                )
            )
        if reads.hpa:
            hpas = [
                h
                for h in await kube.list("HorizontalPodAutoscaler", key.namespace)
                if (h.get("spec", {}).get("scaleTargetRef") or {}).get("kind") == key.kind
                and h["spec"]["scaleTargetRef"].get("name") == key.name
            ]
            hpa = hpas[0] if hpas else None
        if reads.pods_on_node:
            selector = selector_string(target.get("spec", {}).get("selector"))
            if selector:
                pods = tuple(
                    await kube.list(
                        "Pod",
                        key.namespace,
                        label_selector=selector,
                        field_selector=f"spec.nodeName={reads.pods_on_node}",
                    )
                )
        if reads.lock_holder:
            lock_holder = (target["metadata"].get("annotations") or {}).get(LOCK_ANNOTATION)
            holder_ref = scoped_lock_holder(lock_holder, key.namespace or "")
            if holder_ref is not None:
                # Looked up where the lock says it lives: a holder from another namespace (a lock
                # taken before Mitigations were confined to their own) is not taken for gone.
                holder = await kube.get("Mitigation", holder_ref.name, holder_ref.namespace)
                phase = ((holder or {}).get("status") or {}).get("phase")
                lock_active = holder is not None and phase not in TERMINAL_PHASES
    named = [await kube.get("Pod", pod, key.namespace) for pod in reads.pods]
    return TargetReads(
        target=target,
        pods=tuple(p for p in named if p is not None),
        replica_sets=replica_sets,
        hpa=hpa,
        config_map=await _get(kube, reads.config_map),
        node=await _get(kube, reads.node),
        pods_on_node=pods,
        canary=await _get(kube, reads.canary),
        lock_holder_active=lock_active,
        lock_holder=lock_holder,
    )
