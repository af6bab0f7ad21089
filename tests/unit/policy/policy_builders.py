"""Builders for policy tests: plain JSON objects as the API server returns them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stanch.core.models import MitigationSpec
from stanch.core.policy import LoadedPolicy, MitigationRequest, PastMitigation, load_policy, past_mitigation

NOW = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday


def policy(
    name: str = "default",
    namespace: str | None = "payments",
    *,
    cluster: bool = False,
    now: datetime = NOW,
    **spec: Any,
) -> LoadedPolicy:
    kind = "ClusterMitigationPolicy" if cluster else "MitigationPolicy"
    meta: dict[str, Any] = {"name": name, "generation": 1}
    if not cluster:
        meta["namespace"] = namespace
    return load_policy({"kind": kind, "metadata": meta, "spec": spec}, now=now)


def rule(action: str, tier: str = "Auto", **limits: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"action": action, "tier": tier}
    if limits:
        out["limits"] = limits
    return out


def request(
    action: dict[str, Any] | None = None,
    *,
    name: str = "m1",
    namespace: str = "payments",
    target: str = "checkout",
    created_at: datetime | None = NOW,
    created_by: str | None = None,
    **spec: Any,
) -> MitigationRequest:
    body = {"target": {"name": target}, **(action or {"rollback": {}}), **spec}
    return MitigationRequest(
        name=name,
        namespace=namespace,
        spec=MitigationSpec.model_validate(body),
        created_at=created_at,
        created_by=created_by,
    )


def past(
    name: str,
    *,
    namespace: str = "payments",
    target: str = "checkout",
    phase: str | None = "Succeeded",
    created: str = "2025-03-07T11:30:00Z",
    started: str | None = "2025-03-07T11:31:00Z",
    ended: str | None = "2025-03-07T11:40:00Z",
    dry_run: bool = False,
    decided_rule: str | None = None,
) -> PastMitigation:
    """``decided_rule``: the rule of the recorded policy decision (``dryRun`` for a dry run); None
    records no decision."""
    audit = []
    if started:
        audit.append({"time": started, "actor": "stanch", "event": "Baseline", "toPhase": "Baseline"})
    if ended and phase:
        audit.append({"time": ended, "actor": "stanch", "event": phase, "toPhase": phase})
    return past_mitigation(
        {
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": {"target": {"name": target}, "rollback": {}, "dryRun": dry_run},
            "status": {
                **({"phase": phase, "audit": audit} if phase else {}),
                **({"policy": {"decision": "Allow", "rule": decided_rule}} if decided_rule else {}),
            },
        }
    )
