"""What every phase reads of the machine's state: the target, the typed snapshot, the plan, the
intent and the writes of a step (all recomputed from the persisted status)."""

from __future__ import annotations

from datetime import datetime

from stanch.core.effects import ObjectKey, ObserveTarget, Reads, Step
from stanch.core.machine.state import MachineState
from stanch.core.models import StepIntent
from stanch.core.plans import (
    ActionPlan,
    AnySnapshot,
    action_for,
    plan,
    read_snapshot,
    reads,
    revert_effects,
    starts_pods,
)
from stanch.core.plans.common import MutatingEffect
from stanch.core.plans.verify import Live

MAX_ATTEMPTS = 5
"""Sends of one step at most (the first, transient-failure retries and crash resumes together);
then the step ends visibly instead of retrying something that keeps failing."""


def target_key(state: MachineState) -> ObjectKey:
    # Always our own namespace, whatever spec.target.namespace says (design invariant 11): a
    # Mitigation naming another one is refused before it reads anything there.
    return ObjectKey("apps/v1", "Deployment", state.spec.target.name, state.identity.namespace)


def snapshot_of(state: MachineState) -> AnySnapshot | None:
    """``status.snapshot``, typed (None before it is taken)."""
    raw = state.status.snapshot
    return read_snapshot(state.spec, raw) if raw else None


def live_lookup(state: MachineState) -> Live:
    """Where this action's writes are in what ``ObserveTarget`` read."""
    return action_for(state.spec.action).live


def will_start_pods(state: MachineState) -> bool:
    snap = snapshot_of(state)
    return snap is not None and starts_pods(state.spec, snap)


def _reads(state: MachineState) -> Reads:
    return reads(state.spec, target_key(state), state.status.snapshot)


def observe(state: MachineState) -> ObserveTarget:
    return ObserveTarget(_reads(state))


def plan_of(state: MachineState) -> ActionPlan:
    assert state.status.snapshot is not None
    return plan(
        state.spec, state.status.snapshot, mitigation=state.identity.name, mitigation_uid=state.identity.uid
    )


def intent_for(state: MachineState, step: str, now: datetime, *, attempt: int = 1) -> StepIntent:
    snap = snapshot_of(state)
    generation = resource_version = None
    if snap is not None:
        locked = snap.common.locked_generation
        generation = snap.target.generation if locked is None else locked
        resource_version = snap.target.resource_version
    return StepIntent(
        step=step,
        started_at=now,
        attempt=attempt,
        expected_generation=generation,
        expected_resource_version=resource_version,
    )


def step_effects(state: MachineState, step: str) -> tuple[MutatingEffect, ...]:
    p = plan_of(state)
    if step == Step.APPLY:
        return p.apply
    if step == Step.PROMOTE:
        return p.promote
    if step == Step.EVICT:
        return p.evict
    if step == Step.REVERT:
        applied = state.status.applied
        at = state.status.intent.started_at if state.status.intent else applied.at if applied else None
        assert at is not None
        snap = snapshot_of(state)
        assert snap is not None
        return revert_effects(p, snap, applied_generation=applied_generation(state), at=at)
    raise ValueError(f"unknown step {step}")


def applied_generation(state: MachineState) -> int | None:
    """The target's generation our change left: as recorded, or, when the change landed but the
    process died before recording it, the locked generation plus the one step our patch of the
    target moves it (every patch of ours is one update; the plan's preconditions make it exact)."""
    applied = state.status.applied
    if applied is not None:
        return applied.generation
    snap = snapshot_of(state)
    if snap is None:
        return None
    locked = snap.common.locked_generation
    base = snap.target.generation if locked is None else locked
    key = target_key(state)
    if base is None:
        return None
    return base + (1 if any(e.key == key for e in plan_of(state).apply) else 0)


def has_change(state: MachineState) -> bool:
    """Whether the target may carry our change (an Apply was at least intended)."""
    intent = state.status.intent
    return state.status.applied is not None or (
        intent is not None and intent.step in (Step.APPLY, Step.PROMOTE)
    )
