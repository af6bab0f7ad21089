"""The mitigation state machine as a reducer: ``reduce(state, observation, now=...) -> Transition``.

See docs/mitigation-machine.md for the diagram and the crash-safety argument. In short: every step
that mutates goes PersistIntent → IntentPersisted → mutating effects → ChangeApplied/ApplyFailed, and
every step is recomputed from the persisted snapshot, so a resume (Tick → ObserveTarget →
TargetObserved) either sees the end state (done, never doubled), sees the snapshot's state (re-issue),
or sees something else (someone else's change: NeedsAttention, never clobbered).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from stanch.core.machine.observations import (
    ApplyFailed,
    BaselineCollected,
    ChangeApplied,
    DeleteRequested,
    GuardSample,
    IncidentResolved,
    IntentPersisted,
    Observation,
    PassesFailed,
    PolicyDecided,
    RevertApplied,
    TargetObserved,
)
from stanch.core.machine.phases.applying import on_applying
from stanch.core.machine.phases.baking import on_baking
from stanch.core.machine.phases.baseline import on_baseline
from stanch.core.machine.phases.ending import after_end, on_delete, on_resolved
from stanch.core.machine.phases.pending import on_awaiting_approval, on_pending
from stanch.core.machine.phases.reverting import on_reverting
from stanch.core.machine.phases.stopped import (
    on_guard_problem,
    out_of_scope,
    retry_budget_exhausted,
    spec_changed,
)
from stanch.core.machine.state import KubeEvent, MachineState, Transition
from stanch.core.machine.transitions import VALID, P, phase_of, with_condition
from stanch.core.models import TERMINAL_PHASES, AuditEntry, MitigationStatus, spec_digest
from stanch.core.scope import target_scope_problem


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
            "conditions": with_condition(status, now, VALID, ok=False, reason="InvalidSpec", message=error),
        }
    )
    return type(new).model_validate(new.model_dump()), KubeEvent("Warning", "InvalidSpec", reason)


DRY_RUN_NEVER_ASKS = (
    IntentPersisted,
    ChangeApplied,
    ApplyFailed,
    RevertApplied,
    BaselineCollected,
    GuardSample,
)
"""The observations that only ever answer a write-ahead intent, a write or a signal query."""


def reduce(state: MachineState, observation: Observation, *, now: datetime) -> Transition:
    """Decide what happens next. Pure: no I/O, time comes in as ``now``."""
    phase = phase_of(state)
    if state.spec.dry_run and isinstance(observation, DRY_RUN_NEVER_ASKS):
        # A dry run persists no intent, sends no write and queries no signal, so an answer to one
        # is stale or misrouted: acting on it (a baseline → an Apply intent) would write for a dry run.
        return Transition(state=state)
    if isinstance(observation, PassesFailed):
        return retry_budget_exhausted(state, observation.error, observation.attempts, now)
    if phase in TERMINAL_PHASES and isinstance(observation, ChangeApplied | ApplyFailed | TargetObserved):
        # Also while deleting: a finished Mitigation's reads confirm its lock release (on_delete
        # would only finish again, and read again).
        return after_end(state, observation, now)
    if isinstance(observation, DeleteRequested) or (state.deleting and phase not in (P.REVERTING,)):
        return on_delete(state, now)
    problem = target_scope_problem("Mitigation", state.identity.namespace, state.spec.target)
    if problem is not None and phase not in TERMINAL_PHASES:
        return out_of_scope(state, problem, now)
    if isinstance(observation, PolicyDecided):
        # The decision records what it decided on; every later pass compares (design invariant 12).
        digest = spec_digest(state.spec)
        observation = replace(
            observation, decision=observation.decision.model_copy(update={"spec_digest": digest})
        )
    decided = state.status.policy
    if (
        decided is not None
        and decided.spec_digest is not None
        and phase not in TERMINAL_PHASES
        and phase is not P.REVERTING  # undoing runs from the snapshot, whatever the spec says now
        and spec_digest(state.spec) != decided.spec_digest
    ):
        return spec_changed(state, now)
    if isinstance(observation, IncidentResolved):
        return on_resolved(state, now)
    if phase in TERMINAL_PHASES:
        return after_end(state, observation, now)
    if state.guard_problem is not None and phase not in (P.PENDING, P.REVERTING):
        # Pending: the deciding policy's guardDefaults are not known yet. Reverting needs no guard.
        return on_guard_problem(state, now)
    handler = {
        P.PENDING: on_pending,
        P.AWAITING_APPROVAL: on_awaiting_approval,
        P.BASELINE: on_baseline,
        P.APPLYING: on_applying,
        P.BAKING: on_baking,
        P.REVERTING: on_reverting,
    }[phase]
    return handler(state, observation, now)
