"""Applying, evacuate only: the Evict step after the cordon, under PodDisruptionBudgets."""

from __future__ import annotations

from datetime import datetime, timedelta

from stanch.core.effects import PersistIntent, Step, WakeAt
from stanch.core.guard import pods_started
from stanch.core.machine.observations import (
    ApplyFailed,
    ChangeApplied,
    IntentPersisted,
    Observation,
    TargetObserved,
    Tick,
)
from stanch.core.machine.phases.reverting import start_revert
from stanch.core.machine.reading import live_lookup, observe, plan_of
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, announce_once, quiet, status_update, transition, with_condition
from stanch.core.models import AppliedChange
from stanch.core.plans import is_applied
from stanch.core.plans.common import rfc3339

EVICTION_RETRY = timedelta(seconds=5)
"""How soon a refused eviction is tried again (kubectl drain waits 5 s too)."""


EVICTED = "Evicted"
"""Condition (evacuate): every pod of the workload left the node; False while a budget refuses."""


def on_evicting(state: MachineState, obs: Observation, now: datetime) -> Transition:
    """The ``Evict`` step of an evacuation: the node is cordoned, ``status.applied`` is set.

    Every eviction is idempotent (a gone or terminating pod, or one replaced under the same name,
    counts as done), so a re-issue sends them all again. A PodDisruptionBudget that allows no
    disruption now refuses (429): retry every :data:`EVICTION_RETRY` within the bake time, say so
    once per distinct refusal, and when the budget is spent revert the cordon rather than delete
    around the budget.
    """
    intent = state.status.intent
    assert intent is not None
    evictions = plan_of(state).evict
    if isinstance(obs, IntentPersisted) and obs.step == Step.EVICT:
        return quiet(state, *evictions) if evictions else _evicted(state, now)
    if isinstance(obs, ChangeApplied) and obs.step == Step.EVICT:
        return _evicted(state, now)
    if isinstance(obs, ApplyFailed) and obs.step == Step.EVICT:
        if obs.conflict:
            return quiet(state, observe(state))
        if not obs.retriable:
            return start_revert(
                state,
                now,
                f"eviction failed: {obs.reason}",
                conditions=with_condition(
                    state.status, now, EVICTED, ok=False, reason="EvictionFailed", message=obs.reason
                ),
            )
        return _eviction_refused(state, now, obs.reason)
    if isinstance(obs, TargetObserved):
        if is_applied(evictions, obs.world, live_lookup(state)):
            return _evicted(state, now)
        if now >= intent.started_at + state.guard.bake_period:
            return _eviction_refused(state, now, "pods still on the node")
        retry = intent.model_copy(update={"attempt": intent.attempt + 1})
        return status_update(state, state.status.message or "", (PersistIntent(retry),), intent=retry)
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


def _eviction_refused(state: MachineState, now: datetime, why: str) -> Transition:
    intent = state.status.intent
    assert intent is not None
    bake = state.guard.bake_time
    deadline = intent.started_at + state.guard.bake_period
    conditions = with_condition(state.status, now, EVICTED, ok=False, reason="EvictionRefused", message=why)
    if now >= deadline:
        return start_revert(
            state,
            now,
            f"evacuation incomplete: evictions still refused after {bake} (the bake time): {why}; Stanch "
            "never deletes around a PodDisruptionBudget",
            conditions=conditions,
        )
    reason = f"eviction refused; retrying every {EVICTION_RETRY.seconds}s until {rfc3339(deadline)}: {why}"
    last = state.status.audit[-1] if state.status.audit else None
    return announce_once(
        state,
        now=now,
        event="EvictionRefused",
        reason=reason,
        effects=(WakeAt(now + EVICTION_RETRY),),
        repeated=last is not None and last.event == "EvictionRefused" and last.reason == reason[:1024],
        conditions=conditions,
    )


def _evicted(state: MachineState, now: datetime) -> Transition:
    p = plan_of(state)
    n, node = len(p.evict), p.evict_from
    applied = state.status.applied or AppliedChange(at=now)
    return transition(
        state,
        now=now,
        to=P.BAKING,
        event="Applied",
        reason=(
            f"{n} pod(s) evicted from {node}; baking {state.guard.bake_time}, "
            f"checks every {state.guard.interval}"
        ),
        effects=(WakeAt(now + state.guard.check_period),),
        applied=applied.model_copy(update={"at": now}),  # the bake starts once the pods are out
        intent=None,
        rollout=pods_started() if n else None,  # their replacements start elsewhere
        conditions=with_condition(
            state.status, now, EVICTED, ok=True, reason="Evicted", message=f"{n} pod(s) evicted from {node}"
        ),
    )
