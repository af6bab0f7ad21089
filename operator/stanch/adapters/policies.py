"""Reads and writes for policy decisions: the policies that may apply to a target, the recent
Mitigations that rate limits and cooldowns count, the target itself, and the few status writes the
policy handlers make. Plain JSON in and out; the decisions are made in ``stanch.core.policy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stanch.adapters.kube import KubeClient, KubeError


async def read_policies(kube: KubeClient, namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """MitigationPolicies in ``namespaces`` and every ClusterMitigationPolicy.

    Errors propagate: evaluating without a policy we failed to read could miss a restriction.
    """
    found: list[dict[str, Any]] = []
    for namespace in sorted(set(namespaces)):
        found.extend(await kube.list("MitigationPolicy", namespace))
    found.extend(await kube.list("ClusterMitigationPolicy"))
    return found


async def read_mitigations(kube: KubeClient, namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """Every Mitigation in ``namespaces`` (the history rate limits and cooldowns look at)."""
    found: list[dict[str, Any]] = []
    for namespace in sorted(set(namespaces)):
        found.extend(await kube.list("Mitigation", namespace))
    return found


async def read_target(kube: KubeClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(kind, name, namespace)


async def read_node(kube: KubeClient, name: str) -> dict[str, Any] | None:
    return await kube.get("Node", name)


async def create_mitigation(kube: KubeClient, manifest: dict[str, Any]) -> bool:
    """Create it; False when an object of that name already exists (names are deterministic, so a
    retry after a crash finds its own earlier create)."""
    try:
        await kube.create(manifest)
    except KubeError as exc:
        if exc.status == 409:
            return False
        raise
    return True


async def set_incident_mitigations(
    kube: KubeClient,
    incident: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
) -> None:
    """Replace ``status.mitigations`` of the Incident, conditional on the resourceVersion it was
    computed from (409 when the Incident changed meanwhile: the next event retries)."""
    meta = incident.get("metadata") or {}
    if incident.get("status") is None:
        ops: list[dict[str, Any]] = [
            {"op": "add", "path": "/status", "value": {"mitigations": list(entries)}}
        ]
    else:
        ops = [{"op": "add", "path": "/status/mitigations", "value": list(entries)}]
    await kube.patch(
        "Incident",
        str(meta["name"]),
        str(meta["namespace"]),
        ops,
        "json",
        subresource="status",
        resource_version=str(meta["resourceVersion"]),
    )
