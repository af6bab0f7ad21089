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

Argo CD: the owning Application's ``spec.syncPolicy.automated.selfHeal`` (documented: with it
off, Argo CD reports drift but leaves the live object alone; automated sync of new commits goes on).
After the lock, a ``Suspend`` patch sets it to ``false`` together with the marker annotation
``stanch.dev/self-heal-suspended-by: <namespace>/<mitigation>``, conditional on ``selfHeal`` still
being ``true``; the ``Resume`` patch sets it back to ``true`` and removes the marker, conditional on
the marker. So only a suspension Stanch made is ever undone, also after a crash between the patch
and its confirmation.

HelmRelease-managed targets (helm-controller ignores the per-object switch) are recorded as not
suspended, with the reason, and nothing is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import ObjectKey, Patch, Precondition, Step, pointer
from stanch.core.models import (
    FLUX_RECONCILE_ANNOTATION,
    FLUX_RECONCILE_DISABLED,
    AutoSync,
    AutoSyncPhase,
    AutoSyncRequest,
)
from stanch.core.plans.common import annotations_of, deployment_key

FLUX = "Flux"
ARGO_CD = "ArgoCD"
SELF_HEAL = "/spec/syncPolicy/automated/selfHeal"
SUSPENDED_BY_ANNOTATION = "stanch.dev/self-heal-suspended-by"
"""On an Argo CD Application whose selfHeal Stanch turned off: ``<namespace>/<mitigation>``."""
HELD = "heldAnnotations"
"""Snapshot key: annotations Stanch sets on the target with its lock and keeps until the end."""
_ACTIVE = frozenset({AutoSyncPhase.SUSPENDING, AutoSyncPhase.SUSPENDED, AutoSyncPhase.RESTORING})


def plan_auto_sync(
    request: AutoSyncRequest | None, target: Mapping[str, Any], now: datetime, holder: str = ""
) -> AutoSync | None:
    """What to suspend on ``target`` (the snapshot, read before the lock), or None when not asked.
    ``holder`` is ``<namespace>/<mitigation>``, the marker of an Argo CD suspension."""
    if request is None:
        return None
    obj = deployment_key(target).display()
    if request.tool == ARGO_CD and request.application:
        return _plan_argo(request, request.application, now, holder)
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
        why = f"{request.tool} ({request.app}) names no Application to suspend"
    return AutoSync(
        tool=request.tool,
        object=obj,
        field="",
        value="",
        phase=AutoSyncPhase.NOT_SUSPENDED,
        reason=f"not suspended: {why}"[:1024],
        changed_at=now,
    )


def _plan_argo(request: AutoSyncRequest, application: str, now: datetime, holder: str) -> AutoSync:
    namespace, name = application.split("/", 1)
    record = AutoSync(
        tool=ARGO_CD,
        object=f"Application/{namespace}/{name}",
        field="spec.syncPolicy.automated.selfHeal",
        value="false",
        previous="true",
        phase=AutoSyncPhase.SUSPENDING,
        reason=f"suspending the self-heal of Application {application} after the lock ({request.policy})",
        changed_at=now,
        marker=holder or None,
    )
    if request.not_managing:
        why = request.not_managing
    elif request.self_heal is None:
        why = f"Application {application} was not found or not readable (Argo CD's CRD, RBAC)"
    elif not request.self_heal:
        why = f"Application {application} does not self-heal (selfHeal is not true): nothing to suspend"
    elif not holder:
        why = "no marker to prove the suspension is Stanch's"
    else:
        return record
    return record.model_copy(
        update={"phase": AutoSyncPhase.NOT_SUSPENDED, "reason": f"not suspended: {why}", "previous": None}
    )


def _application_key(record: AutoSync) -> ObjectKey:
    _, namespace, name = record.object.split("/", 2)
    return ObjectKey("argoproj.io/v1alpha1", "Application", name, namespace)


def suspend_patch(record: AutoSync, has_annotations: bool) -> Patch:
    """Argo CD: turn selfHeal off and mark it as ours, conditional on selfHeal still being on and no
    marker being there yet."""
    assert record.marker is not None
    marker = pointer("metadata", "annotations", SUSPENDED_BY_ANNOTATION)
    if has_annotations:
        add: dict[str, Any] = {"op": "add", "path": marker, "value": record.marker}
        tests: tuple[tuple[str, Any], ...] = ((SELF_HEAL, True), (marker, None))
    else:
        add = {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {SUSPENDED_BY_ANNOTATION: record.marker},
        }
        tests = ((SELF_HEAL, True), ("/metadata/annotations", None))
    key = _application_key(record)
    return Patch(
        key=key,
        ops=({"op": "replace", "path": SELF_HEAL, "value": False}, add),
        precondition=Precondition(tests=tests),
        step=Step.SUSPEND,
        description=f"suspend the self-heal of {key.display()}",
    )


def suspended(record: AutoSync, ok: bool, detail: str, now: datetime) -> AutoSync:
    """The record after the ``Suspend`` patch landed (``ok``) or was refused. A refusal keeps the
    marker: after a crash the refusal may be our own earlier suspension, which the end still undoes
    (the restore is conditional on the marker, so nothing else is touched)."""
    if ok:
        reason = record.reason.replace("suspending", "suspended", 1)
        return record.model_copy(
            update={"phase": AutoSyncPhase.SUSPENDED, "reason": reason, "changed_at": now}
        )
    reason = f"not suspended: {record.object} no longer self-heals, or changed ({detail})"
    return record.model_copy(
        update={"phase": AutoSyncPhase.NOT_SUSPENDED, "reason": reason[:1024], "changed_at": now}
    )


def held_annotations(record: AutoSync | None) -> dict[str, str]:
    """Annotations to set with the lock and keep on the target until the Mitigation ends."""
    if record is None or record.tool != FLUX or record.phase not in _ACTIVE:
        return {}
    return {FLUX_RECONCILE_ANNOTATION: record.value}


def needs_suspend(record: AutoSync | None) -> bool:
    """Argo CD: the lock is taken, the Application's selfHeal still to be turned off."""
    return record is not None and record.tool == ARGO_CD and record.phase is AutoSyncPhase.SUSPENDING


def needs_restore(record: AutoSync | None) -> bool:
    """Whether something may have been suspended and is not restored yet."""
    if record is None:
        return False
    if record.tool == ARGO_CD:
        # A refused Suspend keeps its marker: the marker-guarded restore is harmless if it was not ours.
        attempted = record.phase is AutoSyncPhase.NOT_SUSPENDED and record.previous is not None
        return record.marker is not None and (record.phase in _ACTIVE or attempted)
    return record.phase in _ACTIVE and bool(held_annotations(record))


def resume_patch(record: AutoSync, target: Mapping[str, Any]) -> Patch:
    """Put the switch back, conditional on it still holding the value Stanch set (someone else's
    later change is never overwritten). ``target`` is the snapshot's copy of the target."""
    if record.tool == ARGO_CD:
        marker = pointer("metadata", "annotations", SUSPENDED_BY_ANNOTATION)
        app = _application_key(record)
        return Patch(
            key=app,
            ops=({"op": "replace", "path": SELF_HEAL, "value": True}, {"op": "remove", "path": marker}),
            precondition=Precondition(tests=((marker, record.marker),)),
            step=Step.RESUME,
            description=f"restore the self-heal of {app.display()}",
        )
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
        step=Step.RESUME,
        description=f"restore {record.tool} reconciliation of {key.display()}",
    )


def resumed(record: AutoSync, ok: bool, detail: str, now: datetime) -> AutoSync:
    """The record after the ``Resume`` patch landed (``ok``) or was refused."""
    if record.phase is AutoSyncPhase.NOT_SUSPENDED:
        if not ok:
            return record  # it was not ours after all: nothing happened, the record stands
        reason = f"{record.field} of {record.object} set back to true (suspended by an earlier attempt)"
        return record.model_copy(
            update={"phase": AutoSyncPhase.RESTORED, "reason": reason, "changed_at": now}
        )
    if ok and record.tool == ARGO_CD:
        reason = f"{record.field} of {record.object} set back to true: Argo CD self-heals it again"
        return record.model_copy(
            update={"phase": AutoSyncPhase.RESTORED, "reason": reason, "changed_at": now}
        )
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
