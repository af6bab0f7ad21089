"""Reverting: undo the change back to the snapshot, or stop at drift rather than clobber."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stanch.core.effects import Finish, Step
from stanch.core.machine.finishing import finish
from stanch.core.machine.observations import (
    ApplyFailed,
    ChangeApplied,
    IntentPersisted,
    Observation,
    RevertApplied,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.phases.failures import describe_failure, refused_conditions, retry_later
from stanch.core.machine.reading import (
    MAX_ATTEMPTS,
    applied_generation,
    intent_for,
    live_lookup,
    observe,
    plan_of,
    snapshot_of,
)
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, end, quiet, transition
from stanch.core.models import Drift
from stanch.core.plans import MutatingEffect, detect_drift, preconditions_hold
from stanch.core.plans.planning import revert_pairs
from stanch.core.plans.verify import effect_done


def start_revert(state: MachineState, now: datetime, reason: str, **status: Any) -> Transition:
    if state.status.snapshot is not None and not plan_of(state).reversible:
        return transition(
            state,
            now=now,
            to=P.FAILED,
            event="RevertImpossible",
            reason=f"{reason}; but {plan_of(state).revert_note}",
            effects=finish(state, P.FAILED),
            **status,
        )
    return transition(
        state,
        now=now,
        to=P.REVERTING,
        event="Reverting",
        reason=reason,
        effects=(observe(state),),
        intent=None,
        **status,
    )


def drifted(state: MachineState, now: datetime, world: World, why: str) -> Transition:
    diff = ""
    if state.status.snapshot is not None:
        diff = detect_drift(state.spec, state.status.snapshot, plan_of(state), world) or ""
    drift = Drift(detected_at=now, diff=diff[:8192])
    return end(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event="Drift",
        reason=f"{why}: someone else changed it; Stanch will not overwrite it. See status.drift",
        drift=drift,
    )


def on_reverting(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    intent = status.intent
    if status.snapshot is None:  # nothing was ever planned, so nothing was changed
        return transition(
            state,
            now=now,
            to=P.REVERTED,
            event="Reverted",
            reason="nothing to revert",
            effects=(Finish(P.REVERTED.value),),
        )
    if isinstance(obs, TargetObserved):
        return _revert_what_is_there(state, obs.world, now)
    if isinstance(obs, IntentPersisted) and intent is not None and obs.step == Step.REVERT:
        # The writes now go out with the intent (below); an older process's PersistIntent decides
        # from what is there now.
        return quiet(state, observe(state))
    if isinstance(obs, RevertApplied) or (isinstance(obs, ChangeApplied) and obs.step == Step.REVERT):
        return _reverted(state, now)
    if isinstance(obs, ApplyFailed) and obs.step == Step.REVERT:
        if obs.conflict:
            return quiet(state, observe(state))
        attempt = intent.attempt if intent else 1
        if obs.retriable and attempt < MAX_ATTEMPTS:
            return retry_later(state, now, obs, attempt)
        if obs.retriable:
            why = f"the revert still fails after {attempt} attempt(s): {describe_failure(obs)}"
            return _cannot_revert(state, now, "RetriesExhausted", why)
        return _cannot_revert(state, now, "Refused", f"the revert was refused: {describe_failure(obs)}")
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


def _revert_what_is_there(state: MachineState, world: World, now: datetime) -> Transition:
    """Undo exactly the writes of ours that are in place, each write paired with its undo: undone
    already (skip), ours in place (undo it), neither but as the snapshot (it never landed: skip),
    else someone else changed it (drift, never clobbered). So a change half applied (a crash or a
    refusal between two writes) or half reverted (the same during the revert) is finished exactly."""
    status = state.status
    intent = status.intent
    revert_intent = intent if intent is not None else intent_for(state, Step.REVERT, now)
    snap = snapshot_of(state)
    assert snap is not None
    p = plan_of(state)
    pairs = revert_pairs(p, snap, applied_generation=applied_generation(state), at=revert_intent.started_at)
    live = live_lookup(state)
    todo: list[MutatingEffect] = []
    for write, undo in pairs:
        if undo is None or effect_done(undo, world, live):
            continue
        if effect_done(write, world, live):
            todo.append(undo)
        elif not preconditions_hold((write,), world, live):
            return drifted(state, now, world, "cannot revert")
    if not todo:
        if status.applied is None and intent is None:
            return _reverted(state, now, reason="the change never landed: nothing to revert")
        return _reverted(state, now)
    if not preconditions_hold(tuple(todo), world, live):
        return drifted(state, now, world, "cannot revert")
    attempt = (intent.attempt + 1) if intent else 1
    if attempt > MAX_ATTEMPTS:
        why = f"the revert is not done after {MAX_ATTEMPTS} attempts (last: {status.message})"
        return _cannot_revert(state, now, "RetriesExhausted", why)
    new_intent = intent_for(state, Step.REVERT, now, attempt=attempt).model_copy(
        update={"started_at": revert_intent.started_at}  # the revert's restart stamp stays the same
    )
    partly = f" ({len(todo)} of {len(pairs)} write(s) still to undo)" if len(todo) < len(pairs) else ""
    # The writes go out with this transition: the wiring persists its status (holding the intent)
    # before running its effects.
    return transition(
        state,
        now=now,
        to=None,
        event="RevertIntent",
        reason=f"reverting: {p.revert_note}{partly}",
        effects=tuple(todo),
        intent=new_intent,
    )


def _cannot_revert(state: MachineState, now: datetime, reason: str, why: str) -> Transition:
    """The revert cannot be completed: the change (or part of it) is live and unguarded, so a human
    must look (NeedsAttention), told what the API server said and how to fix it."""
    return transition(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event="RevertFailed",
        reason=(
            f"{why}; the change is still in place and no longer guarded: undo it by hand "
            f"({plan_of(state).revert_note})"
        ),
        effects=finish(state, P.NEEDS_ATTENTION),
        intent=None,
        conditions=refused_conditions(state, now, reason, why),
    )


def _reverted(state: MachineState, now: datetime, reason: str = "") -> Transition:
    note = reason or f"reverted: {plan_of(state).revert_note}"
    return end(
        state,
        now=now,
        to=P.REVERTED,
        event="Reverted",
        reason=note,
    )
