"""Baseline: snapshot and plan, take the lock (and suspend GitOps self-heal), take the metric baseline."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from stanch.core.effects import Create, Finish, PersistIntent, QuerySignals, Step
from stanch.core.machine.observations import (
    ApplyFailed,
    BaselineCollected,
    ChangeApplied,
    IntentPersisted,
    Observation,
    TargetObserved,
    Tick,
)
from stanch.core.machine.reading import intent_for, observe
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, end, quiet, transition, valid_condition, with_condition
from stanch.core.models import (
    LOCK_ANNOTATION,
    AutoSync,
    AutoSyncPhase,
    Baseline,
    BaselineNoDataAction,
    Plan,
    SignalValue,
)
from stanch.core.plans import (
    AnySnapshot,
    PlanError,
    lock_patch,
    locked_generation,
    plan,
    read_snapshot,
    take_snapshot,
)
from stanch.core.plans.autosync import (
    held_annotations,
    needs_restore,
    needs_suspend,
    plan_auto_sync,
    suspend_patch,
    suspended,
)
from stanch.core.plans.common import meta


def _plan_auto_sync(
    state: MachineState, snapshot: AnySnapshot, holder: str | None, now: datetime
) -> AutoSync | None:
    """The suspension the policy decision asks for; kept as recorded when we already hold the lock
    (a re-plan after a restart must not take our own switch for someone else's)."""
    recorded = state.status.auto_sync
    if state.identity.holds(holder) and needs_restore(recorded):
        return recorded
    decision = state.status.policy
    marker = f"{state.identity.namespace}/{state.identity.name}"
    return plan_auto_sync(
        decision.suspend_auto_sync if decision else None, snapshot.target.as_object(), now, marker
    )


MIN_BASELINE = timedelta(seconds=10)
"""A baseline shorter than this is too few points to compare with; the guard's small-sample rule
still judges it, but an onset a moment ago is better read with a little of what came before."""


def baseline_start(state: MachineState, now: datetime) -> datetime:
    """``baselineWindow`` before now, but never before the linked Incident's onset.

    The baseline is what the mitigation must not make worse. An Incident filed seconds after its
    errors began would otherwise have a mostly healthy baseline, and the tail of the very errors a
    rollback cures (a rate window still draining) would read as "worse" and revert the rollback.
    """
    start = now - state.guard.baseline_period
    onset = state.incident_onset
    if onset is not None and start < onset:
        start = min(onset, now - MIN_BASELINE)
    return start


def on_baseline(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    if isinstance(obs, TargetObserved):
        world = obs.world
        holder = (meta(world.target).get("annotations") or {}).get(LOCK_ANNOTATION) if world.target else None
        mine = state.identity.holds(holder)
        if holder and not mine and world.lock_holder_active and not state.spec.dry_run:
            return transition(
                state,
                now=now,
                to=P.REJECTED,
                event="Blocked",
                reason=(
                    f"target is locked by active Mitigation {holder!r} (one mitigation at a time per target)"
                ),
                effects=(Finish(P.REJECTED.value),),
            )
        if status.snapshot is None:
            try:
                snapshot = take_snapshot(state.spec, world, mitigation=state.identity.name, now=now)
                auto_sync = None
                if not state.spec.dry_run:
                    auto_sync = _plan_auto_sync(state, snapshot, holder, now)
                    snapshot = snapshot.locked(
                        locked_generation(snapshot.target.as_object(), state.identity.lock),
                        held_annotations(auto_sync),
                    )
                p = plan(
                    state.spec, snapshot, mitigation=state.identity.name, mitigation_uid=state.identity.uid
                )
            except PlanError as err:
                # The spec cannot be executed on this target: terminal, nothing touched, the
                # message names the field and the fix. A retry would fail the same way.
                return transition(
                    state,
                    now=now,
                    to=P.FAILED,
                    event="PlanFailed",
                    reason=f"cannot be executed: {err}",
                    effects=(Finish(P.FAILED.value),),
                    conditions=valid_condition(state, now, ok=False, reason="PlanFailed", message=str(err)),
                )
            plan_model = Plan(
                summary=p.summary[:1024], changes=[c[:1024] for c in p.changes], patch=p.patch_record()
            )
            state = replace(
                state,
                status=status.model_copy(
                    update={
                        "conditions": valid_condition(
                            state, now, ok=True, reason="Planned", message=p.summary
                        )
                    }
                ),
            )
            status = state.status
            if state.spec.dry_run:
                return transition(
                    state,
                    now=now,
                    to=P.SUCCEEDED,
                    event="DryRunPlanned",
                    reason=f"dry run, nothing changed; would {p.summary}",
                    effects=(Finish(P.SUCCEEDED.value),),
                    plan=plan_model,
                    snapshot=snapshot.to_status(),
                )
            if p.noop_reason:
                return transition(
                    state,
                    now=now,
                    to=P.SUCCEEDED,
                    event="NothingToDo",
                    reason=p.noop_reason,
                    effects=(Finish(P.SUCCEEDED.value),),
                    plan=plan_model,
                    snapshot=snapshot.to_status(),
                )
            if mine:
                return _query_baseline(
                    state, now, plan=plan_model, snapshot=snapshot.to_status(), auto_sync=auto_sync
                )
            state2 = replace(
                state, status=status.model_copy(update={"snapshot": snapshot.to_status(), "plan": plan_model})
            )
            intent = intent_for(state2, Step.LOCK, now)
            return transition(
                state,
                now=now,
                to=None,
                event="Planned",
                reason=f"snapshot taken; plan: {p.summary}",
                effects=(PersistIntent(intent),),
                plan=plan_model,
                auto_sync=auto_sync,
                snapshot=snapshot.to_status(),
                intent=intent,
                canary=next((e.key.name for e in p.apply if isinstance(e, Create)), None),
            )
        # Resume with a snapshot: the lock is ours (go on) or still to take.
        if mine:
            return _query_baseline(state, now)
        snap = read_snapshot(state.spec, status.snapshot)
        if world.target is not None and meta(world.target).get("generation") != snap.target.generation:
            # Changed between our snapshot and our lock: nothing of ours is on it yet, so the
            # snapshot is simply stale. Start over from what is there now.
            fresh = replace(
                state, status=status.model_copy(update={"snapshot": None, "plan": None, "intent": None})
            )
            return on_baseline(fresh, obs, now)
        intent = intent_for(
            state, Step.LOCK, now, attempt=(status.intent.attempt + 1) if status.intent else 1
        )
        return transition(
            state,
            now=now,
            to=None,
            event="LockRetry",
            reason="taking the target lock",
            effects=(PersistIntent(intent),),
            intent=intent,
        )
    if isinstance(obs, IntentPersisted) and obs.step == Step.LOCK and status.snapshot is not None:
        snap = read_snapshot(state.spec, status.snapshot)
        holder = (snap.target.annotations or {}).get(LOCK_ANNOTATION)
        # Anything else there (a finished holder, or our own lock as a bare name from before locks
        # recorded the namespace) is replaced, conditional on still being exactly that value.
        stale = holder if holder and holder != state.identity.lock else None
        lock = lock_patch(snap.target.as_object(), state.identity.lock, stale_holder=stale, held=snap.held)
        return quiet(state, lock)
    if isinstance(obs, ChangeApplied) and obs.step == Step.LOCK:
        return _query_baseline(state, now)
    if isinstance(obs, ChangeApplied | ApplyFailed) and obs.step == Step.SUSPEND and status.auto_sync:
        record = suspended(status.auto_sync, isinstance(obs, ChangeApplied), getattr(obs, "reason", ""), now)
        return _query_baseline(state, now, auto_sync=record)
    if isinstance(obs, ApplyFailed) and obs.step == Step.LOCK:
        if obs.retriable or obs.conflict:
            return quiet(state, observe(state))
        return transition(
            state,
            now=now,
            to=P.FAILED,
            event="LockFailed",
            reason=f"could not lock the target: {obs.reason}",
            effects=(Finish(P.FAILED.value),),
        )
    if isinstance(obs, BaselineCollected):
        values = [
            SignalValue(
                signal=s.signal,
                value=sorted(s.points)[len(s.points) // 2] if s.points else None,
                samples=len(s.points or ()),
                error=s.error if not s.points else None,
                points=list(s.points or ()),
            )
            for s in obs.series
        ]
        baseline = Baseline(window=state.guard.baseline_window, start=obs.start, end=obs.end, values=values)
        nums = ", ".join(
            f"{v.signal}={v.value if v.value is not None else 'no data'} (n={v.samples})" for v in values
        )
        blind = unjudgeable(state, values)
        if blind and state.guard.baseline_no_data is BaselineNoDataAction.REFUSE:
            return _refuse_blind(state, now, blind, nums, baseline)
        state2 = replace(state, status=status.model_copy(update={"baseline": baseline}))
        intent = intent_for(state2, Step.APPLY, now)
        if blind:
            nums += f"; acting without a baseline for {', '.join(blind)} (baselineNoData: Proceed)"
        return transition(
            state,
            now=now,
            to=P.APPLYING,
            event="BaselineCollected",
            reason=f"baseline over {baseline.window}: {nums}",
            effects=(PersistIntent(intent),),
            baseline=baseline,
            intent=intent,
        )
    if isinstance(obs, Tick):
        return quiet(state, observe(state))
    return quiet(state)


BASELINE_TAKEN = "BaselineTaken"
"""Condition: False (reason ``NoData``) when the baseline could not judge a guarded signal and the
Mitigation refused to act blind."""


def unjudgeable(state: MachineState, values: list[SignalValue]) -> list[str]:
    """Guarded signals no check could judge: no baseline point and no SLO threshold in the template.

    The guard compares each check with the baseline, or with the template's threshold when there is
    no baseline; with neither, every check is NoData and the bake holds (or reverts) with the change
    in place: the change would have been made blind (design invariant 5)."""
    by_name = {v.signal: v for v in values}
    out = []
    for ref in state.guard.signals:
        value = by_name.get(ref.name)
        template = state.signals.get(ref.name)
        if (value is None or not value.points) and (template is None or template.threshold is None):
            out.append(ref.name)
    return out


def _refuse_blind(
    state: MachineState, now: datetime, blind: list[str], nums: str, baseline: Baseline
) -> Transition:
    """Refused before any write to the target (only our lock is on it, and it goes)."""
    errors = "; ".join(f"{v.signal}: {v.error}" for v in baseline.values if v.signal in blind and v.error)
    why = (
        f"baseline over {baseline.window} has no data for {', '.join(blind)} ({nums}"
        + (f"; {errors}" if errors else "")
        + "), and no SLO threshold could judge it either: acting would be blind, so nothing was"
        " changed. Fix the signal's query or the workload's metrics, give the template a threshold,"
        " or set guard.baselineNoData: Proceed (in spec.guard or the policy's guardDefaults) to act"
        " anyway"
    )
    return end(
        state,
        now=now,
        to=P.FAILED,
        event="BaselineNoData",
        reason=why,
        baseline=baseline,
        conditions=with_condition(state.status, now, BASELINE_TAKEN, ok=False, reason="NoData", message=why),
    )


def _query_baseline(state: MachineState, now: datetime, **status: Any) -> Transition:
    record = status.get("auto_sync", state.status.auto_sync)
    reason = f"target locked for {state.identity.name}; taking baseline"
    if record is not None and needs_suspend(record):
        # Argo CD: the Application's selfHeal goes off right after the lock, before the baseline.
        request = state.status.policy.suspend_auto_sync if state.status.policy else None
        patch = suspend_patch(record, bool(request and request.has_annotations))
        return transition(
            state,
            now=now,
            to=None,
            event="Locked",
            reason=f"target locked for {state.identity.name}; {record.reason}",
            effects=(patch,),
            intent=None,
            **status,
        )
    if record is not None and record.phase is AutoSyncPhase.SUSPENDING:
        # The switch was set in the lock's own write: the lock landed, so did the suspension.
        status["auto_sync"] = record.model_copy(
            update={
                "phase": AutoSyncPhase.SUSPENDED,
                "reason": record.reason.replace("suspending", "suspended", 1),
                "changed_at": now,
            }
        )
        reason += f"; {status['auto_sync'].reason}"
    elif record is not None and record.phase is AutoSyncPhase.NOT_SUSPENDED:
        reason += f"; {record.reason}"  # e.g. an Application that does not manage the target: said
    start = baseline_start(state, now)
    if start > now - state.guard.baseline_period:
        reason += f"; baseline from the Incident's onset ({start.isoformat()})"
    query = QuerySignals(
        signals=tuple(s.name for s in state.guard.signals),
        start=start,
        end=now,
        step_seconds=max(1.0, (now - start).total_seconds() / 40),
        purpose="baseline",
    )
    return transition(
        state,
        now=now,
        to=None,
        event="Locked",
        reason=reason,
        effects=(query,),
        intent=None,
        **status,
    )
