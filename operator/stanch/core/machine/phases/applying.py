"""Applying: the Apply (and canary Promote) step, write-ahead, resumed exactly after a crash or a
failure between two of its writes (configToggle + restart, canary Promote's patch then delete)."""

from __future__ import annotations

from datetime import datetime

from stanch.core.effects import PersistIntent, Step, WakeAt
from stanch.core.guard import pods_started
from stanch.core.machine.finishing import finish
from stanch.core.machine.observations import (
    ApplyFailed,
    ChangeApplied,
    IntentPersisted,
    Observation,
    TargetObserved,
    Tick,
)
from stanch.core.machine.phases.evicting import on_evicting
from stanch.core.machine.phases.failures import describe_failure, refused_conditions, retry_later
from stanch.core.machine.phases.reverting import drifted, start_revert
from stanch.core.machine.reading import (
    MAX_ATTEMPTS,
    intent_for,
    live_lookup,
    observe,
    plan_of,
    step_effects,
    will_start_pods,
)
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, end, quiet, transition
from stanch.core.models import AppliedChange
from stanch.core.plans import preconditions_hold
from stanch.core.plans.common import MutatingEffect, meta
from stanch.core.plans.verify import remaining_writes


def on_applying(state: MachineState, obs: Observation, now: datetime) -> Transition:
    intent = state.status.intent
    step = intent.step if intent else Step.APPLY
    if step == Step.EVICT:
        return on_evicting(state, obs, now)
    if isinstance(obs, IntentPersisted) and intent is not None and obs.step == step:
        effects = step_effects(state, step)
        if not effects:  # e.g. evacuating a node that was already cordoned: nothing to write
            return _applied(state, now, step, None, None)
        return quiet(state, *effects)
    if isinstance(obs, ChangeApplied) and obs.step == step:
        return _applied(state, now, step, obs.resource_version, obs.generation)
    if isinstance(obs, ApplyFailed) and obs.step == step:
        if obs.conflict:
            return quiet(state, observe(state))
        attempt = intent.attempt if intent else 1
        if obs.retriable and attempt < MAX_ATTEMPTS:
            return retry_later(state, now, obs, attempt)
        landed = _writes_before(step_effects(state, step), obs)
        if obs.retriable:
            why = f"{step} still failing after {attempt} attempt(s): {describe_failure(obs)}"
            return give_up(state, now, step, landed, "RetriesExhausted", why)
        return give_up(state, now, step, landed, "Refused", f"{step} refused: {describe_failure(obs)}")
    if isinstance(obs, TargetObserved):
        return _resume(state, obs, now, step)
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


def _resume(state: MachineState, obs: TargetObserved, now: datetime, step: str) -> Transition:
    """After a crash, a conflict or a transient failure: drop the step's writes already in place
    (each recognises itself applied), and send the rest while their preconditions hold. Our own
    first write is never taken for someone else's change."""
    intent = state.status.intent
    effects = step_effects(state, step)
    live = live_lookup(state)
    todo = remaining_writes(effects, obs.world, live)
    if todo == ():
        target = obs.world.target or {}
        return _applied(state, now, step, meta(target).get("resourceVersion"), meta(target).get("generation"))
    if todo is None or not preconditions_hold(todo, obs.world, live):
        return drifted(state, now, obs.world, f"the target changed before {step} landed")
    landed = len(effects) - len(todo)
    attempt = (intent.attempt if intent else 0) + 1
    if attempt > MAX_ATTEMPTS:
        why = f"{step} not done after {MAX_ATTEMPTS} attempts (last: {state.status.message})"
        return give_up(state, now, step, landed, "RetriesExhausted", why)
    new_intent = intent_for(state, step, now, attempt=attempt)
    if intent is not None:
        new_intent = new_intent.model_copy(update={"started_at": intent.started_at})
    done = f"{landed} of {len(effects)} write(s) already in place; " if landed else ""
    # The writes go out in this transition: the wiring persists its status (the new attempt)
    # before running its effects, so the write-ahead holds without a second round trip.
    return transition(
        state,
        now=now,
        to=None,
        event="Resume",
        reason=(
            f"{step} not complete and the target is as planned: {done}sending "
            f"{len(todo)} write(s) (attempt {attempt} of {MAX_ATTEMPTS})"
        ),
        effects=todo,
        intent=new_intent,
    )


def _writes_before(effects: tuple[MutatingEffect, ...], obs: ApplyFailed) -> int:
    """How many of the step's writes landed before the failed one (they are sent in order and the
    first failure stops the rest). Unknown: assume some did, so the revert looks."""
    index = next((i for i, e in enumerate(effects) if e.key == obs.key), None)
    return 1 if index is None else index


def give_up(state: MachineState, now: datetime, step: str, landed: int, reason: str, why: str) -> Transition:
    """End a step that cannot complete: Failed when nothing of ours is in place; otherwise undo what
    is (Reverting, which undoes exactly the writes in place), or NeedsAttention where it cannot be
    undone (a canary fix promoted whose canary could not be removed)."""
    conditions = refused_conditions(state, now, reason, why)
    if step == Step.APPLY and landed == 0:
        return end(
            state,
            now=now,
            to=P.FAILED,
            event="ApplyFailed",
            reason=f"{why}; nothing was changed",
            conditions=conditions,
        )
    if step == Step.PROMOTE and landed > 0:
        canary = state.status.canary or "the canary"
        return transition(
            state,
            now=now,
            to=P.NEEDS_ATTENTION,
            event="ApplyFailed",
            reason=(
                f"{why}; the fix is promoted into the workload but canary Deployment {canary} is still "
                "running: delete it (deleting this Mitigation also removes it, it owns the canary)"
            ),
            effects=finish(state, P.NEEDS_ATTENTION),
            intent=None,
            conditions=conditions,
        )
    undo = "aborting the canary" if step == Step.PROMOTE else "undoing the writes that landed"
    return start_revert(state, now, f"{why}; {undo}", conditions=conditions)


def _applied(state: MachineState, now: datetime, step: str, rv: str | None, gen: int | None) -> Transition:
    if step == Step.PROMOTE:
        return end(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="Promoted",
            reason="canary fix promoted into the workload",
        )
    interval = state.guard.check_period
    applied = AppliedChange(at=now, resource_version=rv, generation=gen)
    p = plan_of(state)
    if step == Step.APPLY and p.evict:
        # Evacuate: the node is cordoned (or already was); now the evictions, a step of their own.
        intent = intent_for(state, Step.EVICT, now)
        done = "cordoned" if p.apply else "already cordoned"
        return transition(
            state,
            now=now,
            to=None,
            event="Evicting",
            reason=(
                f"node {p.evict_from} {done}; evicting {len(p.evict)} pod(s) through the Eviction "
                "API (PodDisruptionBudgets apply)"
            ),
            effects=(PersistIntent(intent),),
            applied=applied,
            intent=intent,
        )
    return transition(
        state,
        now=now,
        to=P.BAKING,
        event="Applied",
        reason=(
            f"{plan_of(state).summary}; baking {state.guard.bake_time}, checks every {state.guard.interval}"
        ),
        effects=(WakeAt(now + interval),),
        applied=applied,
        intent=None,
        rollout=pods_started() if will_start_pods(state) else None,
    )
