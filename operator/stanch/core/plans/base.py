"""What most actions share: the default reads, the live-object lookup, the field-by-field revert.

:class:`BaseAction` gives an action module these defaults; a module overrides what differs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic

from stanch.core.effects import (
    Create,
    Delete,
    Evict,
    JsonPatchOp,
    ObjectKey,
    Patch,
    Precondition,
    Reads,
    Step,
)
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.common import ActionPlan, MutatingEffect, meta
from stanch.core.plans.jsonpatch import get_path
from stanch.core.plans.snapshot import PartT, Snapshot
from stanch.core.world import K8sObject, World


def live_object(world: World, key: ObjectKey) -> K8sObject | None:
    """The live object for ``key`` from what ``ObserveTarget`` read (None = absent)."""
    candidates: list[K8sObject | None]
    if key.kind == "Deployment":
        candidates = [world.target, world.canary]
    elif key.kind == "HorizontalPodAutoscaler":
        candidates = [world.hpa]
    elif key.kind == "ConfigMap":
        candidates = [world.config_map]
    elif key.kind == "Node":
        candidates = [world.node]
    else:
        candidates = [*world.pods, *world.pods_on_node]
    return next((c for c in candidates if c is not None and meta(c).get("name") == key.name), None)


def as_stored(value: Any) -> Any:
    """A value as the API server stores what we wrote: ``false`` in an omitempty boolean
    (``spec.paused``, ``spec.unschedulable``) is dropped and reads back absent. A resume writes
    ``paused: false``; comparing that with the live object must not see a change (false drift), and a
    test op on it must expect absence (``null``), not ``false``."""
    return None if value is False else value


def with_generation(obj: Mapping[str, Any], generation: int | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    out.setdefault("metadata", {})["generation"] = generation
    return out


def revert_patch(
    effect: Patch,
    before: Mapping[str, Any],
    *,
    applied_generation: int | None,
    annotation_ops: tuple[JsonPatchOp, ...] = (),
) -> Patch:
    """Put every field ``effect`` wrote back to its value in ``before``, conditional on each still
    holding what we wrote (a Deployment: on the generation our change left). A whole-annotations
    write is reverted key by key by its action (``annotation_ops``), never as a whole map."""
    ops: list[JsonPatchOp] = []
    tests: list[tuple[str, Any]] = []
    for op in effect.ops:
        path = op["path"]
        if path == "/metadata/annotations":
            ops.extend(annotation_ops)
            continue
        old = get_path(before, path)
        tests.append(
            (path, as_stored(op["value"]))
            if path != "/spec/template"
            else (path + "/spec", op["value"].get("spec"))
        )
        ops.append(
            {"op": "remove", "path": path} if old is None else {"op": "add", "path": path, "value": old}
        )
    generation = applied_generation if effect.key.kind == "Deployment" else None
    return Patch(
        key=effect.key,
        ops=tuple(ops),
        precondition=Precondition(uid=effect.precondition.uid, generation=generation, tests=tuple(tests)),
        step=Step.REVERT,
        description=f"revert: {effect.description}",
    )


class BaseAction(Generic[PartT]):
    """Defaults for an action module (see :class:`stanch.core.plans.protocol.Action`)."""

    kind: ActionKind
    part: type[PartT]

    def reads(self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[PartT] | None) -> Reads:
        return Reads(target=target, hpa=True)

    def read(self, raw: Mapping[str, Any]) -> PartT:
        return self.part.model_validate(raw)

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[PartT]) -> bool:
        return False

    def live(self, world: World, key: ObjectKey) -> K8sObject | None:
        return live_object(world, key)

    def before(self, snapshot: Snapshot[PartT], key: ObjectKey) -> Mapping[str, Any]:
        """The object ``key`` as the snapshot recorded it (what a revert restores)."""
        if key.kind == "HorizontalPodAutoscaler" and snapshot.common.hpa is not None:
            return snapshot.common.hpa.as_object()
        return snapshot.target.as_object()

    def revert(
        self, plan: ActionPlan, snapshot: Snapshot[PartT], *, applied_generation: int | None, at: datetime
    ) -> tuple[MutatingEffect, ...]:
        out: list[MutatingEffect] = []
        for effect in plan.apply:
            if isinstance(effect, Create | Delete | Evict):
                continue  # pods are replaced by their controller, not restored; creates: see canary
            out.append(
                revert_patch(effect, self.before(snapshot, effect.key), applied_generation=applied_generation)
            )
        return tuple(out)
