"""Suspending a GitOps controller's self-heal for the duration of a Mitigation, as data.

A self-healing GitOps controller puts the target back to what Git says within its sync interval, so
a rollback or scale would be undone (Stanch then sees drift and stops: safe, but useless). When a
policy sets ``gitops.suspendAutoSync``, Stanch switches the controller's self-heal off for exactly
the time it holds the target's lock, and back on when the Mitigation ends, whatever the outcome.

Flux: the documented per-object switch ``kustomize.toolkit.fluxcd.io/reconcile: disabled`` on the
target. It is set in the same conditional patch that takes the lock (one write, one generation
step, so the lock's generation accounting is unchanged), kept through a rollback, skipped by the
revert, and removed (or put back to its previous value) by a separate, conditional ``Resume`` patch
at the end. The record (:class:`~stanch.core.models.AutoSync`) is persisted with the snapshot before
the lock is taken, so a restarted operator restores what was suspended.

HelmRelease-managed targets (helm-controller ignores the per-object switch) and Argo CD targets are
recorded as not suspended, with the reason, and nothing is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import Patch, Precondition, pointer
from stanch.core.models import (
    FLUX_RECONCILE_ANNOTATION,
    FLUX_RECONCILE_DISABLED,
    AutoSync,
    AutoSyncPhase,
    AutoSyncRequest,
)
from stanch.core.plans.common import annotations_of, deployment_key

FLUX = "Flux"
HELD = "heldAnnotations"
"""Snapshot key: annotations Stanch sets on the target with its lock and keeps until the end."""
_ACTIVE = frozenset({AutoSyncPhase.SUSPENDING, AutoSyncPhase.SUSPENDED, AutoSyncPhase.RESTORING})


def plan_auto_sync(
    request: AutoSyncRequest | None, target: Mapping[str, Any], now: datetime
) -> AutoSync | None:
    """What to suspend on ``target`` (the snapshot, read before the lock), or None when not asked."""
    if request is None:
        return None
    obj = deployment_key(target).display()
    if request.tool == FLUX and request.app.startswith("Kustomization"):
        previous = annotations_of(target).get(FLUX_RECONCILE_ANNOTATION)
        record = AutoSync(
            tool=FLUX,
            object=obj,
            field=f"metadata.annotations[{FLUX_RECONCILE_ANNOTATION}]",
            value=FLUX_RECONCILE_DISABLED,
            previous=previous,
            phase=AutoSyncPhase.SUSPENDING,
            reason=f"suspending {request.app}'s reconciliation of {obj} with the lock ({request.policy})",
            changed_at=now,
        )
        if previous == FLUX_RECONCILE_DISABLED:
            return record.model_copy(
                update={
                    "phase": AutoSyncPhase.NOT_SUSPENDED,
                    "reason": f"{obj} already carries {FLUX_RECONCILE_ANNOTATION}: {previous}; left alone",
                }
            )
        return record
    if request.tool == FLUX:
        why = (
            f"helm-controller does not honour a per-object switch; suspend {request.app} by hand"
            " (flux suspend helmrelease) if its drift correction would undo the change"
        )
    else:
        why = (
            f"suspending {request.tool} self-heal ({request.app}) is not supported yet; turn off"
            " spec.syncPolicy.automated.selfHeal of the Application by hand for the duration"
        )
    return AutoSync(
        tool=request.tool,
        object=obj,
        field="",
        value="",
        phase=AutoSyncPhase.NOT_SUSPENDED,
        reason=f"not suspended: {why}"[:1024],
        changed_at=now,
    )


def held_annotations(record: AutoSync | None) -> dict[str, str]:
    """Annotations to set with the lock and keep on the target until the Mitigation ends."""
    if record is None or record.tool != FLUX or record.phase not in _ACTIVE:
        return {}
    return {FLUX_RECONCILE_ANNOTATION: record.value}


def needs_restore(record: AutoSync | None) -> bool:
    """Whether something may have been suspended and is not restored yet."""
    return record is not None and record.phase in _ACTIVE and bool(held_annotations(record))


def resume_patch(record: AutoSync, target: Mapping[str, Any]) -> Patch:
    """Put the switch back, conditional on it still holding the value Stanch set (someone else's
    later change is never overwritten). ``target`` is the snapshot's copy of the target."""
    path = pointer("metadata", "annotations", FLUX_RECONCILE_ANNOTATION)
    op: dict[str, Any] = (
        {"op": "remove", "path": path}
        if record.previous is None
        else {"op": "replace", "path": path, "value": record.previous}
    )
    key = deployment_key(target)
    return Patch(
        key=key,
        ops=(op,),
        precondition=Precondition(
            uid=(target.get("metadata") or {}).get("uid"), tests=((path, record.value),)
        ),
        step="Resume",
        description=f"restore {record.tool} reconciliation of {key.display()}",
    )


def resumed(record: AutoSync, ok: bool, detail: str, now: datetime) -> AutoSync:
    """The record after the ``Resume`` patch landed (``ok``) or was refused."""
    if ok:
        before = "removed" if record.previous is None else f"set back to {record.previous!r}"
        reason = f"{record.field} on {record.object} {before}: {record.tool} reconciles it again"
        return record.model_copy(
            update={"phase": AutoSyncPhase.RESTORED, "reason": reason, "changed_at": now}
        )
    reason = (
        f"{record.field} on {record.object} was not restored: it no longer holds {record.value!r} (never"
        f" set, or changed by someone else), so it is left as it is ({detail})"
    )
    return record.model_copy(
        update={"phase": AutoSyncPhase.NOT_RESTORED, "reason": reason[:1024], "changed_at": now}
    )
