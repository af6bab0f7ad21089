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


def on_resolved(state: MachineState, now: datetime) -> Transition:
    phase = phase_of(state)
    if not state.spec.temporary or phase not in (P.BAKING, P.SUCCEEDED):
        return quiet(state)
    if state.spec.keep_on_resolve:
        return transition(
            state,
            now=now,
            to=None,
            event="KeptOnResolve",
            reason="incident resolved; temporary mitigation kept (keepOnResolve)",
        )
    return start_revert(state, now, "incident resolved: undoing the temporary mitigation")
