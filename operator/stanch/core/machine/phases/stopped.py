"""Deterministic errors that stop a Mitigation whatever its phase: an invalid merged guard, and a pass
that kept raising until its retry budget was spent (design invariant 13: nothing stuck or silent).

Both end the same way, chosen by what is on the target:

- nothing of ours changed it yet: **Failed**, the lock released;
- our change may be on it and the plan can undo it: **Reverting** (no guard watches it any more, so
  it must not stay), ending Reverted;
- our change may be on it and cannot be undone by Stanch (or the revert itself is what fails):
  **NeedsAttention**, saying what to check.

Each is one transition with a condition (``Valid``/``InvalidGuard`` or ``Stalled``), a Warning
Event whose reason is the cause, and a message naming the fix; the wiring counts it in
``stanch_mitigation_failures_total``.
"""

from __future__ import annotations

from datetime import datetime

from stanch.core.effects import Finish
from stanch.core.machine.finishing import finish
from stanch.core.machine.reading import has_change, observe, plan_of
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import VALID, P, end, phase_of, quiet, transition, with_condition
from stanch.core.models import LOCK_ANNOTATION, TERMINAL_PHASES, Condition
from stanch.core.scope import CROSS_NAMESPACE_TARGET

INVALID_GUARD = "InvalidGuard"
"""Event and ``Valid`` condition reason: the Mitigation's guard over the policy's ``guardDefaults``
over the built-in defaults breaks a rule."""
RETRY_BUDGET_EXHAUSTED = "RetryBudgetExhausted"
"""Event and ``Stalled`` condition reason: the Mitigation's pass kept raising."""
STALLED = "Stalled"
"""Condition: Stanch stopped retrying an error on this Mitigation (True, with the error and the fix)."""

SPEC_CHANGED = "SpecChangedAfterDecision"
"""Event and ``Valid`` condition reason: the frozen part of the spec changed after the policy decided."""

ERROR_EVENTS = frozenset({INVALID_GUARD, RETRY_BUDGET_EXHAUSTED, SPEC_CHANGED})
"""Events that stop a Mitigation on an error even when it goes on to revert (so the failure metric
counts them although the phase they lead to is Reverting)."""


def on_guard_problem(state: MachineState, now: datetime) -> Transition:
    """The merged guard is invalid: no check can run, so nothing may be changed or left changed."""
    problem = state.guard_problem
    assert problem is not None
    conditions = with_condition(
        state.status, now, VALID, ok=False, reason=INVALID_GUARD, message=problem.message
    )
    return _stop(state, now, INVALID_GUARD, f"invalid guard: {problem.message}", conditions)


def retry_budget_exhausted(state: MachineState, error: str, attempts: int, now: datetime) -> Transition:
    """The pass raised ``attempts`` times in a row with an error that is not a passing outage."""
    if phase_of(state) in TERMINAL_PHASES:
        return quiet(state)
    why = (
        f"gave up after {attempts} failed passes in a row: {error}"[:600]
        + "; see the operator's log for the traceback, fix the cause, then delete and recreate the"
        " Mitigation"
    )
    conditions = with_condition(
        state.status, now, STALLED, ok=True, reason=RETRY_BUDGET_EXHAUSTED, message=why
    )
    # A revert that itself keeps failing is not tried again from here: a human must look.
    revert = phase_of(state) != P.REVERTING
    return _stop(state, now, RETRY_BUDGET_EXHAUSTED, why, conditions, revert=revert)


def _stop(
    state: MachineState,
    now: datetime,
    event: str,
    why: str,
    conditions: list[Condition],
    *,
    revert: bool = True,
) -> Transition:
    if not has_change(state):
        return end(
            state,
            now=now,
            to=P.FAILED,
            event=event,
            reason=f"{why}; nothing was changed",
            conditions=conditions,
        )
    if revert and state.status.snapshot is not None and plan_of(state).reversible:
        return transition(
            state,
            now=now,
            to=P.REVERTING,
            event=event,
            reason=f"{why}; the change may be live with no guard watching it: reverting",
            effects=(observe(state),),
            intent=None,
            conditions=conditions,
        )
    note = plan_of(state).revert_note if state.status.snapshot is not None else "no snapshot"
    return transition(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event=event,
        reason=(
            f"{why}; the change may be live and Stanch will not undo it ({note}):"
            " check the target and undo it by hand if needed"
        ),
        effects=finish(state, P.NEEDS_ATTENTION),
        conditions=conditions,
    )


def out_of_scope(state: MachineState, problem: str, now: datetime) -> Transition:
    """``spec.target.namespace`` names another namespace (design invariant 11): ended without
    reading or writing anything there. The admission policy refuses such a spec; this is the
    operator's own check, for a cluster without the policy or an object older than it."""
    conditions = with_condition(
        state.status, now, VALID, ok=False, reason=CROSS_NAMESPACE_TARGET, message=problem
    )
    if state.status.snapshot is None and not has_change(state):
        return transition(
            state,
            now=now,
            to=P.REJECTED,
            event=CROSS_NAMESPACE_TARGET,
            reason=f"rejected: {problem}; nothing was read or changed",
            effects=(Finish(P.REJECTED.value),),
            intent=None,
            conditions=conditions,
        )
    # Taken up before this rule existed: its lock (and maybe its change) is in the other namespace,
    # where Stanch no longer writes for it. A human finishes it.
    target = state.spec.target
    return transition(
        state,
        now=now,
        to=P.NEEDS_ATTENTION,
        event=CROSS_NAMESPACE_TARGET,
        reason=(
            f"stopped: {problem}. It started before Mitigations were confined to their own namespace and"
            f" Stanch no longer writes there for it: check Deployment {target.namespace}/{target.name},"
            " undo the change by hand if needed and release its lock with kubectl -n"
            f" {target.namespace} annotate deployment {target.name} {LOCK_ANNOTATION}-"
        ),
        effects=(Finish(P.NEEDS_ATTENTION.value),),
        intent=None,
        conditions=conditions,
    )


def spec_changed(state: MachineState, now: datetime) -> Transition:
    """The spec's frozen part no longer matches what the policy decided on (``status.policy.specDigest``):
    the CRD refuses such an edit, so this is a CRD older than the rule, or an edit that landed while the
    decision was being written. What runs must be what was allowed (design invariant 12), and an
    approval given for the old spec must not carry over to the new one, so the Mitigation ends: Rejected
    while nothing was done, else as any stop (Failed, Reverting or NeedsAttention)."""
    why = (
        "the spec changed after the policy decided on it (status.policy.specDigest no longer matches):"
        " only approval, keepOnResolve and revertOnDelete may change; delete this Mitigation and create a"
        " new one with the change, which the policy decides on afresh"
    )
    conditions = with_condition(state.status, now, VALID, ok=False, reason=SPEC_CHANGED, message=why)
    if phase_of(state) in (P.PENDING, P.AWAITING_APPROVAL):
        return end(
            state,
            now=now,
            to=P.REJECTED,
            event=SPEC_CHANGED,
            reason=f"rejected: {why}; nothing was changed",
            conditions=conditions,
        )
    return _stop(state, now, SPEC_CHANGED, why, conditions)
