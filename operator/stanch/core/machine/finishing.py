"""How a Mitigation ends whatever its outcome: the lock released and the GitOps switch restored."""

from __future__ import annotations

from stanch.core.effects import Effect, Finish, ObjectKey, ObserveTarget, Reads
from stanch.core.machine.state import MachineState
from stanch.core.models import AppliedChange, MitigationPhase
from stanch.core.plans import read_snapshot, unlock_patch
from stanch.core.plans.autosync import needs_restore, resume_patch


def unlock(state: MachineState) -> tuple[Effect, ...]:
    snap = state.status.snapshot
    if not snap or state.spec.dry_run:
        return ()
    return (unlock_patch(read_snapshot(state.spec, snap).target.as_object(), state.identity.lock),)


def look_at_lock(state: MachineState) -> ObserveTarget:
    """Read the target alone, to see whether its lock still names us (the unlock is fire-and-forget,
    so this read is what confirms it)."""
    key = ObjectKey("apps/v1", "Deployment", state.spec.target.name, state.identity.namespace)
    return ObserveTarget(Reads(target=key, lock_holder=False))


def after_unlock(applied: AppliedChange | None, extra: int = 0) -> AppliedChange | None:
    """What we expect of the target once our lock is released.

    Releasing the lock removes an annotation, which moves a Deployment's generation by one; a
    later undo (a temporary mitigation when its Incident is resolved) is conditional on that. If
    the release did not happen as planned, someone else touched the annotations and the undo's
    precondition rightly fails: drift, never a clobbering revert.
    """
    if applied is None or applied.generation is None:
        return applied
    # ``extra``: writes after the unlock (restoring a GitOps switch), one generation step each.
    return applied.model_copy(update={"generation": applied.generation + 1 + extra})


def finish(state: MachineState, phase: MitigationPhase) -> tuple[Effect, ...]:
    release = unlock(state)
    confirm = (look_at_lock(state),) if release else ()
    return (*release, *resume_effects(state), Finish(phase.value), *confirm)


def resume_effects(state: MachineState) -> tuple[Effect, ...]:
    """Restore the GitOps self-heal suspended with the lock (conditional, idempotent)."""
    record, snap = state.status.auto_sync, state.status.snapshot
    if record is None or not snap or state.spec.dry_run or not needs_restore(record):
        return ()
    return (resume_patch(record, read_snapshot(state.spec, snap).target.as_object()),)
