"""The mitigation state machine as a reducer: ``reduce(state, observation, now=...) -> Transition``.

See docs/mitigation-machine.md for the diagram and the crash-safety argument. In short: every step
that mutates goes PersistIntent → IntentPersisted → mutating effects → ChangeApplied/ApplyFailed, and
every step is recomputed from the persisted snapshot, so a resume (Tick → ObserveTarget →
TargetObserved) either sees the end state (done, never doubled), sees the snapshot's state (re-issue),
or sees something else (someone else's change: NeedsAttention, never clobbered).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from stanch.core.conditions import set_condition
from stanch.core.effects import (
    Create,
    Effect,
    EvaluatePolicy,
    Finish,
    ObjectKey,
    ObserveTarget,
    Patch,
    PersistIntent,
    QuerySignals,
    Reads,
    Step,
    WakeAt,
)
from stanch.core.guard import (
    GuardAction,
    SignalSpec,
    judge,
    pods_started,
    read_rollout,
    run_check,
    settling_reason,
)
from stanch.core.machine.observations import (
    ApplyFailed,
    Approved,
    BaselineCollected,
    ChangeApplied,
    DeleteRequested,
    GuardSample,
    IncidentResolved,
    IntentPersisted,
    Observation,
    PolicyDecided,
    RevertApplied,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.state import KubeEvent, MachineState, Transition
from stanch.core.models import (
    LOCK_ANNOTATION,
    TERMINAL_PHASES,
    ActionKind,
    AppliedChange,
    AuditEntry,
    AutoSync,
    AutoSyncPhase,
    Baseline,
    CheckVerdict,
    Condition,
    Drift,
    MitigationPhase,
    MitigationStatus,
    Plan,
    PolicyDecisionKind,
    SignalValue,
    StepIntent,
)
from stanch.core.plans import (
    ActionPlan,
    AnySnapshot,
    PlanError,
    action_for,
    detect_drift,
    is_applied,
    lock_patch,
    locked_generation,
    plan,
    preconditions_hold,
    read_snapshot,
    reads,
    revert_effects,
    starts_pods,
    take_snapshot,
    unlock_patch,
)
from stanch.core.plans.autosync import (
    held_annotations,
    needs_restore,
    needs_suspend,
    plan_auto_sync,
    resume_patch,
    resumed,
    suspend_patch,
    suspended,
)
from stanch.core.plans.common import MutatingEffect, meta, rfc3339
from stanch.core.plans.verify import Live

P = MitigationPhase
MAX_ATTEMPTS = 5
"""Retries of one step after retriable failures before the mitigation fails."""
WARNING_PHASES = {P.REJECTED, P.FAILED, P.NEEDS_ATTENTION, P.REVERTING, P.REVERTED}


# --- small helpers --------------------------------------------------------------------------------


def _phase(state: MachineState) -> MitigationPhase:
    return state.status.phase or P.PENDING


def _transition(
    state: MachineState,
    *,
    now: datetime,
    to: MitigationPhase | None,
    event: str,
    reason: str,
    effects: tuple[Effect, ...] = (),
    actor: str = "stanch",
    **status: Any,
) -> Transition:
    """A transition with its audit entry and Event; ``status`` fields are replaced."""
    before = _phase(state)
    after = to or before
    if after in TERMINAL_PHASES and before not in TERMINAL_PHASES and "auto_sync" not in status:
        status = {**status, **_ending_auto_sync(state, effects, now)}
    entry = AuditEntry(
        time=now, actor=actor[:256], event=event, from_phase=before, to_phase=after, reason=reason[:1024]
    )
    new_status = state.status.model_copy(
        update={
            **status,
            "phase": after,
            "message": reason[:1024],
            "audit": [*state.status.audit, entry],
            # For the printer column: `kubectl get mit` shows what each Mitigation does.
            "action": state.spec.action,
        }
    )
    new_status = type(new_status).model_validate(new_status.model_dump())  # re-apply the caps
    warn = (after in WARNING_PHASES and after != before) or event in {
        "ApplyFailed",
        "Blocked",
        "Drift",
        "EvictionRefused",
    }
    kind: Literal["Normal", "Warning"] = "Warning" if warn else "Normal"
    return Transition(
        state=replace(state, status=new_status),
        effects=effects,
        audit=(entry,),
        events=(KubeEvent(kind, event, reason[:1024]),),
    )


def _update(state: MachineState, message: str, effects: tuple[Effect, ...], **status: Any) -> Transition:
    """Status moves on (a check recorded, the message refreshed) but nothing happened worth an audit
    entry or an Event: the same outcome as the last one that was recorded."""
    new_status = state.status.model_copy(update={**status, "message": message[:1024]})
    new_status = type(new_status).model_validate(new_status.model_dump())  # re-apply the caps
    return Transition(state=replace(state, status=new_status), effects=effects)


def _quiet(state: MachineState, *effects: Effect) -> Transition:
    """No transition: only ask for something (a read, a timer)."""
    return Transition(state=state, effects=effects)


def _announce_once(
    state: MachineState,
    *,
    now: datetime,
    event: str,
    reason: str,
    effects: tuple[Effect, ...],
    repeated: bool,
    **status: Any,
) -> Transition:
    """Record ``reason`` in status; audit and announce it (an Event) only when it is news.

    A check, a hold or a refused eviction repeats every few seconds for as long as it lasts; one
    audit entry and Event per change of state keeps a long outage from flushing the audit trail
    and flooding Events."""
    if repeated:
        return _update(state, reason, effects, **status)
    return _transition(state, now=now, to=None, event=event, reason=reason, effects=effects, **status)


def _target_key(state: MachineState) -> ObjectKey:
    t = state.spec.target
    return ObjectKey("apps/v1", "Deployment", t.name, t.namespace or state.identity.namespace)


def _snapshot(state: MachineState) -> AnySnapshot | None:
    """``status.snapshot``, typed (None before it is taken)."""
    raw = state.status.snapshot
    return read_snapshot(state.spec, raw) if raw else None


def _live(state: MachineState) -> Live:
    """Where this action's writes are in what ``ObserveTarget`` read."""
    return action_for(state.spec.action).live


def _starts_pods(state: MachineState) -> bool:
    snap = _snapshot(state)
    return snap is not None and starts_pods(state.spec, snap)


def _reads(state: MachineState) -> Reads:
    return reads(state.spec, _target_key(state), state.status.snapshot)


def _observe(state: MachineState) -> ObserveTarget:
    return ObserveTarget(_reads(state))


def _plan_auto_sync(
    state: MachineState, snapshot: AnySnapshot, holder: str | None, now: datetime
) -> AutoSync | None:
    """The suspension the policy decision asks for; kept as recorded when we already hold the lock
    (a re-plan after a restart must not take our own switch for someone else's)."""
    recorded = state.status.auto_sync
    if holder == state.identity.name and needs_restore(recorded):
        return recorded
    decision = state.status.policy
    marker = f"{state.identity.namespace}/{state.identity.name}"
    return plan_auto_sync(
        decision.suspend_auto_sync if decision else None, snapshot.target.as_object(), now, marker
    )


def _plan(state: MachineState) -> ActionPlan:
    assert state.status.snapshot is not None
    return plan(
        state.spec, state.status.snapshot, mitigation=state.identity.name, mitigation_uid=state.identity.uid
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


def _approved(state: MachineState) -> str | None:
    approval = state.spec.approval
    if approval is not None and approval.approved:
        return approval.approved_by or "spec.approval"
    return state.approved_by_annotation


def _unlock(state: MachineState) -> tuple[Effect, ...]:
    snap = state.status.snapshot
    if not snap or state.spec.dry_run:
        return ()
    return (unlock_patch(read_snapshot(state.spec, snap).target.as_object(), state.identity.name),)


def _after_unlock(applied: AppliedChange | None, extra: int = 0) -> AppliedChange | None:
    """What we expect of the target once our lock is released.

    Releasing the lock removes an annotation, which moves a Deployment's generation by one; a
    later undo (a temporary mitigation when its Incident is resolved) is conditional on that. If
    the release did not happen as planned, someone else touched the annotations and the undo's
    precondition rightly fails: drift, never a clobbering revert.
    """
    if applied is None or applied.generation is None:
        return applied
    # ``extra``: writes after the unlock (restoring a GitOps switch), one generation step each.
    return applied.model_copy(update={"generation": applied.generation + 1 + extra})


VALID = "Valid"
"""Condition: the spec can be executed on its target (False: which field is wrong and how to fix it)."""


def _valid(state: MachineState, now: datetime, *, ok: bool, reason: str, message: str) -> list[Condition]:
    return _condition(state.status, now, VALID, ok=ok, reason=reason, message=message)


def _condition(
    status: MitigationStatus, now: datetime, type_: str, *, ok: bool, reason: str, message: str
) -> list[Condition]:
    """``status.conditions`` with ``type_`` set (its time moves only when it flips)."""
    updated = set_condition(
        [c.model_dump(by_alias=True, mode="json") for c in status.conditions],
        type_=type_,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        observed_generation=None,
        now=now,
    )
    return [Condition.model_validate(c) for c in updated]


def invalid_spec(
    status: MitigationStatus, error: str, now: datetime
) -> tuple[MitigationStatus, KubeEvent | None]:
    """A Mitigation whose spec does not even parse (it got past an older CRD schema): Failed, once,
    with the Valid condition naming the field. There is no MachineState without a spec, so this is
    the reducer's one entry that takes a bare status; nothing was planned, so nothing is touched."""
    reason = f"cannot be executed: invalid spec: {error}"[:1024]
    if status.phase in TERMINAL_PHASES:
        return status, None  # said once already
    entry = AuditEntry(
        time=now,
        actor="stanch",
        event="InvalidSpec",
        from_phase=status.phase,
        to_phase=P.FAILED,
        reason=reason,
    )
    new = status.model_copy(
        update={
            "phase": P.FAILED,
            "message": reason,
            "audit": [*status.audit, entry],
            "conditions": _condition(status, now, VALID, ok=False, reason="InvalidSpec", message=error),
        }
    )
    return type(new).model_validate(new.model_dump()), KubeEvent("Warning", "InvalidSpec", reason)


def _finish(state: MachineState, phase: MitigationPhase) -> tuple[Effect, ...]:
    return (*_unlock(state), *_resume(state), Finish(phase.value))


def _resume(state: MachineState) -> tuple[Effect, ...]:
    """Restore the GitOps self-heal suspended with the lock (conditional, idempotent)."""
    record, snap = state.status.auto_sync, state.status.snapshot
    if record is None or not snap or state.spec.dry_run or not needs_restore(record):
        return ()
    return (resume_patch(record, read_snapshot(state.spec, snap).target.as_object()),)


def _ending_auto_sync(state: MachineState, effects: tuple[Effect, ...], now: datetime) -> dict[str, Any]:
    """The auto-sync record as the Mitigation ends: restoring when the effects restore it; never
    suspended when it ends before its lock (and with it the suspension) landed."""
    record = state.status.auto_sync
    if record is None or record.phase not in (AutoSyncPhase.SUSPENDING, AutoSyncPhase.SUSPENDED):
        return {}
    if any(isinstance(e, Patch) and e.step == Step.RESUME for e in effects):
        return {"auto_sync": record.model_copy(update={"phase": AutoSyncPhase.RESTORING, "changed_at": now})}
    if record.phase is AutoSyncPhase.SUSPENDING:
        update = {
            "phase": AutoSyncPhase.NOT_SUSPENDED,
            "reason": "the lock was never taken",
            "changed_at": now,
        }
        return {"auto_sync": record.model_copy(update=update)}
    return {}


def _after_end(state: MachineState, obs: Observation, now: datetime) -> Transition:
    """A terminal Mitigation still restores what it suspended (also after a restart)."""
    record = state.status.auto_sync
    if isinstance(obs, ChangeApplied | ApplyFailed) and obs.step == Step.RESUME and record is not None:
        if isinstance(obs, ApplyFailed) and obs.retriable and not obs.conflict:
            return _quiet(state, WakeAt(now + timedelta(seconds=10)))
        done = resumed(record, isinstance(obs, ChangeApplied), getattr(obs, "reason", ""), now)
        if done == record:
            return _quiet(state)
        return _transition(
            state,
            now=now,
            to=None,
            event="AutoSyncRestored" if done.phase is AutoSyncPhase.RESTORED else "AutoSyncNotRestored",
            reason=done.reason,
            auto_sync=done,
        )
    if isinstance(obs, Tick) and record is not None and record.phase is AutoSyncPhase.RESTORING:
        return _quiet(state, *_resume(state))
    return _quiet(state)


def _intent(state: MachineState, step: str, now: datetime, *, attempt: int = 1) -> StepIntent:
    snap = _snapshot(state)
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


def _step_effects(state: MachineState, step: str) -> tuple[MutatingEffect, ...]:
    p = _plan(state)
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
        snap = _snapshot(state)
        assert snap is not None
        return revert_effects(p, snap, applied_generation=applied.generation if applied else None, at=at)
    raise ValueError(f"unknown step {step}")


# --- the reducer ----------------------------------------------------------------------------------


def reduce(state: MachineState, observation: Observation, *, now: datetime) -> Transition:
    """Decide what happens next. Pure: no I/O, time comes in as ``now``."""
    phase = _phase(state)
    if phase in TERMINAL_PHASES and isinstance(observation, ChangeApplied | ApplyFailed):
        return _after_end(state, observation, now)
    if isinstance(observation, DeleteRequested) or (state.deleting and phase not in (P.REVERTING,)):
        return _on_delete(state, now)
    if isinstance(observation, IncidentResolved):
        return _on_resolved(state, now)
    if phase in TERMINAL_PHASES:
        return _after_end(state, observation, now)
    handler = {
        P.PENDING: _pending,
        P.AWAITING_APPROVAL: _awaiting,
        P.BASELINE: _baseline,
        P.APPLYING: _applying,
        P.BAKING: _baking,
        P.REVERTING: _reverting,
    }[phase]
    return handler(state, observation, now)


def _has_change(state: MachineState) -> bool:
    """Whether the target may carry our change (an Apply was at least intended)."""
    intent = state.status.intent
    return state.status.applied is not None or (
        intent is not None and intent.step in (Step.APPLY, Step.PROMOTE)
    )


def _on_delete(state: MachineState, now: datetime) -> Transition:
    phase = _phase(state)
    if phase in TERMINAL_PHASES:
        return _quiet(state, *_finish(state, phase))
    if phase == P.REVERTING:
        # Already reverting (the deletion's own revert, or the guard's): the revert goes on from its
        # own observations. Starting over would drop the persisted intent and add a Reverting entry
        # (and a second revert attempt) on every pass of the finalizer.
        return _quiet(state)
    if not _has_change(state):
        return _transition(
            state,
            now=now,
            to=P.FAILED,
            event="Deleted",
            reason="deleted before any change was made",
            effects=_finish(state, P.FAILED),
            intent=None,
        )
    if not state.spec.revert_on_delete:
        return _transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="DeletedKept",
            reason="deleted with revertOnDelete=false: the change stays in place",
            effects=_finish(state, P.SUCCEEDED),
        )
    return _start_revert(state, now, "Mitigation deleted mid-flight: reverting first (revertOnDelete)")


def _on_resolved(state: MachineState, now: datetime) -> Transition:
    phase = _phase(state)
    if not state.spec.temporary or phase not in (P.BAKING, P.SUCCEEDED):
        return _quiet(state)
    if state.spec.keep_on_resolve:
        return _transition(
            state,
            now=now,
            to=None,
            event="KeptOnResolve",
            reason="incident resolved; temporary mitigation kept (keepOnResolve)",
        )
    return _start_revert(state, now, "incident resolved: undoing the temporary mitigation")


def _start_revert(state: MachineState, now: datetime, reason: str, **status: Any) -> Transition:
    if state.status.snapshot is not None and not _plan(state).reversible:
        return _transition(
            state,
            now=now,
            to=P.FAILED,
            event="RevertImpossible",
            reason=f"{reason}; but {_plan(state).revert_note}",
            effects=_finish(state, P.FAILED),
            **status,
        )
    return _transition(
        state,
        now=now,
        to=P.REVERTING,
        event="Reverting",
        reason=reason,
        effects=(_observe(state),),
        intent=None,
        **status,
    )


def _pending(state: MachineState, obs: Observation, now: datetime) -> Transition:
    if not isinstance(obs, PolicyDecided):
        return _quiet(state, EvaluatePolicy()) if state.status.policy is None else _quiet(state)
    decision = obs.decision
    reasons = "; ".join(decision.reasons) or decision.decision.value
    source = f"{decision.policy or 'no policy (default deny)'}{f' {decision.rule}' if decision.rule else ''}"
    actor = f"policy:{decision.policy}#{decision.rule}" if decision.policy else "stanch"
    if state.spec.dry_run:
        return _transition(
            state,
            now=now,
            to=P.BASELINE,
            event="DryRun",
            actor=actor,
            reason=(
                f"dry run (always allowed); policy would say {decision.decision.value} by {source}: {reasons}"
            ),
            effects=(_observe(state),),
            policy=decision,
        )
    if decision.decision == PolicyDecisionKind.DENY:
        return _transition(
            state,
            now=now,
            to=P.REJECTED,
            event="PolicyDenied",
            actor=actor,
            reason=f"denied by {source}: {reasons}",
            effects=(Finish(P.REJECTED.value),),
            policy=decision,
        )
    if decision.decision == PolicyDecisionKind.REQUIRE_APPROVAL and _approved(state) is None:
        return _transition(
            state,
            now=now,
            to=P.AWAITING_APPROVAL,
            event="ApprovalRequired",
            actor=actor,
            reason=f"manual approval required by {source}: {reasons}",
            policy=decision,
        )
    return _transition(
        state,
        now=now,
        to=P.BASELINE,
        event="PolicyAllowed",
        actor=actor,
        reason=f"allowed by {source}: {reasons}",
        effects=(_observe(state),),
        policy=decision,
    )


def _awaiting(state: MachineState, obs: Observation, now: datetime) -> Transition:
    by = obs.by if isinstance(obs, Approved) else _approved(state)
    if by is None:
        return _quiet(state)
    reason = obs.reason if isinstance(obs, Approved) and obs.reason else "approved"
    return _transition(
        state,
        now=now,
        to=P.BASELINE,
        event="Approved",
        actor=by,
        reason=f"approved by {by}: {reason}",
        effects=(_observe(state),),
    )


def _baseline(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    if isinstance(obs, TargetObserved):
        world = obs.world
        holder = (meta(world.target).get("annotations") or {}).get(LOCK_ANNOTATION) if world.target else None
        if holder and holder != state.identity.name and world.lock_holder_active and not state.spec.dry_run:
            return _transition(
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
                        locked_generation(snapshot.target.as_object(), state.identity.name),
                        held_annotations(auto_sync),
                    )
                p = plan(
                    state.spec, snapshot, mitigation=state.identity.name, mitigation_uid=state.identity.uid
                )
            except PlanError as err:
                # The spec cannot be executed on this target: terminal, nothing touched, the
                # message names the field and the fix. A retry would fail the same way.
                return _transition(
                    state,
                    now=now,
                    to=P.FAILED,
                    event="PlanFailed",
                    reason=f"cannot be executed: {err}",
                    effects=(Finish(P.FAILED.value),),
                    conditions=_valid(state, now, ok=False, reason="PlanFailed", message=str(err)),
                )
            plan_model = Plan(
                summary=p.summary[:1024], changes=[c[:1024] for c in p.changes], patch=p.patch_record()
            )
            state = replace(
                state,
                status=status.model_copy(
                    update={"conditions": _valid(state, now, ok=True, reason="Planned", message=p.summary)}
                ),
            )
            status = state.status
            if state.spec.dry_run:
                return _transition(
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
                return _transition(
                    state,
                    now=now,
                    to=P.SUCCEEDED,
                    event="NothingToDo",
                    reason=p.noop_reason,
                    effects=(Finish(P.SUCCEEDED.value),),
                    plan=plan_model,
                    snapshot=snapshot.to_status(),
                )
            if holder == state.identity.name:
                return _query_baseline(
                    state, now, plan=plan_model, snapshot=snapshot.to_status(), auto_sync=auto_sync
                )
            state2 = replace(
                state, status=status.model_copy(update={"snapshot": snapshot.to_status(), "plan": plan_model})
            )
            intent = _intent(state2, Step.LOCK, now)
            return _transition(
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
        if holder == state.identity.name:
            return _query_baseline(state, now)
        snap = read_snapshot(state.spec, status.snapshot)
        if world.target is not None and meta(world.target).get("generation") != snap.target.generation:
            # Changed between our snapshot and our lock: nothing of ours is on it yet, so the
            # snapshot is simply stale. Start over from what is there now.
            fresh = replace(
                state, status=status.model_copy(update={"snapshot": None, "plan": None, "intent": None})
            )
            return _baseline(fresh, obs, now)
        intent = _intent(state, Step.LOCK, now, attempt=(status.intent.attempt + 1) if status.intent else 1)
        return _transition(
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
        stale = holder if holder and holder != state.identity.name else None
        lock = lock_patch(snap.target.as_object(), state.identity.name, stale_holder=stale, held=snap.held)
        return _quiet(state, lock)
    if isinstance(obs, ChangeApplied) and obs.step == Step.LOCK:
        return _query_baseline(state, now)
    if isinstance(obs, ChangeApplied | ApplyFailed) and obs.step == Step.SUSPEND and status.auto_sync:
        record = suspended(status.auto_sync, isinstance(obs, ChangeApplied), getattr(obs, "reason", ""), now)
        return _query_baseline(state, now, auto_sync=record)
    if isinstance(obs, ApplyFailed) and obs.step == Step.LOCK:
        if obs.retriable or obs.conflict:
            return _quiet(state, _observe(state))
        return _transition(
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
        state2 = replace(state, status=status.model_copy(update={"baseline": baseline}))
        intent = _intent(state2, Step.APPLY, now)
        nums = ", ".join(
            f"{v.signal}={v.value if v.value is not None else 'no data'} (n={v.samples})" for v in values
        )
        return _transition(
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
        return _quiet(state, _observe(state))
    return _quiet(state)


def _query_baseline(state: MachineState, now: datetime, **status: Any) -> Transition:
    record = status.get("auto_sync", state.status.auto_sync)
    reason = f"target locked for {state.identity.name}; taking baseline"
    if record is not None and needs_suspend(record):
        # Argo CD: the Application's selfHeal goes off right after the lock, before the baseline.
        request = state.status.policy.suspend_auto_sync if state.status.policy else None
        patch = suspend_patch(record, bool(request and request.has_annotations))
        return _transition(
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
    return _transition(
        state,
        now=now,
        to=None,
        event="Locked",
        reason=reason,
        effects=(query,),
        intent=None,
        **status,
    )


def _applying(state: MachineState, obs: Observation, now: datetime) -> Transition:
    intent = state.status.intent
    step = intent.step if intent else Step.APPLY
    if step == Step.EVICT:
        return _evicting(state, obs, now)
    if isinstance(obs, IntentPersisted) and intent is not None and obs.step == step:
        effects = _step_effects(state, step)
        if not effects:  # e.g. evacuating a node that was already cordoned: nothing to write
            return _applied(state, now, step, None, None)
        return _quiet(state, *effects)
    if isinstance(obs, ChangeApplied) and obs.step == step:
        return _applied(state, now, step, obs.resource_version, obs.generation)
    if isinstance(obs, ApplyFailed) and obs.step == step:
        if obs.conflict:
            return _quiet(state, _observe(state))
        attempt = (intent.attempt if intent else 1) + 1
        if obs.retriable and attempt <= MAX_ATTEMPTS:
            new_intent = _intent(state, step, now, attempt=attempt)
            return _transition(
                state,
                now=now,
                to=None,
                event="Retry",
                reason=f"{step} failed ({obs.reason}); attempt {attempt}",
                effects=(PersistIntent(new_intent),),
                intent=new_intent,
            )
        return _transition(
            state,
            now=now,
            to=P.FAILED,
            event="ApplyFailed",
            reason=f"{step} failed after {attempt - 1} attempt(s): {obs.reason}",
            effects=_finish(state, P.FAILED),
        )
    if isinstance(obs, TargetObserved):
        effects = _step_effects(state, step)
        if is_applied(effects, obs.world, _live(state)):
            live = obs.world.target or {}
            return _applied(state, now, step, meta(live).get("resourceVersion"), meta(live).get("generation"))
        if preconditions_hold(effects, obs.world, _live(state)):
            attempt = (intent.attempt if intent else 0) + 1
            new_intent = _intent(state, step, now, attempt=min(attempt, 1000))
            return _transition(
                state,
                now=now,
                to=None,
                event="Resume",
                reason=f"{step} not applied yet and the target is as planned: re-issuing (attempt {attempt})",
                effects=(PersistIntent(new_intent),),
                intent=new_intent,
            )
        return _drifted(state, now, obs.world, f"the target changed before {step} landed")
    if isinstance(obs, Tick):
        return _quiet(state, _observe(state))
    return _quiet(state)


def _applied(state: MachineState, now: datetime, step: str, rv: str | None, gen: int | None) -> Transition:
    if step == Step.PROMOTE:
        return _transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="Promoted",
            reason="canary fix promoted into the workload",
            effects=_finish(state, P.SUCCEEDED),
            intent=None,
        )
    interval = state.guard.check_period
    applied = AppliedChange(at=now, resource_version=rv, generation=gen)
    p = _plan(state)
    if step == Step.APPLY and p.evict:
        # Evacuate: the node is cordoned (or already was); now the evictions, a step of their own.
        intent = _intent(state, Step.EVICT, now)
        node = (state.status.snapshot or {}).get("node") or {}
        done = "cordoned" if p.apply else "already cordoned"
        return _transition(
            state,
            now=now,
            to=None,
            event="Evicting",
            reason=(
                f"node {node.get('name')} {done}; evicting {len(p.evict)} pod(s) through the Eviction "
                "API (PodDisruptionBudgets apply)"
            ),
            effects=(PersistIntent(intent),),
            applied=applied,
            intent=intent,
        )
    return _transition(
        state,
        now=now,
        to=P.BAKING,
        event="Applied",
        reason=(
            f"{_plan(state).summary}; baking {state.guard.bake_time}, checks every {state.guard.interval}"
        ),
        effects=(WakeAt(now + interval),),
        applied=applied,
        intent=None,
        rollout=pods_started() if _starts_pods(state) else None,
    )


EVICTION_RETRY = timedelta(seconds=5)
"""How soon a refused eviction is tried again (kubectl drain waits 5 s too)."""
EVICTED = "Evicted"
"""Condition (evacuate): every pod of the workload left the node; False while a budget refuses."""


def _evicting(state: MachineState, obs: Observation, now: datetime) -> Transition:
    """The ``Evict`` step of an evacuation: the node is cordoned, ``status.applied`` is set.

    Every eviction is idempotent (a gone or terminating pod, or one replaced under the same name,
    counts as done), so a re-issue sends them all again. A PodDisruptionBudget that allows no
    disruption now refuses (429): retry every :data:`EVICTION_RETRY` within the bake time, say so
    once per distinct refusal, and when the budget is spent revert the cordon rather than delete
    around the budget.
    """
    intent = state.status.intent
    assert intent is not None
    evictions = _plan(state).evict
    if isinstance(obs, IntentPersisted) and obs.step == Step.EVICT:
        return _quiet(state, *evictions) if evictions else _evicted(state, now)
    if isinstance(obs, ChangeApplied) and obs.step == Step.EVICT:
        return _evicted(state, now)
    if isinstance(obs, ApplyFailed) and obs.step == Step.EVICT:
        if obs.conflict:
            return _quiet(state, _observe(state))
        if not obs.retriable:
            return _start_revert(
                state,
                now,
                f"eviction failed: {obs.reason}",
                conditions=_condition(
                    state.status, now, EVICTED, ok=False, reason="EvictionFailed", message=obs.reason
                ),
            )
        return _eviction_refused(state, now, obs.reason)
    if isinstance(obs, TargetObserved):
        if is_applied(evictions, obs.world, _live(state)):
            return _evicted(state, now)
        if now >= intent.started_at + state.guard.bake_period:
            return _eviction_refused(state, now, "pods still on the node")
        retry = intent.model_copy(update={"attempt": intent.attempt + 1})
        return _update(state, state.status.message or "", (PersistIntent(retry),), intent=retry)
    if isinstance(obs, Tick):
        return _quiet(state, _observe(state))
    return _quiet(state)


def _eviction_refused(state: MachineState, now: datetime, why: str) -> Transition:
    intent = state.status.intent
    assert intent is not None
    bake = state.guard.bake_time
    deadline = intent.started_at + state.guard.bake_period
    conditions = _condition(state.status, now, EVICTED, ok=False, reason="EvictionRefused", message=why)
    if now >= deadline:
        return _start_revert(
            state,
            now,
            f"evacuation incomplete: evictions still refused after {bake} (the bake time): {why}; Stanch "
            "never deletes around a PodDisruptionBudget",
            conditions=conditions,
        )
    reason = f"eviction refused; retrying every {EVICTION_RETRY.seconds}s until {rfc3339(deadline)}: {why}"
    last = state.status.audit[-1] if state.status.audit else None
    return _announce_once(
        state,
        now=now,
        event="EvictionRefused",
        reason=reason,
        effects=(WakeAt(now + EVICTION_RETRY),),
        repeated=last is not None and last.event == "EvictionRefused" and last.reason == reason[:1024],
        conditions=conditions,
    )


def _evicted(state: MachineState, now: datetime) -> Transition:
    n = len(_plan(state).evict)
    node = ((state.status.snapshot or {}).get("node") or {}).get("name")
    applied = state.status.applied or AppliedChange(at=now)
    return _transition(
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
        conditions=_condition(
            state.status, now, EVICTED, ok=True, reason="Evicted", message=f"{n} pod(s) evicted from {node}"
        ),
    )


def _drifted(state: MachineState, now: datetime, world: World, why: str) -> Transition:
    diff = ""
    if state.status.snapshot is not None:
        diff = detect_drift(state.spec, state.status.snapshot, _plan(state), world) or ""
    drift = Drift(detected_at=now, diff=diff[:8192])
    return _transition(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event="Drift",
        reason=f"{why}: someone else changed it; Stanch will not overwrite it. See status.drift",
        effects=_finish(state, P.NEEDS_ATTENTION),
        drift=drift,
        intent=None,
    )


def _baking(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    assert status.applied is not None
    bake, interval = state.guard.bake_period, state.guard.check_period
    last = status.observations[-1].time if status.observations else status.applied.at
    if isinstance(obs, Tick):
        due = last + interval
        if now < due:
            return _quiet(state, WakeAt(due))
        query = QuerySignals(
            signals=tuple(s.name for s in state.guard.signals),
            start=max(last, now - interval),
            end=now,
            step_seconds=max(1.0, interval.total_seconds() / 6),
            purpose="check",
        )
        return _quiet(state, _observe(state), query)
    if isinstance(obs, TargetObserved):
        if status.snapshot is not None and detect_drift(state.spec, status.snapshot, _plan(state), obs.world):
            return _drifted(state, now, obs.world, "the target changed during the bake")
        # A canary is judged on its own pods, so its own rollout is what settles.
        workload = obs.world.canary if state.spec.action == ActionKind.CANARY else obs.world.target
        rollout = read_rollout(workload, previous=status.rollout, now=now)
        if rollout == status.rollout:
            return _quiet(state)
        return _update(state, status.message, (), rollout=rollout)
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
            return _announce_once(
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
            return _announce_once(
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
            return _start_revert(
                state,
                now,
                f"guard verdict {verdict.result.value}: {verdict.reason}",
                observations=history,
                verdict=verdict,
            )
        if state.spec.action == ActionKind.CANARY:
            intent = _intent(state, Step.PROMOTE, now)
            return _transition(
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
        return _transition(
            state,
            now=now,
            to=P.SUCCEEDED,
            event="Succeeded",
            reason=verdict.reason,
            effects=_finish(state, P.SUCCEEDED),
            observations=history,
            verdict=verdict,
            applied=_after_unlock(
                state.status.applied,
                extra=sum(1 for e in _resume(state) if isinstance(e, Patch) and e.key.kind == "Deployment"),
            ),
        )
    return _quiet(state)


def _reverting(state: MachineState, obs: Observation, now: datetime) -> Transition:
    status = state.status
    intent = status.intent
    if status.snapshot is None:  # nothing was ever planned, so nothing was changed
        return _transition(
            state,
            now=now,
            to=P.REVERTED,
            event="Reverted",
            reason="nothing to revert",
            effects=(Finish(P.REVERTED.value),),
        )
    if isinstance(obs, TargetObserved):
        p = _plan(state)
        applied_effects = p.apply
        reverts = _step_effects(
            state
            if intent
            else replace(
                state, status=status.model_copy(update={"intent": _intent(state, Step.REVERT, now)})
            ),
            Step.REVERT,
        )
        if is_applied(reverts, obs.world, _live(state)) and not (
            status.applied is None
            and not is_applied(applied_effects, obs.world, _live(state))
            and intent is None
        ):
            return _reverted(state, now)
        if status.applied is not None and not is_applied(applied_effects, obs.world, _live(state)):
            return _drifted(state, now, obs.world, "cannot revert")
        if status.applied is None and not is_applied(applied_effects, obs.world, _live(state)):
            if preconditions_hold(applied_effects, obs.world, _live(state)):
                return _reverted(state, now, reason="the change never landed: nothing to revert")
            return _drifted(state, now, obs.world, "cannot revert")
        if intent is not None and intent.attempt >= MAX_ATTEMPTS:
            # The revert's precondition keeps failing: the target is not what we left. Stop and
            # say so rather than loop or force it.
            return _drifted(state, now, obs.world, f"the revert was refused {intent.attempt} times")
        new_intent = _intent(state, Step.REVERT, now, attempt=(intent.attempt + 1) if intent else 1)
        if intent is not None:
            new_intent = new_intent.model_copy(update={"started_at": intent.started_at})
        return _transition(
            state,
            now=now,
            to=None,
            event="RevertIntent",
            reason=f"reverting: {p.revert_note}",
            effects=(PersistIntent(new_intent),),
            intent=new_intent,
        )
    if isinstance(obs, IntentPersisted) and intent is not None and obs.step == Step.REVERT:
        return _quiet(state, *_step_effects(state, Step.REVERT))
    if isinstance(obs, RevertApplied) or (isinstance(obs, ChangeApplied) and obs.step == Step.REVERT):
        return _reverted(state, now)
    if isinstance(obs, ApplyFailed) and obs.step == Step.REVERT:
        if obs.retriable and (intent.attempt if intent else 1) < MAX_ATTEMPTS:
            return _quiet(state, _observe(state))
        if obs.conflict:
            return _quiet(state, _observe(state))
        return _transition(
            state,
            now=now,
            to=P.FAILED,
            event="RevertFailed",
            reason=f"revert failed: {obs.reason}",
            effects=_finish(state, P.FAILED),
        )
    if isinstance(obs, Tick):
        return _quiet(state, _observe(state))
    return _quiet(state)


def _reverted(state: MachineState, now: datetime, reason: str = "") -> Transition:
    note = reason or f"reverted: {_plan(state).revert_note}"
    return _transition(
        state,
        now=now,
        to=P.REVERTED,
        event="Reverted",
        reason=note,
        effects=_finish(state, P.REVERTED),
        intent=None,
    )
