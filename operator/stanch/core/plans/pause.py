"""Pause (or resume) the target's rollout: ``spec.paused``."""

from __future__ import annotations

from stanch.core.effects import Patch, Precondition, Step
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import ActionPlan, deployment_key, meta
from stanch.core.plans.snapshot import NoSnapshot, Snapshot
from stanch.core.world import World


class Pause(BaseAction[NoSnapshot]):
    kind = ActionKind.PAUSE
    part = NoSnapshot

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> NoSnapshot:
        return NoSnapshot()

    def plan(
        self, spec: MitigationSpec, snapshot: Snapshot[NoSnapshot], *, mitigation: str, mitigation_uid: str
    ) -> ActionPlan:
        assert spec.pause is not None
        target = snapshot.target_object()
        key = deployment_key(target)
        paused = bool(target["spec"].get("paused"))
        want = not spec.pause.resume
        if paused == want:
            return ActionPlan(f"nothing to do: spec.paused is already {want}", (), (), "already applied")
        patch = Patch(
            key=key,
            ops=({"op": "add", "path": "/spec/paused", "value": want},),
            precondition=Precondition(generation=meta(target).get("generation")),
            step=Step.APPLY,
            description=f"spec.paused → {want}",
        )
        return ActionPlan(
            summary=f"{'pause' if want else 'resume'} the rollout of {key.display()}",
            changes=(f"spec.paused: {paused} → {want}",),
            apply=(patch,),
            revert_note=f"restores spec.paused {paused}",
        )
