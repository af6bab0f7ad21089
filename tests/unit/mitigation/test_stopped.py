"""Deterministic errors end visibly (issue 13, design invariant 13): an invalid merged guard, a spent
retry budget and a baseline without data each end the Mitigation in a visible phase with a condition
and a Warning Event naming the cause and the fix; a live change is reverted where it can be; a
deletion always completes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from stanch.core.effects import EvaluatePolicy, Finish
from stanch.core.machine.observations import DeleteRequested, PassesFailed, PolicyDecided, SignalSeries, Tick
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, Transition
from stanch.core.mitigation_context import resolve_guard_or_problem
from stanch.core.models import (
    LOCK_ANNOTATION,
    BaselineNoDataAction,
    Condition,
    Direction,
    GuardProblem,
    GuardSpec,
    MitigationPolicySpec,
    PolicyDecision,
    PolicyDecisionKind,
    SignalKind,
    SignalTemplate,
)

from .test_machine import GUARD, T0, P, bake, new_cluster, state, step

POLICY_EDIT = MitigationPolicySpec.model_validate({"guardDefaults": {"interval": "10m"}})


def guard_problem(st: MachineState) -> GuardProblem:
    """What the wiring resolves for ``st`` under a policy whose guardDefaults now say interval 10m."""
    _, problem = resolve_guard_or_problem(st.spec, POLICY_EDIT.guard_defaults, "MitigationPolicy/shop/p")
    assert problem is not None
    return problem


def condition(st: MachineState, type_: str) -> Condition:
    (found,) = [c for c in st.status.conditions if c.type == type_]
    return found


def warnings(log: list[Transition]) -> list[str]:
    return [e.reason for t in log for e in t.events if e.type == "Warning"]


def finished(log: list[Transition]) -> bool:
    return any(isinstance(e, Finish) for t in log for e in t.effects)


# --- an invalid merged guard ---------------------------------------------------------------------


def test_an_invalid_merged_guard_fails_before_anything_is_touched() -> None:
    cluster = new_cluster()
    st = state({"scale": {"replicas": 6}}, guard={"interval": "10m"})
    guard, problem = resolve_guard_or_problem(st.spec)
    assert problem is not None
    st, log = step(replace(st, guard=guard, guard_problem=problem), Tick(), cluster, T0)
    assert st.status.phase == P.FAILED
    assert cluster.mutations == []
    valid = condition(st, "Valid")
    assert (valid.status.value, valid.reason) == ("False", "InvalidGuard")
    assert "set spec.guard.bakeTime to 10m or more, or spec.guard.interval to 5m or less" in valid.message
    assert "InvalidGuard" in warnings(log)
    assert st.status.audit[-1].event == "InvalidGuard"
    assert "nothing was changed" in st.status.message
    assert finished(log)


def test_a_policy_edit_that_invalidates_the_guard_mid_bake_reverts_the_unwatched_change() -> None:
    # Only a Mitigation decided before the guard was frozen (no status.guard) still resolves its
    # guard on every pass and can meet this (test_frozen_guard: a frozen one is not affected).
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING
    st = replace(st, guard_problem=guard_problem(st))
    st, log = step(st, Tick(), cluster, T0 + timedelta(seconds=30))
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert LOCK_ANNOTATION not in cluster.objects[("Deployment", "web")]["metadata"]["annotations"]
    assert [a.event for a in st.status.audit][-3:] == ["InvalidGuard", "RevertIntent", "Reverted"]
    assert "MitigationPolicy/shop/p spec.guardDefaults.interval" in condition(st, "Valid").message
    assert warnings(log)[0] == "InvalidGuard"


def test_an_invalid_guard_with_a_change_that_cannot_be_undone_needs_attention() -> None:
    cluster = new_cluster()
    st, _ = step(state({"restart": {}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING
    st, log = step(replace(st, guard_problem=guard_problem(st)), Tick(), cluster, T0 + timedelta(seconds=30))
    assert st.status.phase == P.NEEDS_ATTENTION
    assert "will not undo it" in st.status.message
    assert cluster.mutations[-1] == "Unlock:Deployment"
    assert condition(st, "Valid").reason == "InvalidGuard"
    assert finished(log)


def test_a_pending_mitigation_waits_for_the_deciding_policys_defaults() -> None:
    # Before the policy decides, its guardDefaults are unknown: they may well make the guard valid.
    st = state({"scale": {"replicas": 6}}, guard={"interval": "10m"})
    _, problem = resolve_guard_or_problem(st.spec)
    pending = reduce(replace(st, guard_problem=problem), Tick(), now=T0)
    assert pending.state.status.phase is None
    assert pending.effects == (EvaluatePolicy(),)
    # The harness's policy allows and the guard is still invalid: it ends at the decision, visibly,
    # with the decision on record, no guard frozen, and nothing taken (not even the lock).
    cluster = new_cluster()
    st, log = step(replace(st, guard_problem=problem), Tick(), cluster, T0, sampler=None)
    assert [a.event for a in st.status.audit] == ["InvalidGuard"]
    assert st.status.phase == P.FAILED
    assert st.status.policy is not None
    assert st.status.policy.decision.value == "Allow"
    assert st.status.guard is None
    assert cluster.mutations == []
    assert condition(st, "Valid").reason == "InvalidGuard"
    assert "InvalidGuard" in warnings(log)
    assert finished(log)


def test_an_invalid_guard_ends_at_the_decision_instead_of_waiting_for_an_approval() -> None:
    st = state({"scale": {"replicas": 6}}, guard={"interval": "10m"})
    _, problem = resolve_guard_or_problem(st.spec)
    need = PolicyDecision(decision=PolicyDecisionKind.REQUIRE_APPROVAL, policy="MitigationPolicy/shop/p")
    t = reduce(replace(st, guard_problem=problem), PolicyDecided(need), now=T0)
    assert t.state.status.phase == P.FAILED
    assert t.events[0].reason == "InvalidGuard"
    # A denial is a denial whatever the guard: Rejected, as the policy said.
    deny = PolicyDecision(decision=PolicyDecisionKind.DENY, reasons=["no"])
    t = reduce(replace(st, guard_problem=problem), PolicyDecided(deny), now=T0)
    assert t.state.status.phase == P.REJECTED
    assert t.state.status.guard is None


def test_deletion_completes_whatever_the_guard() -> None:
    cluster = new_cluster()
    st = state({"scale": {"replicas": 6}}, guard={"interval": "10m"})
    _, problem = resolve_guard_or_problem(st.spec)
    st2, log = step(replace(st, guard_problem=problem, deleting=True), DeleteRequested(), cluster, T0)
    assert st2.status.phase == P.FAILED
    assert finished(log)
    # Mid-bake: the deletion's own revert runs, then the finalizer can go.
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st = replace(st, guard_problem=guard_problem(st), deleting=True)
    st, log = step(st, DeleteRequested(), cluster, T0 + timedelta(seconds=5))
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert finished(log)


# --- a spent retry budget ------------------------------------------------------------------------

FAILED_PASSES = PassesFailed(error="KeyError: 'replicas'", attempts=5)


def test_a_spent_retry_budget_before_any_change_fails_stalled() -> None:
    st, log = step(state({"scale": {"replicas": 6}}), FAILED_PASSES, new_cluster(), T0)
    assert st.status.phase == P.FAILED
    stalled = condition(st, "Stalled")
    assert (stalled.status.value, stalled.reason) == ("True", "RetryBudgetExhausted")
    assert "gave up after 5 failed passes in a row: KeyError: 'replicas'" in stalled.message
    assert "delete and recreate the Mitigation" in stalled.message
    assert warnings(log) == ["RetryBudgetExhausted"]
    assert finished(log)


def test_a_spent_retry_budget_mid_bake_reverts_then_a_failing_revert_needs_attention() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st, _ = step(st, FAILED_PASSES, cluster, T0 + timedelta(seconds=5))
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert [a.event for a in st.status.audit][-3:] == ["RetryBudgetExhausted", "RevertIntent", "Reverted"]
    # When it is the revert's own passes that keep failing, nobody retries it blindly.
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st = replace(st, status=st.status.model_copy(update={"phase": P.REVERTING}))
    st, log = step(st, FAILED_PASSES, cluster, T0 + timedelta(seconds=5))
    assert st.status.phase == P.NEEDS_ATTENTION
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6
    assert finished(log)


def test_a_spent_retry_budget_of_a_finished_mitigation_changes_nothing() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    st2, log = step(st, FAILED_PASSES, cluster, T0 + timedelta(hours=1))
    assert st2.status == st.status
    assert log[0].events == ()


# --- a baseline without data ---------------------------------------------------------------------


def no_baseline(purpose: str) -> tuple[SignalSeries, ...]:
    if purpose == "baseline":
        return (SignalSeries("error_ratio", None, "no data: empty result"),)
    return (SignalSeries("error_ratio", (0.01,) * 6),)


def test_a_baseline_without_data_refuses_before_any_write_and_releases_the_lock() -> None:
    cluster = new_cluster()
    st, log = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0, sampler=no_baseline)
    assert st.status.phase == P.FAILED
    assert cluster.mutations == ["Lock:Deployment", "Unlock:Deployment"]
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert st.status.audit[-1].event == "BaselineNoData"
    assert "error_ratio=no data (n=0)" in st.status.message
    assert "no data: empty result" in st.status.message
    assert "set guard.baselineNoData: Proceed" in st.status.message
    taken = condition(st, "BaselineTaken")
    assert (taken.status.value, taken.reason) == ("False", "NoData")
    assert "BaselineNoData" in warnings(log)
    assert st.status.intent is None
    assert st.status.baseline is not None  # what was (not) seen stays in status


def test_acting_blind_is_an_explicit_choice() -> None:
    cluster = new_cluster()
    st = state({"scale": {"replicas": 6}})
    st = replace(st, guard=GUARD.model_copy(update={"baseline_no_data": BaselineNoDataAction.PROCEED}))
    st, _ = step(st, Tick(), cluster, T0, sampler=no_baseline)
    assert st.status.phase == P.BAKING
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6
    collected = next(a for a in st.status.audit if a.event == "BaselineCollected")
    assert "acting without a baseline for error_ratio (baselineNoData: Proceed)" in collected.reason


def test_a_signal_with_an_slo_threshold_can_be_judged_without_a_baseline() -> None:
    cluster = new_cluster()
    template = SignalTemplate(
        name="error_ratio",
        query="q",
        kind=SignalKind.ERROR_RATIO,
        direction=Direction.LOWER_IS_BETTER,
        threshold=0.05,
    )
    st = replace(state({"scale": {"replicas": 6}}), signals={"error_ratio": template})
    st, _ = step(st, Tick(), cluster, T0, sampler=no_baseline)
    assert st.status.phase == P.BAKING


def test_the_default_guard_refuses_blind_and_a_policy_may_opt_in() -> None:
    spec = state({"scale": {"replicas": 6}}).spec
    refuse, _ = resolve_guard_or_problem(spec)
    proceed, _ = resolve_guard_or_problem(spec, GuardSpec(baseline_no_data=BaselineNoDataAction.PROCEED))
    assert (refuse.baseline_no_data, proceed.baseline_no_data) == (
        BaselineNoDataAction.REFUSE,
        BaselineNoDataAction.PROCEED,
    )
