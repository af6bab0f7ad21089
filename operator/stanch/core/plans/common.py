"""Shared pieces of the action plans: keys, the plan record, errors, lock patches."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stanch.core.effects import Create, Delete, Evict, ObjectKey, Patch, Precondition, Step, pointer
from stanch.core.models import LOCK_ANNOTATION, ActionKind
from stanch.core.redaction import redact, shown_value
from stanch.core.scope import lock_holder

MutatingEffect = Patch | Create | Delete | Evict

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
"""The template annotation ``kubectl rollout restart`` sets."""
CORDONED_BY = "stanch.dev/cordoned-by"
"""Node annotation set in the same patch as ``spec.unschedulable: true``: ``<namespace>/<mitigation>``.
Proves the cordon is ours (a node someone else cordoned is never uncordoned by a revert)."""
CANARY_LABEL = "stanch.dev/canary"
"""Label on canary Deployments, their selector and their pods; value: the Mitigation's name."""


class PlanError(ValueError):
    """The action cannot be planned on this target; the message names the field and the fix."""


@dataclass(frozen=True)
class ActionPlan:
    """Everything one action does, computed from the snapshot alone (so a re-run after a crash
    computes the very same effects)."""

    summary: str
    changes: tuple[str, ...]
    apply: tuple[MutatingEffect, ...]
    noop_reason: str | None = None
    """Set when the target already is in the end state: nothing to apply."""
    revert_note: str = ""
    """What a revert does, or why it does nothing."""
    promote: tuple[MutatingEffect, ...] = ()
    """Canary only: effects that make the fix permanent once the guard is happy."""
    evict: tuple[Evict, ...] = ()
    """Evacuate only: the evictions, a step of their own after the cordon (``Evict``): each is
    idempotent, a PodDisruptionBudget may refuse some for a while, and none can be reverted."""
    evict_from: str | None = None
    """Evacuate only: the node the pods leave."""
    reversible: bool = True
    action: ActionKind | None = None
    """The action that made it (set by :func:`stanch.core.plans.plan`): which module reverts it."""

    def patch_record(self) -> dict[str, Any]:
        """Machine form for ``status.plan.patch``."""
        return {
            "apply": [effect_record(e) for e in self.apply],
            "promote": [effect_record(e) for e in self.promote],
            "evict": [effect_record(e) for e in self.evict],
        }


def _record_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-patch op as ``status.plan.patch`` shows it: the value written to a secret-looking
    key (``/data/api_token``) is dropped, any other value redacted like the rest of status."""
    key = str(op.get("path", "")).rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    return {k: (shown_value(key, v) if k == "value" else v) for k, v in op.items()}


def effect_record(effect: MutatingEffect) -> dict[str, Any]:
    """Machine form of one write, for status: what and where, never a secret-looking value (the
    write itself is recomputed from the snapshot, not from this record)."""
    if isinstance(effect, Patch):
        return {
            "patch": effect.key.display(),
            "type": "json",
            "ops": [_record_op(op) for op in effect.wire_ops()],
        }
    if isinstance(effect, Create):
        return {"create": effect.key.display(), "manifest": redact(copy.deepcopy(dict(effect.manifest)))}
    if isinstance(effect, Evict):
        return {"evict": effect.key.display(), "precondition": effect.precondition.describe()}
    return {"delete": effect.key.display(), "precondition": effect.precondition.describe()}


def deployment_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return ObjectKey("apps/v1", "Deployment", meta["name"], meta.get("namespace"))


def meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def rfc3339(at: datetime) -> str:
    """Second precision, UTC, ``Z`` suffix: what ``kubectl rollout restart`` writes from a UTC clock."""
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_patch(
    target: Mapping[str, Any],
    holder: str,
    *,
    stale_holder: str | None,
    held: Mapping[str, str] | None = None,
) -> Patch:
    """Take the lock: conditional on the annotation being absent (or still naming the stale holder).

    ``held`` annotations (a GitOps controller's per-object switch) are set in the same write, each
    conditional on still having the snapshot's value, so lock and suspension land together or not
    at all, and the Deployment's generation moves by exactly one.
    """
    key = deployment_key(target)
    path = pointer("metadata", "annotations", LOCK_ANNOTATION)
    held = held or {}
    if "annotations" in meta(target) and meta(target)["annotations"] is not None:
        ops: tuple[Mapping[str, Any], ...] = (
            {"op": "add", "path": path, "value": holder},
            *(
                {"op": "add", "path": pointer("metadata", "annotations", k), "value": v}
                for k, v in sorted(held.items())
            ),
        )
        tests: tuple[tuple[str, Any], ...] = (
            (path, stale_holder),
            *((pointer("metadata", "annotations", k), annotations_of(target).get(k)) for k in sorted(held)),
        )
    else:
        ops = ({"op": "add", "path": "/metadata/annotations", "value": {LOCK_ANNOTATION: holder, **held}},)
        tests = (("/metadata/annotations", None),)
    return Patch(
        key=key,
        ops=ops,
        # Conditional on the generation too: the lock then lands on exactly the Deployment we
        # snapshotted, and its own generation bump is known in advance (see locked_generation).
        precondition=Precondition(
            uid=meta(target).get("uid"), generation=meta(target).get("generation"), tests=tests
        ),
        step=Step.LOCK,
        description=f"lock {key.display()} for {holder}",
    )


def locked_generation(target: Mapping[str, Any], holder: str) -> int | None:
    """The Deployment's generation once our lock is on it.

    The API server bumps a Deployment's generation on every annotation change (annotations are
    copied to its ReplicaSets), so taking the lock moves it by exactly one; already holding it moves
    nothing. The lock patch is conditional on the snapshotted generation, so this is exact.
    """
    generation = meta(target).get("generation")
    if generation is None:
        return None
    namespace = str(meta(target).get("namespace") or "")
    current = (meta(target).get("annotations") or {}).get(LOCK_ANNOTATION)
    # Compared as holders: our own lock written as a bare name (before locks recorded the
    # namespace) is ours too, and re-taking it does not move the generation.
    holding = lock_holder(current, namespace) == lock_holder(holder, namespace)
    return int(generation) if holding else int(generation) + 1


def unlock_patch(target: Mapping[str, Any], holder: str) -> Patch:
    """Release the lock if it still names us; a no-op (failed test) otherwise."""
    key = deployment_key(target)
    path = pointer("metadata", "annotations", LOCK_ANNOTATION)
    return Patch(
        key=key,
        ops=({"op": "remove", "path": path},),
        precondition=Precondition(tests=((path, holder),)),
        step=Step.UNLOCK,
        description=f"release the lock on {key.display()}",
        best_effort=True,
    )
