"""What happens after and around the phases: a finished Mitigation, a deletion, a resolved Incident."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from stanch.core.conditions import set_condition
from stanch.core.effects import Effect, Step, WakeAt
from stanch.core.machine.finishing import finish, look_at_lock, resume_effects
from stanch.core.machine.observations import ApplyFailed, ChangeApplied, Observation, TargetObserved, Tick
from stanch.core.machine.phases.reverting import start_revert
from stanch.core.machine.reading import has_change
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import (
    LOCK_RELEASED,
    P,
    end,
    phase_of,
    quiet,
    status_update,
    transition,
)
from stanch.core.models import LOCK_ANNOTATION, TERMINAL_PHASES, AutoSyncPhase, Condition
from stanch.core.plans import unlock_patch
from stanch.core.plans.autosync import resumed
from stanch.core.plans.common import meta


def after_end(state: MachineState, obs: Observation, now: datetime) -> Transition:
    """A terminal Mitigation still restores what it suspended (also after a restart)."""
    record = state.status.auto_sync
    if isinstance(obs, ChangeApplied | ApplyFailed) and obs.step == Step.UNLOCK:
        return _unlock_answered(state, obs, now)
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
    if isinstance(obs, TargetObserved):
        return _lock_seen(state, obs, now)
    effects: tuple[Effect, ...] = ()
    if isinstance(obs, Tick) and record is not None and record.phase is AutoSyncPhase.RESTORING:
        effects = resume_effects(state)
    if isinstance(obs, Tick) and _release_unconfirmed(state):
        effects = (*effects, look_at_lock(state))
    return quiet(state, *effects)


STILL_HELD = "StillHeld"
NOT_RELEASED = "NotReleased"
RELEASE_RETRY = timedelta(minutes=10)
"""How long a finished Mitigation retries a transiently failing unlock every interval; then (or at
once for a refused write) it says so once, ``LockNotReleased``, and tries again only on a restart."""


def _lock_condition(state: MachineState) -> Condition | None:
    return next((c for c in state.status.conditions if c.type == LOCK_RELEASED), None)


def _release_unconfirmed(state: MachineState) -> bool:
    """Whether the lock may still name this finished Mitigation: its release was written ahead and not
    seen done (a crash between the terminal status and the unlock), or — for a Mitigation finished
    before the condition existed — never looked at."""
    if state.spec.dry_run or not state.status.snapshot:
        return False
    condition = _lock_condition(state)
    return condition is None or condition.status.value != "True"


def _lock_seen(state: MachineState, obs: TargetObserved, now: datetime) -> Transition:
    """The target as a finished Mitigation sees it: release a lock still naming us, else say released."""
    if not _release_unconfirmed(state):
        return quiet(state)
    target = obs.world.target
    holder = (meta(target).get("annotations") or {}).get(LOCK_ANNOTATION) if target else None
    if target is None or not state.identity.holds(holder):
        return _released(state, now)
    # Still ours: the terminal status was written, the unlock never landed (a crash in between, a
    # failed write). Send it again, conditional on the annotation still naming us (idempotent: a
    # second send fails its test and changes nothing) — and this time wait for its answer.
    # Conditional on the value actually there: ours as <namespace>/<name>, or a bare name written
    # before locks recorded the namespace.
    assert holder is not None
    return quiet(state, replace(unlock_patch(target, holder), best_effort=False))


def _unlock_answered(state: MachineState, obs: ChangeApplied | ApplyFailed, now: datetime) -> Transition:
    """The answer to a re-sent unlock: done, retry later (transient), or say it cannot be done."""
    # A 409 is the API server's own write conflict: the patch was not applied and says nothing of
    # the annotation, so it is retried like a transient failure (taken for "released", it left the
    # lock on the target for good). Its failed test (a bare 422) or a gone target (404) is released.
    busy = isinstance(obs, ApplyFailed) and obs.conflict and obs.code == 409
    if isinstance(obs, ChangeApplied) or (obs.conflict and not busy):
        return _released(state, now)  # removed now, or the annotation no longer names us
    condition = _lock_condition(state)
    if condition is not None and condition.reason == NOT_RELEASED:
        return quiet(state)  # said once already; tried again on the next restart
    since = (
        condition.last_transition_time if condition is not None and condition.reason == STILL_HELD else now
    )
    if (obs.retriable or busy) and now - since < RELEASE_RETRY:
        still = _lock_conditions(
            state, now, "Unknown", STILL_HELD, f"releasing the lock failed: {obs.reason}"
        )
        return status_update(
            state, state.status.message or "", (WakeAt(now + state.guard.check_period),), conditions=still
        )
    target = state.spec.target
    why = (
        f"the lock annotation {LOCK_ANNOTATION} on Deployment {state.identity.namespace}/"
        f"{target.name} still names this finished Mitigation ({obs.reason}); remove it by hand:"
        f" kubectl annotate deployment {target.name} {LOCK_ANNOTATION}-"
    )
    return transition(
        state,
        now=now,
        to=None,
        event="LockNotReleased",
        reason=why,
        conditions=_lock_conditions(state, now, "False", NOT_RELEASED, why),
    )


def _released(state: MachineState, now: datetime) -> Transition:
    released = _lock_conditions(state, now, "True", "Released", "the lock no longer names this Mitigation")
    return status_update(state, state.status.message or "", (), conditions=released)


def _lock_conditions(
    state: MachineState, now: datetime, status: str, reason: str, message: str
) -> list[Condition]:
    updated = set_condition(
        [c.model_dump(by_alias=True, mode="json") for c in state.status.conditions],
        type_=LOCK_RELEASED,
        status=status,
        reason=reason,
        message=message,
        observed_generation=None,
        now=now,
    )
    return [Condition.model_validate(c) for c in updated]


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
        return end(
            state,
            now=now,
            to=P.FAILED,
            event="Deleted",
            reason="deleted before any change was made",
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
    return end(
        state,
        now=now,
        to=P.FAILED,
        event="IncidentResolved",
        reason="incident resolved before any change was made: the temporary mitigation ends without acting",
    )
