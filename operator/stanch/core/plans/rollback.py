"""``kubectl rollout undo`` for a Deployment, as data.

kubectl's DeploymentRollbacker (pkg/polymorphichelpers/rollback.go), step by step:

1. Pick the ReplicaSet: among the ReplicaSets the Deployment controls, by the integer in
   ``deployment.kubernetes.io/revision`` (missing = 0, unparsable = skipped). With ``--to-revision``
   the one with exactly that revision, else an error; without it the *second highest* revision
   ("no rollout history found" when there is none).
2. Refuse a paused Deployment.
3. Skip when the ReplicaSet's template equals the Deployment's, ignoring the ``pod-template-hash``
   label (semantic equality: a nil and an empty map or list are equal).
4. Send one JSON patch: ``replace /spec/template`` with the ReplicaSet's template minus the
   ``pod-template-hash`` label, and ``replace /metadata/annotations`` with the Deployment's own values
   of the skip-listed annotations plus every other annotation of the ReplicaSet. So the ReplicaSet's
   ``kubernetes.io/change-cause`` comes along, and Deployment annotations the ReplicaSet lacks are
   dropped.

Two deliberate additions, neither visible once the mitigation ends: the patch also keeps our lock
annotation (released at the end, leaving exactly kubectl's annotations), and it is conditional on the
Deployment's generation (kubectl's patch is unconditional).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stanch.core.effects import JsonPatchOp, ObjectKey, Patch, Precondition, Reads, Step, pointer
from stanch.core.models import LOCK_ANNOTATION, ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction, revert_patch
from stanch.core.plans.common import (
    ActionPlan,
    MutatingEffect,
    PlanError,
    annotations_of,
    deployment_key,
    meta,
)
from stanch.core.plans.diff import diff_lines
from stanch.core.plans.jsonpatch import prune_empty
from stanch.core.plans.snapshot import ActionSnapshot, Snapshot
from stanch.core.scope import LockHolder
from stanch.core.world import World

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
"""kubectl keeps the Deployment's own values of these and never copies them from the ReplicaSet."""


def revision_of(obj: Mapping[str, Any]) -> int | None:
    """kubectl's ``deploymentutil.Revision``: missing annotation = 0, unparsable = None (skipped)."""
    value = annotations_of(obj).get(REVISION)
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def controlled_by(rs: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    uid = meta(deployment).get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in meta(rs).get("ownerReferences") or ()
    )


def choose_replica_set(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]], to_revision: int | None
) -> Mapping[str, Any]:
    """kubectl's ``deploymentRevision``: the ReplicaSet to roll back to, or PlanError."""
    name = meta(deployment).get("name")
    latest: tuple[int, Mapping[str, Any] | None] = (-1, None)
    previous: tuple[int, Mapping[str, Any] | None] = (-1, None)
    found: list[int] = []
    for rs in replica_sets:
        if not controlled_by(rs, deployment):
            continue
        rev = revision_of(rs)
        if rev is None:
            continue
        found.append(rev)
        if to_revision is not None:
            if rev == to_revision:
                return rs
        elif latest[0] < rev:
            previous, latest = latest, (rev, rs)
        elif previous[0] < rev:
            previous = (rev, rs)
    if to_revision is not None:
        have = ", ".join(str(r) for r in sorted(set(found))) or "none"
        raise PlanError(
            f"spec.rollback.toRevision {to_revision}: no ReplicaSet of Deployment {name!r} has that "
            f"revision (revisions in history: {have}); pick one of those or leave toRevision unset"
        )
    if previous[1] is None:
        raise PlanError(
            f"no rollout history found for Deployment {name!r}: it has only "
            f"{'one revision' if found else 'no revisions'}, so there is nothing to roll back to"
        )
    return previous[1]


def template_without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
    return out


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """kubectl's ``EqualIgnoreHash`` on templates as the API returns them."""
    return bool(prune_empty(template_without_hash(a or {})) == prune_empty(template_without_hash(b or {})))


def rollback_annotations(deployment: Mapping[str, Any], rs: Mapping[str, Any]) -> dict[str, str]:
    """kubectl's computed annotations: skip-listed keys from the Deployment, the rest from the RS."""
    current = annotations_of(deployment)
    out = {k: current[k] for k in ANNOTATIONS_TO_SKIP if k in current}
    out.update({k: v for k, v in annotations_of(rs).items() if k not in ANNOTATIONS_TO_SKIP})
    return out


class ChosenRevision(ActionSnapshot):
    """The revision to roll back to and what the rollback writes besides the template."""

    revision: int | None
    replica_set: str | None
    template: dict[str, Any]
    """The ReplicaSet's pod template, as read (the patch drops its ``pod-template-hash``)."""
    annotations: dict[str, str]
    """The Deployment's annotations after the rollback, as kubectl computes them (the lock and a
    held GitOps switch are added when the patch is made)."""
    restore: dict[str, str] = {}
    """The Deployment's own values of the annotations the rollback changes or drops: the revert
    puts these back."""
    added: list[str] = []
    """Annotations the Deployment lacked and the rollback adds: the revert removes them."""


class RollbackSnapshot(ActionSnapshot):
    rollback: ChosenRevision


def _not_reverted(key: str) -> bool:
    """The controller's revision annotations and our lock are left to the controller and the unlock."""
    return key.startswith("deployment.kubernetes.io/") or key == LOCK_ANNOTATION


def _chosen(deployment: Mapping[str, Any], rs: Mapping[str, Any]) -> ChosenRevision:
    before = annotations_of(deployment)
    after = rollback_annotations(deployment, rs)
    return ChosenRevision(
        revision=revision_of(rs),
        replica_set=meta(rs).get("name"),
        template=copy.deepcopy(rs["spec"]["template"]),
        annotations=after,
        restore={k: v for k, v in before.items() if not _not_reverted(k) and after.get(k) != v},
        added=sorted(k for k in after if not _not_reverted(k) and k not in before),
    )


def snapshot_rollback(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]], to_revision: int | None
) -> ChosenRevision:
    """Choose the revision (kubectl's order of checks: revision, then paused) and keep what the plan
    needs. Raises PlanError naming the field and the fix."""
    rs = choose_replica_set(deployment, replica_sets, to_revision)
    if (deployment.get("spec") or {}).get("paused"):
        raise PlanError(
            f"Deployment {meta(deployment).get('name')!r} is paused (spec.paused: true): kubectl "
            "refuses to roll back a paused Deployment; resume it first (kubectl rollout resume, or a "
            "Mitigation with pause: {resume: true}) and try again"
        )
    return _chosen(deployment, rs)


def rollback_patch(
    snapshot_target: Mapping[str, Any],
    chosen: ChosenRevision,
    holder: str,
    held: Mapping[str, str] | None = None,
) -> Patch:
    """``held``: annotations set with the lock (a GitOps switch) that must survive the rollback."""
    new_annotations = dict(chosen.annotations)
    new_annotations.update(held or {})
    new_annotations[LOCK_ANNOTATION] = holder
    has_annotations = meta(snapshot_target).get("annotations") is not None
    key = deployment_key(snapshot_target)
    return Patch(
        key=key,
        ops=(
            {"op": "replace", "path": "/spec/template", "value": template_without_hash(chosen.template)},
            {
                "op": "replace" if has_annotations else "add",
                "path": "/metadata/annotations",
                "value": new_annotations,
            },
        ),
        precondition=Precondition(generation=meta(snapshot_target).get("generation")),
        step=Step.APPLY,
        description=f"roll {key.display()} back to revision {chosen.revision} ({chosen.replica_set})",
    )


class Rollback(BaseAction[RollbackSnapshot]):
    """``kubectl rollout undo``, guarded."""

    kind = ActionKind.ROLLBACK
    part = RollbackSnapshot

    def reads(
        self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[RollbackSnapshot] | None
    ) -> Reads:
        return Reads(target=target, replica_sets=True, hpa=True)

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> RollbackSnapshot:
        assert spec.rollback is not None
        assert world.target is not None
        return RollbackSnapshot(
            rollback=snapshot_rollback(world.target, world.replica_sets, spec.rollback.to_revision)
        )

    def read(self, raw: Mapping[str, Any]) -> RollbackSnapshot:
        if "version" in raw:
            return RollbackSnapshot.model_validate(raw)
        # Written by an older Stanch: the ReplicaSet's own annotations beside a full copy of the
        # Deployment; compute what the rollback writes and restores from those.
        old = raw["rollback"]
        rs = {"metadata": {"name": old.get("replicaSet"), "annotations": old["annotations"]}, "spec": old}
        chosen = _chosen(raw["target"], rs).model_copy(update={"revision": old.get("revision")})
        return RollbackSnapshot(rollback=chosen)

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[RollbackSnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        chosen = snapshot.action.rollback
        target = snapshot.target_object()
        current = (target.get("spec") or {}).get("template")
        if equal_ignore_hash(chosen.template, current):
            return ActionPlan(
                summary=f"nothing to do: the current template already matches revision {chosen.revision}",
                changes=(),
                apply=(),
                noop_reason=f"current template already matches revision {chosen.revision}",
            )
        # The rollback replaces the annotations, so it writes our lock back: as <namespace>/<name>,
        # the target's namespace being the Mitigation's own (design invariant 11).
        holder = LockHolder(deployment_key(target).namespace or "", mitigation).value
        patch = rollback_patch(target, chosen, holder, snapshot.held)
        return ActionPlan(
            summary=f"roll back {deployment_key(target).display()} to revision {chosen.revision} "
            f"({chosen.replica_set})",
            changes=tuple(diff_lines(current, patch.ops[0]["value"], "spec.template")),
            apply=(patch,),
            revert_note="restores the snapshot's pod template and annotations",
        )

    def revert(
        self,
        plan: ActionPlan,
        snapshot: Snapshot[RollbackSnapshot],
        *,
        applied_generation: int | None,
        at: datetime,
    ) -> tuple[MutatingEffect, ...]:
        chosen = snapshot.action.rollback
        held = snapshot.held
        ops: list[JsonPatchOp] = []
        for k in sorted({*chosen.restore, *chosen.added}):
            if k in held:
                continue  # released at the end, not by the revert
            path = pointer("metadata", "annotations", k)
            ops.append(
                {"op": "add", "path": path, "value": chosen.restore[k]}
                if k in chosen.restore
                else {"op": "remove", "path": path}
            )
        return tuple(
            revert_patch(
                effect,
                snapshot.target.as_object(),
                applied_generation=applied_generation,
                annotation_ops=tuple(ops),
            )
            for effect in plan.apply
            if isinstance(effect, Patch)
        )

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[RollbackSnapshot]) -> bool:
        return True
