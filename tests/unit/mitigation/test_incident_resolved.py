"""A temporary Mitigation is undone when its Incident resolves, in every phase that may hold its
change — not only once Succeeded — always through the revert's preconditions; a phase with no change
yet simply ends; NeedsAttention is left to its human."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from stanch.core.effects import Finish, Patch
from stanch.core.machine.observations import (
    ChangeApplied,
    IncidentResolved,
    IntentPersisted,
    PolicyDecided,
    SignalSeries,
    TargetObserved,
    Tick,
)
from stanch.core.machine.phases.ending import awaits_resolution
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState
from stanch.core.models import LOCK_ANNOTATION, MitigationPhase, PolicyDecision, PolicyDecisionKind
from stanch.wiring.handlers.mitigation import initial_observations

from .test_machine import (
    ALLOW,
    T0,
    Cluster,
    bake,
    evacuation_cluster,
    new_cluster,
    run_until_apply_intent,
    state,
    step,
)

P = MitigationPhase
TEMPORARY = {"temporary": True, "incidentRef": {"name": "checkout-5xx"}}


def no_data(purpose: str) -> tuple[SignalSeries, ...]:
    """Prometheus answers the baseline, then nothing: the guard holds (noData: Hold)."""
    if purpose == "baseline":
        return (SignalSeries("error_ratio", tuple(0.01 + i * 1e-5 for i in range(20))),)
    return (SignalSeries("error_ratio", None, "the query returned no data in the window"),)


def holding(cluster: Cluster, **spec: Any) -> MachineState:
    st, _ = step(state({"scale": {"replicas": 6}}, **TEMPORARY, **spec), Tick(), cluster, T0, no_data)
    now = T0
    for _ in range(14):  # past the bake time: NoData never succeeds, it holds
        now += timedelta(seconds=30)
        st, _ = step(st, Tick(), cluster, now, no_data)
    assert st.status.phase == P.BAKING
    assert st.status.verdict is not None
    assert st.status.verdict.result.value == "NoData"
    return st


def dep(cluster: Cluster) -> dict[str, Any]:
    result: dict[str, Any] = cluster.objects[("Deployment", "web")]
    return result


def test_a_mitigation_holding_on_no_data_is_undone_and_unlocked_when_its_incident_resolves() -> None:
    cluster = new_cluster()
    st = holding(cluster)
    assert dep(cluster)["metadata"]["annotations"][LOCK_ANNOTATION] == "shop/m1"
    st, log = step(st, IncidentResolved(), cluster, T0 + timedelta(minutes=8))
    assert st.status.phase == P.REVERTED
    assert dep(cluster)["spec"]["replicas"] == 3
    assert LOCK_ANNOTATION not in dep(cluster)["metadata"]["annotations"]
    assert cluster.mutations == [
        "Lock:Deployment",
        "Apply:Deployment",
        "Revert:Deployment",
        "Unlock:Deployment",
    ]
    assert "incident resolved" in next(a for t in log for a in t.audit if a.event == "Reverting").reason


def test_the_undo_on_resolve_never_overwrites_someone_elses_change() -> None:
    cluster = new_cluster()
    st = holding(cluster)
    dep(cluster)["spec"]["replicas"] = 9  # a human scaled it meanwhile
    dep(cluster)["metadata"]["generation"] += 1
    st, _ = step(st, IncidentResolved(), cluster, T0 + timedelta(minutes=8))
    assert st.status.phase == P.NEEDS_ATTENTION
    assert dep(cluster)["spec"]["replicas"] == 9
    assert "Revert:Deployment" not in cluster.mutations


def test_resolved_while_applying_before_the_write_landed_ends_without_touching_the_target() -> None:
    cluster = new_cluster()
    st = run_until_apply_intent(cluster, {"scale": {"replicas": 6}, **TEMPORARY})
    st, _ = step(st, IncidentResolved(), cluster, T0 + timedelta(seconds=5))
    assert st.status.phase == P.REVERTED, st.status.message
    assert dep(cluster)["spec"]["replicas"] == 3
    assert cluster.mutations == ["Lock:Deployment", "Unlock:Deployment"]


def test_resolved_while_applying_after_the_write_landed_reverts_it() -> None:
    cluster = new_cluster()
    st = run_until_apply_intent(cluster, {"scale": {"replicas": 6}, **TEMPORARY})
    apply = reduce(st, IntentPersisted("Apply", 1), now=T0)
    for effect in apply.effects:
        cluster.run(effect)  # landed; the operator died before ChangeApplied
    st, _ = step(apply.state, IncidentResolved(), cluster, T0 + timedelta(seconds=5))
    assert st.status.phase == P.REVERTED, st.status.message
    assert dep(cluster)["spec"]["replicas"] == 3
    assert LOCK_ANNOTATION not in dep(cluster)["metadata"]["annotations"]


def test_resolved_while_evictions_are_refused_uncordons_our_node() -> None:
    cluster = evacuation_cluster()
    cluster.budget_refuses = {"web-a", "web-b"}
    st, _ = step(state({"evacuate": {"node": "n1"}}, **TEMPORARY), Tick(), cluster, T0)
    assert st.status.phase == P.APPLYING
    st, _ = step(st, IncidentResolved(), cluster, T0 + timedelta(seconds=20))
    assert st.status.phase == P.REVERTED, st.status.message
    assert "unschedulable" not in cluster.objects[("Node", "n1")]["spec"]
    assert LOCK_ANNOTATION not in dep(cluster)["metadata"]["annotations"]


def test_phases_with_no_change_yet_end_and_release_what_they_hold() -> None:
    pending = state({"scale": {"replicas": 6}}, **TEMPORARY)
    t = reduce(pending, IncidentResolved(), now=T0)
    assert t.state.status.phase == P.FAILED
    assert t.audit[0].event == "IncidentResolved"
    assert [e for e in t.effects if isinstance(e, Patch)] == []
    assert Finish("Failed") in t.effects

    need = PolicyDecision(decision=PolicyDecisionKind.REQUIRE_APPROVAL)
    awaiting = reduce(pending, PolicyDecided(need), now=T0).state
    assert reduce(awaiting, IncidentResolved(), now=T0).state.status.phase == P.FAILED

    # Baseline with the lock already taken (the baseline query not answered yet): the lock goes.
    cluster = new_cluster()
    st = reduce(pending, PolicyDecided(ALLOW), now=T0).state
    st = reduce(st, TargetObserved(cluster.world()), now=T0).state
    lock = reduce(st, IntentPersisted("Lock", 1), now=T0)
    for effect in lock.effects:
        cluster.run(effect)
    st = reduce(lock.state, ChangeApplied("Lock"), now=T0).state
    assert st.status.phase == P.BASELINE
    st, _ = step(st, IncidentResolved(), cluster, T0)
    assert st.status.phase == P.FAILED
    assert st.status.audit[-1].event == "IncidentResolved"
    assert LOCK_ANNOTATION not in dep(cluster)["metadata"]["annotations"]
    assert cluster.mutations == ["Lock:Deployment", "Unlock:Deployment"]


def test_needs_attention_and_finished_phases_do_not_react() -> None:
    cluster = new_cluster()
    st = holding(cluster)
    dep(cluster)["spec"]["replicas"] = 9
    dep(cluster)["metadata"]["generation"] += 1
    st, _ = step(st, Tick(), cluster, T0 + timedelta(minutes=8))
    assert st.status.phase == P.NEEDS_ATTENTION
    t = reduce(st, IncidentResolved(), now=T0 + timedelta(minutes=9))
    assert (t.state, t.effects, t.audit) == (st, (), ())


def test_not_temporary_or_kept_mitigations_stay_and_say_so_once() -> None:
    cluster = new_cluster()
    st = holding(cluster, keepOnResolve=True)
    st, log = step(st, IncidentResolved(), cluster, T0 + timedelta(minutes=8))
    assert st.status.phase == P.BAKING
    assert [a.event for t in log for a in t.audit] == ["KeptOnResolve"]
    again = reduce(st, IncidentResolved(), now=T0 + timedelta(minutes=9))
    assert (again.audit, again.effects) == ((), ())
    permanent = state({"scale": {"replicas": 6}}, incidentRef={"name": "checkout-5xx"})
    assert reduce(permanent, IncidentResolved(), now=T0).state == permanent


def test_a_pass_feeds_resolution_to_every_phase_that_may_react_and_waits_only_for_a_live_change() -> None:
    for phase in ("Pending", "AwaitingApproval", "Baseline", "Applying", "Baking", "Reverting", "Succeeded"):
        st = state({"scale": {"replicas": 6}}, **TEMPORARY)
        st = replace(st, status=st.status.model_copy(update={"phase": phase}))
        assert IncidentResolved() in initial_observations(st, True), phase
    for phase in ("Reverted", "Failed", "Rejected", "NeedsAttention"):
        st = state({"scale": {"replicas": 6}}, **TEMPORARY)
        st = replace(st, status=st.status.model_copy(update={"phase": phase}))
        assert IncidentResolved() not in initial_observations(st, True), phase
    # The daemon keeps looking after Succeeded only while a temporary change is in place.
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}, **TEMPORARY), Tick(), cluster, T0)
    assert not awaits_resolution(st)  # Baking: the daemon runs anyway
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    assert awaits_resolution(st)
    dry, _ = step(state({"scale": {"replicas": 6}}, dryRun=True, **TEMPORARY), Tick(), new_cluster(), T0)
    assert dry.status.phase == P.SUCCEEDED
    assert not awaits_resolution(dry)
    nothing, _ = step(state({"scale": {"replicas": 3}}, **TEMPORARY), Tick(), new_cluster(), T0)
    assert nothing.status.audit[-1].event == "NothingToDo"
    assert not awaits_resolution(nothing)
