"""Scale: set the replicas, or, when an HPA owns them, move its bounds instead of fighting it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stanch.core.effects import ObjectKey, Patch, Precondition, Step
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import ActionPlan, PlanError, deployment_key, meta
from stanch.core.plans.snapshot import NoSnapshot, Snapshot
from stanch.core.world import World


def hpa_key(hpa: Mapping[str, Any]) -> ObjectKey:
    return ObjectKey(
        "autoscaling/v2", "HorizontalPodAutoscaler", meta(hpa)["name"], meta(hpa).get("namespace")
    )


def scale_target(spec: MitigationSpec, current: int) -> int:
    """The replicas wanted: absolute, or the factor applied to the snapshot's replicas (rounded up)."""
    assert spec.scale is not None
    if spec.scale.replicas is not None:
        return spec.scale.replicas
    assert spec.scale.factor is not None
    return math.ceil(current * spec.scale.factor)


def _current(snapshot: Snapshot[NoSnapshot]) -> int:
    return int(snapshot.target.spec.get("replicas", 1))


class Scale(BaseAction[NoSnapshot]):
    kind = ActionKind.SCALE
    part = NoSnapshot

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> NoSnapshot:
        return NoSnapshot()

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[NoSnapshot]) -> bool:
        """A scale-up starts pods; a scale-down starts none and is judged from its first check."""
        current = _current(snapshot)
        return scale_target(spec, current) > current

    def plan(
        self, spec: MitigationSpec, snapshot: Snapshot[NoSnapshot], *, mitigation: str, mitigation_uid: str
    ) -> ActionPlan:
        target = snapshot.target_object()
        key = deployment_key(target)
        current = int(target["spec"].get("replicas", 1))
        desired = scale_target(spec, current)
        if snapshot.common.hpa is not None:
            return _via_hpa(snapshot.common.hpa.as_object(), key, desired)
        if desired == current:
            return ActionPlan(
                f"nothing to do: {key.display()} already has {current} replicas", (), (), "already applied"
            )
        patch = Patch(
            key=key,
            ops=({"op": "replace", "path": "/spec/replicas", "value": desired},),
            precondition=Precondition(
                generation=meta(target).get("generation"), tests=(("/spec/replicas", current),)
            ),
            step=Step.APPLY,
            description=f"replicas {current} → {desired}",
        )
        return ActionPlan(
            summary=f"scale {key.display()}: replicas {current} → {desired}",
            changes=(f"spec.replicas: {current} → {desired}",),
            apply=(patch,),
            revert_note=f"restores replicas {current}",
        )


def _via_hpa(hpa: Mapping[str, Any], key: ObjectKey, desired: int) -> ActionPlan:
    hspec = hpa.get("spec") or {}
    old_min, old_max = hspec.get("minReplicas"), int(hspec["maxReplicas"])
    eff_min = 1 if old_min is None else int(old_min)
    if desired < 1:
        raise PlanError(f"{hpa_key(hpa).display()} targets this workload and cannot go below 1 replica")
    new_min = desired if desired >= eff_min else min(eff_min, desired)
    new_max = max(old_max, desired) if desired >= eff_min else desired
    if (new_min, new_max) == (eff_min, old_max) and old_min is not None:
        return ActionPlan(
            f"nothing to do: HPA already at min {new_min} max {new_max}", (), (), "already applied"
        )
    hpa_patch = Patch(
        key=hpa_key(hpa),
        ops=(
            {"op": "add", "path": "/spec/minReplicas", "value": new_min},
            {"op": "replace", "path": "/spec/maxReplicas", "value": new_max},
        ),
        precondition=Precondition(
            uid=meta(hpa).get("uid"),
            tests=(("/spec/minReplicas", old_min), ("/spec/maxReplicas", old_max)),
        ),
        step=Step.APPLY,
        description=(
            f"raise the HPA instead of fighting it: min {eff_min} → {new_min}, max {old_max} → {new_max}"
        ),
    )
    return ActionPlan(
        summary=f"scale {key.display()} to {desired} via {hpa_key(hpa).display()}",
        changes=(
            f"hpa.spec.minReplicas: {old_min} → {new_min}",
            f"hpa.spec.maxReplicas: {old_max} → {new_max}",
        ),
        apply=(hpa_patch,),
        revert_note=f"restores minReplicas {old_min} and maxReplicas {old_max}",
    )
