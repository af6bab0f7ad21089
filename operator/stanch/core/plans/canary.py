"""Canary: a Deployment of our own running the fix beside the stable one; promoted once healthy."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import Create, Delete, ObjectKey, Patch, Precondition, Reads, Step, pointer
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import CANARY_LABEL, ActionPlan, MutatingEffect, PlanError, deployment_key, meta
from stanch.core.plans.diff import diff_lines
from stanch.core.plans.snapshot import ActionSnapshot, Snapshot
from stanch.core.world import World


def canary_name(target: str, mitigation: str) -> str:
    name = f"{target}-canary-{mitigation}"
    if len(name) > 253:
        raise PlanError(f"canary name {name[:60]}... exceeds 253 characters; shorten the Mitigation's name")
    return name


def container_index(template: Mapping[str, Any], name: str | None) -> int:
    containers = (template.get("spec") or {}).get("containers") or []
    if name is None:
        if not containers:
            raise PlanError("the target's pod template has no containers")
        return 0
    for i, c in enumerate(containers):
        if c.get("name") == name:
            return i
    have = ", ".join(str(c.get("name")) for c in containers)
    raise PlanError(f"spec.canary.container {name!r} not in the pod template (containers: {have})")


def patched_container(spec: MitigationSpec, container: Mapping[str, Any]) -> dict[str, Any]:
    assert spec.canary is not None
    out = copy.deepcopy(dict(container))
    if spec.canary.image is not None:
        out["image"] = spec.canary.image
    if spec.canary.env:
        env = [e for e in out.get("env") or [] if e.get("name") not in {v.name for v in spec.canary.env}]
        env.extend({"name": v.name, "value": v.value} for v in spec.canary.env)
        out["env"] = env
    if spec.canary.args is not None:
        out["args"] = list(spec.canary.args)
    return out


def canary_manifest(
    spec: MitigationSpec, target: Mapping[str, Any], name: str, mitigation: str, mitigation_uid: str
) -> dict[str, Any]:
    """The canary Deployment.

    Pods: the target's pod labels (so the Service selects them and they get a share of traffic by
    replica ratio) plus ``stanch.dev/canary``. Selector: the target's selector plus the canary label.
    No adoption either way: a ReplicaSet adopts only pods with no controller that match its selector,
    and a Deployment only such ReplicaSets. Canary pods are controlled by the canary's ReplicaSet
    and carry its own ``pod-template-hash`` (the stable ReplicaSets' selectors include theirs); stable
    pods lack the canary label. The one hazard is an *orphaned* canary ReplicaSet (deleted with
    ``propagationPolicy: Orphan``): its labels match the stable Deployment's selector, which would
    adopt it into its rollout history. Stanch deletes the canary with background propagation only.
    Owned by the Mitigation only: nothing of ours ever owns the user's workload.
    """
    assert spec.canary is not None
    tspec = target.get("spec") or {}
    template = copy.deepcopy(tspec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {})
    labels.pop("pod-template-hash", None)
    labels[CANARY_LABEL] = mitigation
    tmeta["labels"] = labels
    index = container_index(template, spec.canary.container)
    template["spec"]["containers"][index] = patched_container(spec, template["spec"]["containers"][index])
    selector = copy.deepcopy(tspec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), CANARY_LABEL: mitigation}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta(target).get("namespace"),
            "labels": {**(meta(target).get("labels") or {}), CANARY_LABEL: mitigation},
            "ownerReferences": [
                {
                    "apiVersion": "stanch.dev/v1alpha1",
                    "kind": "Mitigation",
                    "name": mitigation,
                    "uid": mitigation_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"replicas": spec.canary.replicas, "selector": selector, "template": template},
    }


class CanarySnapshot(ActionSnapshot):
    canary: str
    """The canary Deployment's name."""


class Canary(BaseAction[CanarySnapshot]):
    kind = ActionKind.CANARY
    part = CanarySnapshot

    def reads(
        self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[CanarySnapshot] | None
    ) -> Reads:
        canary = (
            ObjectKey("apps/v1", "Deployment", snapshot.action.canary, target.namespace) if snapshot else None
        )
        return Reads(target=target, hpa=True, canary=canary)

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> CanarySnapshot:
        return CanarySnapshot(canary=canary_name(spec.target.name, mitigation))

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[CanarySnapshot]) -> bool:
        return True

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[CanarySnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        assert spec.canary is not None
        target = snapshot.target_object()
        key = deployment_key(target)
        name = snapshot.action.canary
        manifest = canary_manifest(spec, target, name, mitigation, mitigation_uid)
        template = target["spec"].get("template") or {}
        index = container_index(template, spec.canary.container)
        container = template["spec"]["containers"][index]
        fixed = patched_container(spec, container)
        promote_ops = tuple(
            {
                "op": "add",
                "path": pointer("spec", "template", "spec", "containers", index, field),
                "value": fixed[field],
            }
            for field in ("image", "env", "args")
            if field in fixed and fixed.get(field) != container.get(field)
        )
        canary_key = ObjectKey("apps/v1", "Deployment", name, key.namespace)
        promote: tuple[MutatingEffect, ...] = (
            Patch(
                key=key,
                ops=promote_ops,
                precondition=Precondition(
                    generation=meta(target).get("generation"),
                    tests=(
                        (
                            pointer("spec", "template", "spec", "containers", index, "name"),
                            container.get("name"),
                        ),
                    ),
                ),
                step=Step.PROMOTE,
                description=f"promote the fix into {key.display()}",
            ),
            Delete(
                key=canary_key,
                precondition=Precondition(),
                step=Step.PROMOTE,
                description="remove the canary",
            ),
        )
        return ActionPlan(
            summary=f"canary {canary_key.display()} with {spec.canary.replicas} replica(s)",
            changes=tuple(diff_lines(container, fixed, f"containers[{index}]")),
            apply=(
                Create(
                    manifest=manifest,
                    owner_uid=mitigation_uid,
                    step=Step.APPLY,
                    description="create the canary",
                ),
            ),
            promote=promote,
            revert_note="deletes the canary (abort); the stable Deployment was never touched",
        )

    def revert(
        self,
        plan: ActionPlan,
        snapshot: Snapshot[CanarySnapshot],
        *,
        applied_generation: int | None,
        at: datetime,
    ) -> tuple[MutatingEffect, ...]:
        return tuple(
            Delete(key=e.key, precondition=Precondition(), step=Step.REVERT, description="delete the canary")
            for e in plan.apply
            if isinstance(e, Create)
        )
