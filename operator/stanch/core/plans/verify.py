"""Checking writes against the live objects: already applied? still as planned? drifted?

Every write recognises itself applied from what was read, so a step that landed before a crash is
never applied twice, and a step that did not land is re-issued only while its preconditions hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stanch.core.effects import Create, Delete, Evict, ObjectKey, Patch
from stanch.core.models import MitigationSpec
from stanch.core.plans.base import as_stored, live_object
from stanch.core.plans.common import ActionPlan, MutatingEffect, meta
from stanch.core.plans.diff import DIFF_MAX, unified_diff
from stanch.core.plans.jsonpatch import apply_ops, get_path, prune_empty
from stanch.core.plans.planning import AnySnapshot, SnapshotLike, read_snapshot
from stanch.core.plans.rollback import equal_ignore_hash
from stanch.core.plans.table import action_for
from stanch.core.redaction import shown_value
from stanch.core.world import K8sObject, World

Live = Callable[[World, ObjectKey], K8sObject | None]
"""Where a write's object is in what was read (an action's :meth:`~.protocol.Action.live`)."""


def effect_done(effect: MutatingEffect, world: World, live: Live = live_object) -> bool:
    """Whether the live object already is as ``effect`` leaves it."""
    obj = live(world, effect.key)
    if isinstance(effect, Delete | Evict):
        return (
            obj is None
            or (effect.precondition.uid is not None and meta(obj).get("uid") != effect.precondition.uid)
            or bool(meta(obj).get("deletionTimestamp"))
        )
    if isinstance(effect, Create):
        return obj is not None and any(
            ref.get("uid") == effect.owner_uid for ref in meta(obj).get("ownerReferences") or ()
        )
    if obj is None:
        return False
    for op in effect.ops:
        if op["path"] == "/metadata/annotations":
            continue  # the controller keeps rewriting the revision annotations
        value = get_path(obj, op["path"])
        if op["op"] == "remove":
            if value is not None:
                return False
        elif op["path"] == "/spec/template":
            if not equal_ignore_hash(value, op["value"]):
                return False
        elif prune_empty(value) != prune_empty(as_stored(op["value"])):
            return False
    return True


def is_applied(effects: tuple[MutatingEffect, ...], world: World, live: Live = live_object) -> bool:
    """Whether the live objects already are in the end state of ``effects`` (detects a step that
    landed before a crash, so it is never applied twice)."""
    return all(effect_done(e, world, live) for e in effects)


def remaining_writes(
    effects: tuple[MutatingEffect, ...], world: World, live: Live = live_object
) -> tuple[MutatingEffect, ...] | None:
    """The writes of a step still to send after a crash or a failure between two of them: those not
    already applied, in order. A step's writes are sent in order and the first failure stops the
    rest, so the writes already in place are a prefix of the step.

    None when they are not: a patch or a create (which only Stanch makes) is in place while an
    earlier write is not. Ours landed in order, so the earlier one was undone since, by someone
    else; re-sending it would overwrite their change (drift). Deletes and evictions are left out
    of that rule: a pod can go by itself.
    """
    done = [effect_done(e, world, live) for e in effects]
    ours = [i for i, e in enumerate(effects) if done[i] and isinstance(e, Patch | Create)]
    if ours and not all(done[: ours[-1]]):
        return None
    return tuple(e for e, d in zip(effects, done, strict=True) if not d)


def preconditions_hold(effects: tuple[MutatingEffect, ...], world: World, live: Live = live_object) -> bool:
    """Every write's precondition still holds on the live objects (the step can be re-issued): a
    patch's tests, and for a create that the name is free (a foreign object in its place would be
    refused as often as it is re-sent)."""
    for effect in effects:
        if isinstance(effect, Create):
            if live(world, effect.key) is not None and not effect_done(effect, world, live):
                return False
            continue
        if not isinstance(effect, Patch):
            continue
        obj = live(world, effect.key)
        if obj is None:
            return False
        pre = effect.precondition
        if pre.generation is not None and meta(obj).get("generation") != pre.generation:
            return False
        if pre.uid is not None and meta(obj).get("uid") != pre.uid:
            return False
        if any(get_path(obj, path) != value for path, value in pre.tests):
            return False
    return True


def _stored(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if as_stored(v) is not None}


def expected_after(effects: tuple[MutatingEffect, ...], snapshot: AnySnapshot) -> dict[str, Any]:
    """The target as ``effects`` leave it, from the snapshot (for drift diffs)."""
    ops = [op for e in effects if isinstance(e, Patch) and e.key.kind == "Deployment" for op in e.ops]
    return apply_ops(snapshot.target.as_object(), ops)


def detect_drift(
    spec: MitigationSpec,
    snapshot: SnapshotLike,
    plan_: ActionPlan,
    world: World,
    *,
    promoted: bool = False,
) -> str | None:
    """A readable diff when someone else changed what we manage since we acted, else None.

    Deployments: the whole spec against what our patch left (a generation bump means someone changed
    the spec; the diff says what), ignoring ``spec.replicas`` when an HPA owns it. Other objects: each
    field we wrote. A canary: the stable spec must be untouched and the canary must still exist.
    """
    problems: list[str] = []
    target = world.target
    if target is None:
        return f"target {spec.target.display()} was deleted"
    snap = read_snapshot(spec, snapshot)
    live = action_for(spec.action).live
    expected = expected_after(plan_.promote if promoted else plan_.apply, snap)
    want = dict(expected.get("spec") or {})
    have = dict(target.get("spec") or {})
    if snap.common.hpa is not None:
        want.pop("replicas", None)
        have.pop("replicas", None)
    if prune_empty(_stored(want)) != prune_empty(_stored(have)):
        problems.append(unified_diff(want, have, f"{spec.target.display()} spec"))
    for effect in plan_.apply:
        if isinstance(effect, Patch) and effect.key.kind != "Deployment":
            obj = live(world, effect.key)
            for op in effect.ops:
                if op["op"] in ("add", "replace") and get_path(obj or {}, op["path"]) != as_stored(
                    op["value"]
                ):
                    key = op["path"].rsplit("/", 1)[-1]
                    wrote, now = (
                        shown_value(key, op["value"]),
                        shown_value(key, get_path(obj or {}, op["path"])),
                    )
                    problems.append(
                        f"{effect.key.display()} {op['path']}: Stanch wrote {wrote!r}, now {now!r}"
                    )
        if isinstance(effect, Create) and not promoted and not effect_done(effect, world, live):
            problems.append(f"{effect.key.display()}: the canary Stanch created is gone or no longer ours")
    return "\n".join(problems)[:DIFF_MAX] if problems else None
