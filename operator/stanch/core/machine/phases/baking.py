"""Baking: check the guard every interval until it keeps, holds or reverts the change."""

from __future__ import annotations

from datetime import datetime

from stanch.core.effects import Patch, PersistIntent, QuerySignals, Step, WakeAt
from stanch.core.guard import GuardAction, SignalSpec, judge, read_rollout, run_check, settling_reason
from stanch.core.machine.finishing import after_unlock, finish, resume_effects
from stanch.core.machine.observations import GuardSample, Observation, TargetObserved, Tick
from stanch.core.machine.phases.reverting import drifted, start_revert
from stanch.core.machine.reading import intent_for, observe, plan_of
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, announce_once, quiet, status_update, transition
from stanch.core.models import ActionKind, CheckVerdict
from stanch.core.plans import detect_drift


def on_baking(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    assert status.applied is not None
    bake, interval = state.guard.bake_period, state.guard.check_period
    last = status.observations[-1].time if status.observations else status.applied.at
    if isinstance(obs, Tick):
        due = last + interval
        if now < due:
            return quiet(state, WakeAt(due))
        query = QuerySignals(
            signals=tuple(s.name for s in state.guard.signals),
            start=max(last, now - interval),
            end=now,
            step_seconds=max(1.0, interval.total_seconds() / 6),
            purpose="check",
        )
        return quiet(state, observe(state), query)
    if isinstance(obs, TargetObserved):
        if status.snapshot is not None and detect_drift(
            state.spec, status.snapshot, plan_of(state), obs.world
        ):
            return drifted(state, now, obs.world, "the target changed during the bake")
        # A canary is judged on its own pods, so its own rollout is what settles.
        workload = obs.world.canary if state.spec.action == ActionKind.CANARY else obs.world.target
        rollout = read_rollout(workload, previous=status.rollout, now=now)
        if rollout == status.rollout:
            return quiet(state)
        return status_update(state, status.message, (), rollout=rollout)
    if isinstance(obs, GuardSample):
        baseline = {v.signal: v.points for v in (status.baseline.values if status.baseline else [])}
        sample = {s.signal: s.points for s in obs.series}
        specs = [SignalSpec.of(s.name, state.signals.get(s.name)) for s in state.guard.signals]
        settling = settling_reason(status.rollout, now=now, settle_time=state.guard.settle_period)
        result = run_check(
            specs,
            baseline,
            sample,
            at=obs.at,
            previous=status.observations,
            tolerance=state.guard.tolerance,
            settling=settling,
        )
        history = [*status.observations, result.observation]
        # The bake watches the change, not its rollout: while the new pods still settle it runs on,
        # up to one more bakeTime (a stalled rollout stops settling sooner, at its progress deadline).
        bake_over = now >= status.applied.at + bake and (
            result.observation.check != CheckVerdict.SETTLING or now >= status.applied.at + 2 * bake
        )
        judgement = judge(
            history,
            result,
            guard=state.guard,
            bake_over=bake_over,
            at=now,
            thresholds={s.name: s.threshold for s in specs},
        )
        verdict = judgement.verdict
        if judgement.action == GuardAction.CONTINUE:
            previous = status.observations[-1].check if status.observations else None
            return announce_once(
                state,
                now=now,
                event="Check",
                reason=f"check {result.observation.check.value}: {result.observation.note}",
                effects=(WakeAt(now + interval),),
                repeated=previous == result.observation.check,
                observations=history,
            )
        assert verdict is not None
        if judgement.action == GuardAction.HOLD:
            return announce_once(
                state,
                now=now,
                event="Hold",
                reason=f"holding (change kept, not a success): {verdict.reason}",
                effects=(WakeAt(now + interval),),
                repeated=status.verdict is not None and status.verdict.result == verdict.result,
                observations=history,
                verdict=verdict,
            )
        if judgement.action == GuardAction.REVERT:
            return start_revert(
                state,
                now,
                f"guard verdict {verdict.result.value}: {verdict.reason}",
                observations=history,
                verdict=verdict,
            )
        if state.spec.action == ActionKind.CANARY:
            intent = intent_for(state, Step.PROMOTE, now)
            return transition(
                state,
                now=now,
                to=P.APPLYING,
                event="Promoting",
                reason=f"canary healthy: {verdict.reason}",
                effects=(PersistIntent(intent),),
                observations=history,
                verdict=verdict,
                intent=intent,
            )
        return transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="Succeeded",
            reason=verdict.reason,
            effects=finish(state, P.SUCCEEDED),
            observations=history,
            verdict=verdict,
            applied=after_unlock(
                state.status.applied,
                extra=sum(
                    1 for e in resume_effects(state) if isinstance(e, Patch) and e.key.kind == "Deployment"
                ),
            ),
        )
    return quiet(state)
