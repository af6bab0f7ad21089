"""Restart: a rolling restart (``kubectl rollout restart``) or named pods deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stanch.core.effects import Delete, ObjectKey, Patch, Precondition, Reads, Step, pointer
from stanch.core.label_selectors import selects
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import RESTARTED_AT, ActionPlan, PlanError, deployment_key, meta
from stanch.core.plans.snapshot import ActionSnapshot, ObjectRef, Snapshot
from stanch.core.world import World

NO_UNDO = "a restart cannot be undone: the pods were replaced; nothing to revert"


def restart_patch(target: Mapping[str, Any], at: str, step: str) -> Patch:
    """What ``kubectl rollout restart`` writes: the template's ``restartedAt`` annotation."""
    tmpl_meta = ((target.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if tmpl_meta.get("annotations") is not None:
        op: dict[str, Any] = {
            "op": "add",
            "path": pointer("spec", "template", "metadata", "annotations", RESTARTED_AT),
            "value": at,
        }
    else:
        op = {"op": "add", "path": "/spec/template/metadata/annotations", "value": {RESTARTED_AT: at}}
    key = deployment_key(target)
    return Patch(
        key=key,
        ops=(op,),
        precondition=Precondition(generation=meta(target).get("generation")),
        step=step,
        description=f"rolling restart of {key.display()} (restartedAt {at})",
    )


class RestartSnapshot(ActionSnapshot):
    pods: list[ObjectRef] = []
    """The named pods that existed (by uid: a replacement with the same name is not deleted)."""


class Restart(BaseAction[RestartSnapshot]):
    kind = ActionKind.RESTART
    part = RestartSnapshot

    def reads(
        self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[RestartSnapshot] | None
    ) -> Reads:
        assert spec.restart is not None
        return Reads(target=target, hpa=True, pods=tuple(spec.restart.pods))

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> RestartSnapshot:
        assert spec.restart is not None
        assert world.target is not None
        target = world.target
        if spec.restart.pods and not world.pods:
            raise PlanError(
                f"spec.restart.pods: none of {', '.join(spec.restart.pods)} exist (they may have been "
                "replaced already); name current pods (kubectl get pods) or leave pods empty for a "
                "rolling restart"
            )
        if not spec.restart.pods and (target.get("spec") or {}).get("paused"):
            raise PlanError(
                "can't restart a paused Deployment (spec.paused: true), as kubectl refuses too; "
                "resume it first"
            )
        selector = (target.get("spec") or {}).get("selector") or {}
        foreign = sorted(
            str(meta(p).get("name"))
            for p in world.pods
            if meta(p).get("name") in spec.restart.pods and not selects(selector, meta(p).get("labels") or {})
        )
        if foreign:
            raise PlanError(
                f"spec.restart.pods: {', '.join(foreign)} not selected by {spec.target.display()}'s "
                "selector (pods of another workload); name pods of the target only "
                "(kubectl get pods -l <its selector>)"
            )
        return RestartSnapshot(
            pods=[
                ObjectRef(name=meta(p)["name"], uid=meta(p).get("uid"))
                for p in world.pods
                if meta(p).get("name") in spec.restart.pods
            ]
        )

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[RestartSnapshot]) -> bool:
        return True

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[RestartSnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        assert spec.restart is not None
        target = snapshot.target_object()
        key = deployment_key(target)
        if spec.restart.pods:
            pods = snapshot.action.pods
            deletes = tuple(
                Delete(
                    key=ObjectKey("v1", "Pod", p.name, key.namespace),
                    precondition=Precondition(uid=p.uid),
                    step=Step.APPLY,
                    description=f"delete pod {p.name}",
                )
                for p in pods
            )
            missing = sorted(set(spec.restart.pods) - {p.name for p in pods})
            return ActionPlan(
                summary=f"restart pods {', '.join(spec.restart.pods)}"
                + (f" (not found, skipped: {', '.join(missing)})" if missing else ""),
                changes=tuple(d.description for d in deletes),
                apply=deletes,
                revert_note=NO_UNDO,
                reversible=False,
            )
        return ActionPlan(
            summary=f"rolling restart of {key.display()} (kubectl rollout restart)",
            changes=(f"spec.template.metadata.annotations[{RESTARTED_AT}] = {snapshot.taken_at}",),
            apply=(restart_patch(target, snapshot.taken_at, Step.APPLY),),
            revert_note=NO_UNDO,
            reversible=False,
        )
