"""What happens after and around the phases: a finished Mitigation, a deletion, a resolved Incident."""

from __future__ import annotations

from datetime import datetime, timedelta

from stanch.core.effects import Step, WakeAt
from stanch.core.machine.finishing import finish, resume_effects
from stanch.core.machine.observations import ApplyFailed, ChangeApplied, Observation, Tick
from stanch.core.machine.phases.reverting import start_revert
from stanch.core.machine.reading import has_change
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, phase_of, quiet, transition
from stanch.core.models import TERMINAL_PHASES, AutoSyncPhase
from stanch.core.plans.autosync import resumed


def after_end(state: MachineState, obs: Observation, now: datetime) -> Transition:
    """A terminal Mitigation still restores what it suspended (also after a restart)."""
    record = state.status.auto_sync
    if isinstance(obs, ChangeApplied | ApplyFailed) and obs.step == Step.RESUME and record is not None:
        if isinstance(obs, ApplyFailed) and obs.retriable and not obs.conflict:
            return quiet(state, WakeAt(now + timedelta(seconds=10)))
        done = resumed(record, isinstance(obs, ChangeApplied), getattr(obs, "reason", ""), now)
        if done == record:
            return quiet(state)
        return transition(
            state,
            now=now,
            to=None,
            event="AutoSyncRestored" if done.phase is AutoSyncPhase.RESTORED else "AutoSyncNotRestored",
            reason=done.reason,
            auto_sync=done,
        )
    if isinstance(obs, Tick) and record is not None and record.phase is AutoSyncPhase.RESTORING:
        return quiet(state, *resume_effects(state))
    return quiet(state)


def on_delete(state: MachineState, now: datetime) -> Transition:
    phase = phase_of(state)
    if phase in TERMINAL_PHASES:
        return quiet(state, *finish(state, phase))
    if phase == P.REVERTING:
        # Already reverting (the deletion's own revert, or the guard's): the revert goes on from its
        # own observations. Starting over would drop the persisted intent and add a Reverting entry
        # (and a second revert attempt) on every pass of the finalizer.
        return quiet(state)
    if not has_change(state):
        return transition(
            state,
            now=now,
            to=P.FAILED,
            event="Deleted",
            reason="deleted before any change was made",
            effects=finish(state, P.FAILED),
            intent=None,
        )
    if not state.spec.revert_on_delete:
        return transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="DeletedKept",
            reason="deleted with revertOnDelete=false: the change stays in place",
            effects=finish(state, P.SUCCEEDED),
        )
    return start_revert(state, now, "Mitigation deleted mid-flight: reverting first (revertOnDelete)")


def awaits_resolution(state: MachineState) -> bool:
    """A finished Mitigation that still has something to do when its Incident resolves: a temporary
    change that succeeded and stays in place until then (the daemon keeps looking for it)."""
    spec = state.spec
    return (
        spec.temporary
        and not spec.keep_on_resolve
        and not spec.dry_run
        and spec.incident_ref is not None
        and phase_of(state) == P.SUCCEEDED
        and has_change(state)
    )


def on_resolved(state: MachineState, now: datetime) -> Transition:
    """The linked Incident is resolved: a temporary Mitigation is undone, whatever phase holds it.

    - A phase that may hold our change (Applying, the evictions, Baking — holding on NoData or
      Inconclusive included — and Succeeded) reverts, through Reverting's usual preconditions: the
      revert is conditional on the target being as we left it, so someone else's change is never
      overwritten (drift: NeedsAttention).
    - A phase with no change yet (Pending, AwaitingApproval, Baseline) ends Failed with event
      ``IncidentResolved``, like a deletion before any change; the lock, if already taken, and a
      GitOps suspension are released on the way out.
    - Reverting goes on; Reverted, Rejected and Failed have nothing of ours in place.
    - NeedsAttention is left to the human it is waiting for: it is reached when the target is no
      longer as we left it (drift, a refused revert) or a change cannot be undone, which is exactly
      when an automatic revert would be refused or wrong. Its lock was released when it got there.
    - A dry run never changed anything, so there is nothing to undo (and nothing is written).
    """
    phase = phase_of(state)
    spec = state.spec
    if not spec.temporary or spec.dry_run or phase == P.REVERTING:
        return quiet(state)
    if phase in TERMINAL_PHASES and phase != P.SUCCEEDED:
        return quiet(state)
    changed = has_change(state)
    if spec.keep_on_resolve:
        said = any(entry.event == "KeptOnResolve" for entry in state.status.audit)
        if said or not (changed or phase == P.SUCCEEDED):
            return quiet(state)  # said once: the Incident stays resolved, the pass repeats
        return transition(
            state,
            now=now,
            to=None,
            event="KeptOnResolve",
            reason="incident resolved; temporary mitigation kept (keepOnResolve)",
        )
    if changed:
        return start_revert(state, now, "incident resolved: undoing the temporary mitigation")
    if phase == P.SUCCEEDED:
        return quiet(state)  # nothing of ours was applied (NothingToDo): nothing to undo
    return transition(
        state,
        now=now,
        to=P.FAILED,
        event="IncidentResolved",
        reason="incident resolved before any change was made: the temporary mitigation ends without acting",
        effects=finish(state, P.FAILED),
        intent=None,
    )
