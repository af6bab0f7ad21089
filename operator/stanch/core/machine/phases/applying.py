"""Applying: the Apply (and canary Promote) step, write-ahead, resumed exactly after a crash."""

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
from stanch.core.machine.phases.reverting import drifted
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
from stanch.core.machine.transitions import P, quiet, transition
from stanch.core.models import AppliedChange
from stanch.core.plans import is_applied, preconditions_hold
from stanch.core.plans.common import meta


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
        attempt = (intent.attempt if intent else 1) + 1
        if obs.retriable and attempt <= MAX_ATTEMPTS:
            new_intent = intent_for(state, step, now, attempt=attempt)
            return transition(
                state,
                now=now,
                to=None,
                event="Retry",
                reason=f"{step} failed ({obs.reason}); attempt {attempt}",
                effects=(PersistIntent(new_intent),),
                intent=new_intent,
            )
        return transition(
            state,
            now=now,
            to=P.FAILED,
            event="ApplyFailed",
            reason=f"{step} failed after {attempt - 1} attempt(s): {obs.reason}",
            effects=finish(state, P.FAILED),
        )
    if isinstance(obs, TargetObserved):
        effects = step_effects(state, step)
        if is_applied(effects, obs.world, live_lookup(state)):
            live = obs.world.target or {}
            return _applied(state, now, step, meta(live).get("resourceVersion"), meta(live).get("generation"))
        if preconditions_hold(effects, obs.world, live_lookup(state)):
            attempt = (intent.attempt if intent else 0) + 1
            new_intent = intent_for(state, step, now, attempt=min(attempt, 1000))
            return transition(
                state,
                now=now,
                to=None,
                event="Resume",
                reason=f"{step} not applied yet and the target is as planned: re-issuing (attempt {attempt})",
                effects=(PersistIntent(new_intent),),
                intent=new_intent,
            )
        return drifted(state, now, obs.world, f"the target changed before {step} landed")
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


def _applied(state: MachineState, now: datetime, step: str, rv: str | None, gen: int | None) -> Transition:
    if step == Step.PROMOTE:
        return transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="Promoted",
            reason="canary fix promoted into the workload",
            effects=finish(state, P.SUCCEEDED),
            intent=None,
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
