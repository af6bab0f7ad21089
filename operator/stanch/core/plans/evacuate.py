"""Evacuate: cordon a node (unless it already was) and evict the workload's pods from it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import Evict, ObjectKey, Patch, Precondition, Reads, Step, pointer
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import CORDONED_BY, ActionPlan, MutatingEffect, PlanError, deployment_key, meta
from stanch.core.plans.snapshot import ActionSnapshot, ObjectRef, Snapshot, SnapshotPart
from stanch.core.world import World


class NodeState(SnapshotPart):
    """The node as it was, and whether we cordon it."""

    name: str
    uid: str | None = None
    unschedulable: bool | None = None
    has_annotations: bool = True
    cordoned_by: str | None = None
    """Write-ahead: ``<namespace>/<mitigation>`` when *we* cordon it (then, and only then, the revert
    uncordons); None when it was already cordoned."""


class EvacuateSnapshot(ActionSnapshot):
    node: NodeState
    pods: list[ObjectRef] = []
    """The workload's pods on the node (not already terminating): the evictions."""


class Evacuate(BaseAction[EvacuateSnapshot]):
    kind = ActionKind.EVACUATE
    part = EvacuateSnapshot

    def reads(
        self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[EvacuateSnapshot] | None
    ) -> Reads:
        assert spec.evacuate is not None
        node = spec.evacuate.node
        return Reads(target=target, hpa=True, node=ObjectKey("v1", "Node", node), pods_on_node=node)

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> EvacuateSnapshot:
        assert spec.evacuate is not None
        assert world.target is not None
        node = world.node
        if node is None:
            raise PlanError(
                f"spec.evacuate.node {spec.evacuate.node!r}: no such node; name an existing node "
                "(kubectl get nodes)"
            )
        unschedulable = (node.get("spec") or {}).get("unschedulable")
        return EvacuateSnapshot(
            node=NodeState(
                name=meta(node)["name"],
                uid=meta(node).get("uid"),
                unschedulable=unschedulable,
                has_annotations=meta(node).get("annotations") is not None,
                cordoned_by=None if unschedulable else f"{meta(world.target).get('namespace')}/{mitigation}",
            ),
            pods=[
                ObjectRef(name=meta(p)["name"], uid=meta(p).get("uid"))
                for p in world.pods_on_node
                if not meta(p).get("deletionTimestamp")
            ],
        )

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[EvacuateSnapshot]) -> bool:
        return True  # evicted pods are replaced elsewhere

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[EvacuateSnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        """Cordon (unless it already was) in ``Apply``, then evict the workload's pods in ``Evict``.

        The cordon patch also sets :data:`CORDONED_BY` to the snapshot's ``cordonedBy``, atomically
        and conditional on the node being schedulable with no such annotation: the annotation proves
        the cordon is ours, and only then does a revert uncordon (conditional on both). A node that
        was already cordoned gets no patch, so its revert changes nothing.
        """
        node = snapshot.action.node
        namespace = deployment_key(snapshot.target_object()).namespace
        node_key = ObjectKey("v1", "Node", node.name)
        apply: list[MutatingEffect] = []
        if not node.unschedulable:
            mark = pointer("metadata", "annotations", CORDONED_BY)
            ops: tuple[Mapping[str, Any], ...] = (
                {"op": "add", "path": "/spec/unschedulable", "value": True},
                {"op": "add", "path": mark, "value": node.cordoned_by}
                if node.has_annotations
                else {"op": "add", "path": "/metadata/annotations", "value": {CORDONED_BY: node.cordoned_by}},
            )
            tests = (
                ("/spec/unschedulable", node.unschedulable),
                (mark, None) if node.has_annotations else ("/metadata/annotations", None),
            )
            apply.append(
                Patch(
                    key=node_key,
                    ops=ops,
                    precondition=Precondition(uid=node.uid, tests=tests),
                    step=Step.APPLY,
                    description=f"cordon {node.name}",
                )
            )
        evict = tuple(
            Evict(
                key=ObjectKey("v1", "Pod", p.name, namespace),
                precondition=Precondition(uid=p.uid),
                step=Step.EVICT,
                description=f"evict pod {p.name} from {node.name}",
            )
            for p in snapshot.action.pods
        )
        return ActionPlan(
            summary=f"evacuate Deployment/{namespace}/{snapshot.target.name} from node {node.name}: "
            + ("cordon, " if apply else "already cordoned, ")
            + f"evict {len(evict)} pod(s) (PodDisruptionBudgets apply)",
            changes=tuple(e.description for e in (*apply, *evict)),
            apply=tuple(apply),
            evict=evict,
            evict_from=node.name,
            revert_note=(
                "uncordons the node (Stanch cordoned it); evicted pods are not moved back"
                if apply
                else "leaves the node cordoned (it was cordoned before); evicted pods are not moved back"
            ),
        )

    def revert(
        self,
        plan: ActionPlan,
        snapshot: Snapshot[EvacuateSnapshot],
        *,
        applied_generation: int | None,
        at: datetime,
    ) -> tuple[MutatingEffect, ...]:
        return tuple(_uncordon(snapshot.action.node, e.key) for e in plan.apply if isinstance(e, Patch))


def _uncordon(node: NodeState, key: ObjectKey) -> Patch:
    """Undo our cordon: conditional on the node still being cordoned *with our mark*, so a node
    someone else cordoned (or re-cordoned) meanwhile stays as they left it."""
    mark = pointer("metadata", "annotations", CORDONED_BY)
    return Patch(
        key=key,
        ops=(
            {"op": "remove", "path": "/spec/unschedulable"}
            if node.unschedulable is None
            else {"op": "add", "path": "/spec/unschedulable", "value": node.unschedulable},
            {"op": "remove", "path": mark},
        ),
        precondition=Precondition(
            uid=node.uid, tests=(("/spec/unschedulable", True), (mark, node.cordoned_by))
        ),
        step=Step.REVERT,
        description=f"uncordon {node.name}",
    )
