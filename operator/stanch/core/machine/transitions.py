"""How the reducer records what happens: a transition (status, audit entry, Event), a quiet update,
and the conditions it sets."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from stanch.core.conditions import set_condition
from stanch.core.effects import Effect, Patch, Step
from stanch.core.machine.finishing import finish
from stanch.core.machine.state import KubeEvent, MachineState, Transition
from stanch.core.models import (
    TERMINAL_PHASES,
    AuditEntry,
    AutoSyncPhase,
    Condition,
    MitigationPhase,
    MitigationStatus,
)

P = MitigationPhase


WARNING_PHASES = {P.REJECTED, P.FAILED, P.NEEDS_ATTENTION, P.REVERTING, P.REVERTED}


def phase_of(state: MachineState) -> MitigationPhase:
    return state.status.phase or P.PENDING


def end(
    state: MachineState, *, now: datetime, to: MitigationPhase, event: str, reason: str, **status: Any
) -> Transition:
    """Into a final phase: its finishing writes (unlock, GitOps restore) named by that same phase, and
    no write-ahead intent left behind."""
    return transition(
        state, now=now, to=to, event=event, reason=reason, effects=finish(state, to), intent=None, **status
    )


def transition(
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
    before = phase_of(state)
    after = to or before
    if after in TERMINAL_PHASES and before not in TERMINAL_PHASES and "auto_sync" not in status:
        status = {**status, **_ending_auto_sync(state, effects, now)}
    if after in TERMINAL_PHASES and any(isinstance(e, Patch) and e.step == Step.UNLOCK for e in effects):
        status = {**status, "conditions": _releasing(state, status, now)}
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
        "ApprovalIgnored",
        "ApprovalRefused",
        "Blocked",
        "Drift",
        "EvictionRefused",
        "LockNotReleased",
    }
    kind: Literal["Normal", "Warning"] = "Warning" if warn else "Normal"
    return Transition(
        state=replace(state, status=new_status),
        effects=effects,
        audit=(entry,),
        events=(KubeEvent(kind, event, reason[:1024]),),
    )


def status_update(
    state: MachineState, message: str, effects: tuple[Effect, ...], **status: Any
) -> Transition:
    """Status moves on (a check recorded, the message refreshed) but nothing happened worth an audit
    entry or an Event: the same outcome as the last one that was recorded."""
    new_status = state.status.model_copy(update={**status, "message": message[:1024]})
    new_status = type(new_status).model_validate(new_status.model_dump())  # re-apply the caps
    return Transition(state=replace(state, status=new_status), effects=effects)


def quiet(state: MachineState, *effects: Effect) -> Transition:
    """No transition: only ask for something (a read, a timer)."""
    return Transition(state=state, effects=effects)


def announce_once(
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
        return status_update(state, reason, effects, **status)
    return transition(state, now=now, to=None, event=event, reason=reason, effects=effects, **status)


VALID = "Valid"
"""Condition: the spec can be executed on its target (False: which field is wrong and how to fix it)."""

LOCK_RELEASED = "LockReleased"
"""Condition: the target's lock annotation no longer names this Mitigation. False (``Releasing``) is
written with the terminal status, before the unlock is sent: a crash between the two leaves a
Mitigation that says its lock may still be held, and the next pass looks and releases it."""
RELEASING = "Releasing"


def valid_condition(
    state: MachineState, now: datetime, *, ok: bool, reason: str, message: str
) -> list[Condition]:
    return with_condition(state.status, now, VALID, ok=ok, reason=reason, message=message)


def with_condition(
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


def _releasing(state: MachineState, status: dict[str, Any], now: datetime) -> list[Condition]:
    """``status.conditions`` (as this transition sets them) with the lock release pending."""
    conditions = status.get("conditions", state.status.conditions)
    base = state.status.model_copy(update={"conditions": conditions})
    message = "the lock is being released (conditional on it still naming this Mitigation)"
    return with_condition(base, now, LOCK_RELEASED, ok=False, reason=RELEASING, message=message)


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
