"""Reverting: undo the change back to the snapshot, or stop at drift rather than clobber."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from stanch.core.effects import Finish, PersistIntent, Step
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
from stanch.core.machine.reading import MAX_ATTEMPTS, intent_for, live_lookup, observe, plan_of, step_effects
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, quiet, transition
from stanch.core.models import Drift
from stanch.core.plans import detect_drift, is_applied, preconditions_hold


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
    return transition(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event="Drift",
        reason=f"{why}: someone else changed it; Stanch will not overwrite it. See status.drift",
        effects=finish(state, P.NEEDS_ATTENTION),
        drift=drift,
        intent=None,
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
        p = plan_of(state)
        applied_effects = p.apply
        reverts = step_effects(
            state
            if intent
            else replace(
                state, status=status.model_copy(update={"intent": intent_for(state, Step.REVERT, now)})
            ),
            Step.REVERT,
        )
        if is_applied(reverts, obs.world, live_lookup(state)) and not (
            status.applied is None
            and not is_applied(applied_effects, obs.world, live_lookup(state))
            and intent is None
        ):
            return _reverted(state, now)
        if status.applied is not None and not is_applied(applied_effects, obs.world, live_lookup(state)):
            return drifted(state, now, obs.world, "cannot revert")
        if status.applied is None and not is_applied(applied_effects, obs.world, live_lookup(state)):
            if preconditions_hold(applied_effects, obs.world, live_lookup(state)):
                return _reverted(state, now, reason="the change never landed: nothing to revert")
            return drifted(state, now, obs.world, "cannot revert")
        if intent is not None and intent.attempt >= MAX_ATTEMPTS:
            # The revert's precondition keeps failing: the target is not what we left. Stop and
            # say so rather than loop or force it.
            return drifted(state, now, obs.world, f"the revert was refused {intent.attempt} times")
        new_intent = intent_for(state, Step.REVERT, now, attempt=(intent.attempt + 1) if intent else 1)
        if intent is not None:
            new_intent = new_intent.model_copy(update={"started_at": intent.started_at})
        return transition(
            state,
            now=now,
            to=None,
            event="RevertIntent",
            reason=f"reverting: {p.revert_note}",
            effects=(PersistIntent(new_intent),),
            intent=new_intent,
        )
    if isinstance(obs, IntentPersisted) and intent is not None and obs.step == Step.REVERT:
        return quiet(state, *step_effects(state, Step.REVERT))
    if isinstance(obs, RevertApplied) or (isinstance(obs, ChangeApplied) and obs.step == Step.REVERT):
        return _reverted(state, now)
    if isinstance(obs, ApplyFailed) and obs.step == Step.REVERT:
        if obs.retriable and (intent.attempt if intent else 1) < MAX_ATTEMPTS:
            return quiet(state, observe(state))
        if obs.conflict:
            return quiet(state, observe(state))
        return transition(
            state,
            now=now,
            to=P.FAILED,
            event="RevertFailed",
            reason=f"revert failed: {obs.reason}",
            effects=finish(state, P.FAILED),
        )
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


def _reverted(state: MachineState, now: datetime, reason: str = "") -> Transition:
    note = reason or f"reverted: {plan_of(state).revert_note}"
    return transition(
        state,
        now=now,
        to=P.REVERTED,
        event="Reverted",
        reason=note,
        effects=finish(state, P.REVERTED),
        intent=None,
    )
