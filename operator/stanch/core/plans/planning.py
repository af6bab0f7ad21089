"""The plans' entry points: snapshot, plan, revert, reads and "does it start pods?", each looked up
in :data:`~stanch.core.plans.table.ACTIONS` by the Mitigation's action.

Everything after :func:`take_snapshot` is computed from the persisted snapshot alone, never from the
live object, so re-running a step after a crash produces byte-identical effects: a scale by a factor
is computed from the snapshot's replicas, a restart's timestamp is the snapshot's ``takenAt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from stanch.core.effects import ObjectKey, Reads
from stanch.core.models import MitigationSpec
from stanch.core.plans.common import ActionPlan, MutatingEffect, PlanError, rfc3339
from stanch.core.plans.rollback import equal_ignore_hash
from stanch.core.plans.snapshot import CommonSnapshot, HpaSnapshot, ObjectRef, Snapshot, TargetSnapshot
from stanch.core.plans.table import action_for
from stanch.core.world import World

AnySnapshot = Snapshot[Any]
SnapshotLike = Snapshot[Any] | Mapping[str, Any]
"""A typed snapshot, or ``status.snapshot`` as persisted (any version)."""


def take_snapshot(spec: MitigationSpec, world: World, *, mitigation: str, now: datetime) -> AnySnapshot:
    """The pre-change record persisted before anything is touched. Raises PlanError."""
    target = world.target
    if target is None:
        raise PlanError(
            f"spec.target: {spec.target.display()} not found (kubectl get deployments -n <namespace>); "
            "spec.target is immutable, so delete this Mitigation and create one naming an existing workload"
        )
    common = CommonSnapshot(
        taken_at=rfc3339(now),
        target=TargetSnapshot.model_validate(target).model_copy(
            update={"template_replica_set": _template_replica_set(target, world)}
        ),
        hpa=HpaSnapshot.model_validate(world.hpa) if world.hpa is not None else None,
    )
    return Snapshot(common=common, action=action_for(spec.action).take(spec, world, mitigation=mitigation))


def _template_replica_set(target: Mapping[str, Any], world: World) -> ObjectRef | None:
    """The target's ReplicaSet whose template is the target's (kubectl's EqualIgnoreHash)."""
    uid = (target.get("metadata") or {}).get("uid")
    template = (target.get("spec") or {}).get("template")
    for rs in world.replica_sets:
        rs_meta = rs.get("metadata") or {}
        owned = any(ref.get("uid") == uid for ref in rs_meta.get("ownerReferences") or ())
        if owned and equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return ObjectRef(name=rs_meta.get("name", ""), uid=rs_meta.get("uid"))
    return None


def read_snapshot(spec: MitigationSpec, raw: SnapshotLike) -> AnySnapshot:
    """``status.snapshot`` as written by this or an older Stanch, typed."""
    if isinstance(raw, Snapshot):
        return raw
    return Snapshot(common=CommonSnapshot.model_validate(raw), action=action_for(spec.action).read(raw))


def plan(spec: MitigationSpec, snapshot: SnapshotLike, *, mitigation: str, mitigation_uid: str) -> ActionPlan:
    """The change, from the snapshot alone."""
    snap = read_snapshot(spec, snapshot)
    p = action_for(spec.action).plan(spec, snap, mitigation=mitigation, mitigation_uid=mitigation_uid)
    return replace(p, action=spec.action)


def revert_effects(
    plan_: ActionPlan, snapshot: SnapshotLike, *, applied_generation: int | None, at: datetime
) -> tuple[MutatingEffect, ...]:
    """Undo ``plan_.apply`` back to the snapshot, each conditional on the values we wrote."""
    if not plan_.reversible:
        return ()
    assert plan_.action is not None, "a plan made by plan() names its action"
    module = action_for(plan_.action)
    snap = (
        snapshot
        if isinstance(snapshot, Snapshot)
        else Snapshot(common=CommonSnapshot.model_validate(snapshot), action=module.read(snapshot))
    )
    return module.revert(plan_, snap, applied_generation=applied_generation, at=at)


def revert_pairs(
    plan_: ActionPlan, snapshot: SnapshotLike, *, applied_generation: int | None, at: datetime
) -> tuple[tuple[MutatingEffect, MutatingEffect | None], ...]:
    """Each write of ``plan_.apply`` with the one write that undoes it alone (None: nothing to undo,
    e.g. a deleted pod), in the order the revert sends them.

    A revert may find the change half applied (a crash or a refusal between two writes) or half
    reverted (the same during the revert): pairing lets it undo exactly the writes that are in
    place. Every action's revert is per write, so the pairs' undos are :func:`revert_effects`.
    """
    out: list[tuple[MutatingEffect, MutatingEffect | None]] = []
    for write in plan_.apply:
        alone = replace(plan_, apply=(write,))
        undo = revert_effects(alone, snapshot, applied_generation=applied_generation, at=at)
        assert len(undo) <= 1, "an action's revert undoes each write with at most one write"
        out.append((write, undo[0] if undo else None))
    return tuple(out)


def starts_pods(spec: MitigationSpec, snapshot: SnapshotLike) -> bool:
    """Whether the action makes new pods start (whose cold start the guard lets settle): a new
    template, a canary, evicted pods replaced elsewhere, or more replicas. A scale-down, a pause or
    a config change without restart starts none, and is judged from its first check."""
    return action_for(spec.action).starts_pods(spec, read_snapshot(spec, snapshot))


def reads(spec: MitigationSpec, target: ObjectKey, snapshot: SnapshotLike | None) -> Reads:
    """What ``ObserveTarget`` must read for this Mitigation."""
    snap = read_snapshot(spec, snapshot) if snapshot else None
    wanted = action_for(spec.action).reads(spec, target, snap)
    # The snapshot records the ReplicaSet holding the template (where its secret values are
    # restored from), so the read before it is taken lists them.
    return wanted if snap is not None else replace(wanted, replica_sets=True)
