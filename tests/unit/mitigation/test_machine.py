"""The reducer: every phase, driven against a tiny in-memory cluster that applies our JSON patches
the way the API server does; crash-resume from each persisted step never doubles a change."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.core.effects import (
    Create,
    Delete,
    EvaluatePolicy,
    Evict,
    Finish,
    ObserveTarget,
    Patch,
    PersistIntent,
    QuerySignals,
    WakeAt,
)
from stanch.core.identity import OfferedApproval
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
    SignalSeries,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, MitigationIdentity, Transition
from stanch.core.models import (
    BUILTIN_GUARD,
    LOCK_ANNOTATION,
    MitigationPhase,
    MitigationSpec,
    MitigationStatus,
    PolicyDecision,
    PolicyDecisionKind,
    ResolvedGuard,
    SignalRef,
    UserIdentity,
)
from stanch.core.plans import CORDONED_BY
from stanch.core.plans.jsonpatch import PatchError, apply_ops

from .fixtures import deployment

P = MitigationPhase
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALLOW = PolicyDecision(
    decision=PolicyDecisionKind.ALLOW, policy="MitigationPolicy/shop/p", rule="actions[Scale]"
)
GUARD = ResolvedGuard.of(BUILTIN_GUARD.model_copy(update={"signals": [SignalRef(name="error_ratio")]}))


def state(action: dict[str, Any], **kw: Any) -> MachineState:
    spec = MitigationSpec.model_validate({"target": {"name": "web"}, **action, **kw})
    return MachineState(
        identity=MitigationIdentity("m1", "shop", "mit-uid"),
        spec=spec,
        status=MitigationStatus(),
        guard=GUARD,
    )


@dataclass
class Cluster:
    """Objects by (kind, name); applies effects like the API server and counts mutations."""

    objects: dict[tuple[str, str], dict[str, Any]]
    mutations: list[str] = field(default_factory=list)
    error_ratio: float = 0.01
    budget_refuses: set[str] = field(default_factory=set)
    """Pods whose eviction a PodDisruptionBudget refuses (429)."""

    def world(self, lock_holder_active: bool = False) -> World:
        return World(
            target=self.objects.get(("Deployment", "web")),
            hpa=self.objects.get(("HorizontalPodAutoscaler", "web")),
            canary=self.objects.get(("Deployment", "web-canary-m1")),
            node=self.objects.get(("Node", "n1")),
            pods_on_node=[o for (kind, _), o in self.objects.items() if kind == "Pod"],
            lock_holder_active=lock_holder_active,
        )

    def run(self, effect: Any) -> Observation | None:
        if isinstance(effect, Patch):
            key = (effect.key.kind, effect.key.name)
            try:
                new = apply_ops(self.objects[key], effect.wire_ops())
            except PatchError as err:
                return None if effect.best_effort else ApplyFailed(effect.step, str(err), conflict=True)
            old = self.objects[key]
            # As the API server does: a Deployment's generation moves with its spec *and* its
            # annotations (they are copied to its ReplicaSets); other kinds' only with the spec.
            annotations_changed = key[0] == "Deployment" and new["metadata"].get("annotations") != old[
                "metadata"
            ].get("annotations")
            if new.get("spec") != old.get("spec") or annotations_changed:
                new["metadata"]["generation"] = new["metadata"].get("generation", 0) + 1
            self.objects[key] = new
            self.mutations.append(f"{effect.step}:{effect.key.kind}")
            return None
        if isinstance(effect, Create):
            self.objects[(effect.key.kind, effect.key.name)] = copy.deepcopy(dict(effect.manifest))
            self.mutations.append(f"{effect.step}:create")
            return None
        if isinstance(effect, Delete):
            self.objects.pop((effect.key.kind, effect.key.name), None)
            self.mutations.append(f"{effect.step}:delete")
            return None
        if isinstance(effect, Evict):
            if effect.key.name in self.budget_refuses:
                return ApplyFailed(
                    effect.step, f"{effect.key.name}: budget allows 0 disruptions", retriable=True
                )
            self.objects.pop((effect.key.kind, effect.key.name), None)
            self.mutations.append(f"{effect.step}:evict {effect.key.name}")
            return None
        raise AssertionError(effect)


def series(value: float | None, n: int) -> tuple[SignalSeries, ...]:
    return (
        SignalSeries("error_ratio", None if value is None else tuple(value + i * 1e-5 for i in range(n))),
    )


Sampler = Callable[[str], tuple[SignalSeries, ...]]
"""The signals Prometheus answers with, by query purpose ("baseline" or "check")."""


def step(
    st: MachineState, obs: Observation, cluster: Cluster, now: datetime, sampler: Sampler | None = None
) -> tuple[MachineState, list[Transition]]:
    """Run one observation and everything it leads to, like the wiring does (persist, then effects)."""
    queue: list[Observation] = [obs]
    log: list[Transition] = []
    while queue:
        t = reduce(st, queue.pop(0), now=now)
        st = t.state
        log.append(t)
        mutating: list[Any] = []
        for effect in t.effects:
            if isinstance(effect, PersistIntent):
                queue.append(IntentPersisted(effect.intent.step, effect.intent.attempt))
            elif isinstance(effect, ObserveTarget):
                queue.append(TargetObserved(cluster.world()))
            elif isinstance(effect, QuerySignals) and sampler is not None:
                got = sampler(effect.purpose)
                if effect.purpose == "baseline":
                    queue.append(BaselineCollected(effect.start, effect.end, got))
                else:
                    queue.append(GuardSample(now, got))
            elif isinstance(effect, QuerySignals):
                value = 0.01 if effect.purpose == "baseline" else cluster.error_ratio
                n = 20 if effect.purpose == "baseline" else 6
                if effect.purpose == "baseline":
                    queue.append(BaselineCollected(effect.start, effect.end, series(value, n)))
                else:
                    queue.append(GuardSample(now, series(value, n)))
            elif isinstance(effect, EvaluatePolicy):
                queue.append(PolicyDecided(ALLOW))
            elif isinstance(effect, (Patch, Create, Delete, Evict)):
                mutating.append(effect)
        failure = None
        for effect in mutating:
            failure = cluster.run(effect) or failure
        steps = {e.step for e in mutating if not (isinstance(e, Patch) and e.best_effort)}
        if failure is not None:
            queue.append(failure)
        elif steps:
            (s,) = steps
            target = cluster.objects.get(("Deployment", "web"), {})
            queue.append(ChangeApplied(s, None, target.get("metadata", {}).get("generation")))
    return st, log


def bake(st: MachineState, cluster: Cluster, start: datetime, checks: int = 12) -> MachineState:
    now = start
    for _ in range(checks):
        if st.status.phase != P.BAKING:
            break
        now += timedelta(seconds=30)
        st, _ = step(st, Tick(), cluster, now)
    return st


def new_cluster(**kw: Any) -> Cluster:
    return Cluster({("Deployment", "web"): deployment(replicas=3, **kw)})


# --- happy path and transitions -------------------------------------------------------------------


def test_scale_happy_path_applies_once_bakes_and_succeeds_releasing_the_lock() -> None:
    cluster = new_cluster()
    st, log = step(state({"scale": {"factor": 1.5}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING
    assert cluster.mutations == ["Lock:Deployment", "Apply:Deployment"]
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 5
    # Write-ahead: the Apply intent (with the snapshot) was in a persisted transition before the patch.
    events = [a.event for t in log for a in t.audit]
    assert events[:5] == ["PolicyAllowed", "Planned", "Locked", "BaselineCollected", "Applied"]
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    assert st.status.verdict is not None
    assert st.status.verdict.result.value == "Healthy"
    assert LOCK_ANNOTATION not in cluster.objects[("Deployment", "web")]["metadata"]["annotations"]
    assert [o.check.value for o in st.status.observations][-1] == "Pass"


def test_regression_reverts_and_restores_snapshot() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 1}}), Tick(), cluster, T0)
    cluster.error_ratio = 0.3
    st = bake(st, cluster, T0)
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert cluster.mutations == [
        "Lock:Deployment",
        "Apply:Deployment",
        "Revert:Deployment",
        "Unlock:Deployment",
    ]
    assert st.status.verdict is not None
    assert st.status.verdict.result.value == "Worse"
    assert len(st.status.observations) == 2  # Worse within two intervals


def test_policy_deny_rejects_and_approval_waits() -> None:
    st = state({"scale": {"replicas": 5}})
    deny = PolicyDecision(decision=PolicyDecisionKind.DENY, reasons=["scale denied: 5 exceeds max 4"])
    t = reduce(st, PolicyDecided(deny), now=T0)
    assert t.state.status.phase == P.REJECTED
    assert "exceeds max 4" in t.audit[0].reason
    assert t.events[0].type == "Warning"
    need = PolicyDecision(decision=PolicyDecisionKind.REQUIRE_APPROVAL)
    t = reduce(st, PolicyDecided(need), now=T0)
    assert t.state.status.phase == P.AWAITING_APPROVAL
    assert reduce(t.state, Tick(), now=T0).effects == ()
    # With no requester on record, nobody can be shown to be someone else: refused, visibly.
    t1 = reduce(t.state, Approved(OfferedApproval("a1", UserIdentity(username="alice"), "go")), now=T0)
    assert t1.state.status.phase == P.AWAITING_APPROVAL
    assert t1.audit[0].event == "ApprovalRefused"
    assert "names no requester" in t1.audit[0].reason
    assert t1.events[0].type == "Warning"
    # The requester is part of what the policy decided on (and immutable): on record from the start.
    requested = reduce(
        replace(st, spec=st.spec.model_copy(update={"requester": UserIdentity(username="bob")})),
        PolicyDecided(need),
        now=T0,
    ).state
    t2 = reduce(requested, Approved(OfferedApproval("a1", UserIdentity(username="alice"), "go")), now=T0)
    assert t2.state.status.phase == P.BASELINE
    assert t2.audit[0].actor == "alice"
    assert "MitigationApproval a1" in t2.audit[0].reason
    assert t2.state.status.approval is not None
    assert t2.state.status.approval.approver.username == "alice"


def test_dry_run_records_plan_and_never_mutates() -> None:
    cluster = new_cluster()
    st, log = step(state({"scale": {"replicas": 6}}, dryRun=True), Tick(), cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    assert cluster.mutations == []
    assert st.status.plan is not None
    assert "3 → 6" in st.status.plan.summary
    assert not any(isinstance(e, (Patch, Create, Delete, PersistIntent)) for t in log for e in t.effects)


def test_lock_held_by_another_active_mitigation_blocks() -> None:
    cluster = new_cluster()
    cluster.objects[("Deployment", "web")]["metadata"]["annotations"][LOCK_ANNOTATION] = "other"
    st = reduce(state({"scale": {"replicas": 6}}), PolicyDecided(ALLOW), now=T0).state
    t = reduce(st, TargetObserved(cluster.world(lock_holder_active=True)), now=T0)
    assert t.state.status.phase == P.REJECTED
    assert "'other'" in t.state.status.message
    # A stale lock (holder finished) is taken over, conditionally on it still naming the stale holder.
    st2, _ = step(st, TargetObserved(cluster.world(lock_holder_active=False)), cluster, T0)
    assert st2.status.phase == P.BAKING


def test_plan_error_fails_with_the_reason() -> None:
    cluster = new_cluster(paused=True)
    st, _ = step(state({"rollback": {}}), Tick(), cluster, T0)
    assert st.status.phase == P.FAILED
    assert "no rollout history" in st.status.message or "paused" in st.status.message


def test_drift_during_bake_goes_to_needs_attention_and_never_reverts() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    dep = cluster.objects[("Deployment", "web")]
    dep["spec"]["replicas"] = 10
    dep["metadata"]["generation"] += 1
    cluster.error_ratio = 0.5
    before = list(cluster.mutations)
    st = bake(st, cluster, T0)
    assert st.status.phase == P.NEEDS_ATTENTION
    assert st.status.drift is not None
    assert "10" in st.status.drift.diff
    # Only the lock is released (conditional on still naming us); the foreign change is untouched.
    assert [m for m in cluster.mutations if m not in before] == ["Unlock:Deployment"]
    assert dep["spec"]["replicas"] == 10


def test_revert_refused_when_someone_changed_the_target_after_the_worse_verdict() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    # Worse verdict reached; before the revert lands, someone edits the target.
    t = reduce(st, Tick(), now=T0 + timedelta(seconds=30))
    st = t.state
    cluster.error_ratio = 0.4
    st, _ = step(st, GuardSample(T0, series(0.4, 6)), cluster, T0 + timedelta(seconds=30))
    dep = cluster.objects[("Deployment", "web")]
    dep["spec"]["replicas"] = 2
    dep["metadata"]["generation"] += 1
    st, _ = step(st, GuardSample(T0, series(0.4, 6)), cluster, T0 + timedelta(seconds=60))
    assert st.status.phase == P.NEEDS_ATTENTION
    assert dep["spec"]["replicas"] == 2


def test_delete_mid_bake_reverts_first_unless_told_not_to() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st2, log = step(st, DeleteRequested(), cluster, T0)
    assert st2.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert any(isinstance(e, Finish) for t in log for e in t.effects)
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}, revertOnDelete=False), Tick(), cluster, T0)
    st2, _ = step(st, DeleteRequested(), cluster, T0)
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6
    assert st2.status.audit[-1].event == "DeletedKept"


def test_temporary_mitigation_undone_on_incident_resolved_unless_kept() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}, temporary=True), Tick(), cluster, T0)
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    st, _ = step(st, IncidentResolved(), cluster, T0 + timedelta(hours=1))
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}, temporary=True, keepOnResolve=True), Tick(), cluster, T0)
    st, _ = step(st, IncidentResolved(), cluster, T0)
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6


def test_restart_worse_fails_saying_it_cannot_be_undone() -> None:
    cluster = new_cluster()
    st, _ = step(state({"restart": {}}), Tick(), cluster, T0)
    cluster.error_ratio = 0.4
    st = bake(st, cluster, T0)
    assert st.status.phase == P.FAILED
    assert "cannot be undone" in st.status.message


def test_canary_promoted_when_healthy() -> None:
    cluster = new_cluster()
    st, _ = step(state({"canary": {"image": "web:fix"}}), Tick(), cluster, T0)
    assert ("Deployment", "web-canary-m1") in cluster.objects
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    assert ("Deployment", "web-canary-m1") not in cluster.objects
    assert (
        cluster.objects[("Deployment", "web")]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "web:fix"
    )


def test_canary_aborted_when_worse() -> None:
    cluster = new_cluster()
    st, _ = step(state({"canary": {"image": "web:bad"}}), Tick(), cluster, T0)
    cluster.error_ratio = 0.4
    st = bake(st, cluster, T0)
    assert st.status.phase == P.REVERTED
    assert ("Deployment", "web-canary-m1") not in cluster.objects
    assert (
        cluster.objects[("Deployment", "web")]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "web:v2"
    )


def test_audit_is_bounded() -> None:
    st = state({"scale": {"replicas": 6}})
    for i in range(80):
        st = replace(st, status=st.status.model_copy(update={"phase": P.AWAITING_APPROVAL}))
        st = reduce(st, Approved(OfferedApproval(f"a{i}", UserIdentity(username=f"u{i}"))), now=T0).state
    assert len(st.status.audit) == 50


# --- crash safety ---------------------------------------------------------------------------------


def run_until_apply_intent(cluster: Cluster, action: dict[str, Any]) -> MachineState:
    """Drive until the Apply intent is persisted but before the patch is sent."""
    st = state(action)
    observations: list[Observation] = [PolicyDecided(ALLOW), TargetObserved(cluster.world())]
    for obs in observations:
        st = reduce(st, obs, now=T0).state
    lock = reduce(st, IntentPersisted("Lock", 1), now=T0)
    (patch,) = lock.effects
    cluster.run(patch)
    st = reduce(lock.state, ChangeApplied("Lock"), now=T0).state
    t = reduce(st, BaselineCollected(T0 - timedelta(minutes=10), T0, series(0.01, 20)), now=T0)
    assert isinstance(t.effects[0], PersistIntent)
    assert t.state.status.intent is not None
    assert t.state.status.intent.step == "Apply"
    return t.state


def test_crash_after_intent_before_patch_resumes_and_applies_once() -> None:
    cluster = new_cluster()
    st = run_until_apply_intent(cluster, {"scale": {"factor": 1.67}})
    persisted = MitigationStatus.model_validate(st.status.to_dict())  # what a fresh process reads back
    fresh = replace(st, status=persisted)
    st2, _ = step(fresh, Tick(), cluster, T0 + timedelta(seconds=5))
    assert st2.status.phase == P.BAKING
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6  # ceil(3 * 1.67)
    assert cluster.mutations.count("Apply:Deployment") == 1


def test_crash_after_patch_before_confirmation_never_doubles() -> None:
    """Scale by +2 (3 → 5) lands, the process dies before recording it; on resume the target already
    is in the end state, so it is recorded as applied and not applied again (never 7)."""
    cluster = new_cluster()
    st = run_until_apply_intent(cluster, {"scale": {"replicas": 5}})
    t = reduce(st, IntentPersisted("Apply", 1), now=T0)
    (patch,) = t.effects
    cluster.run(patch)  # lands; the crash loses the ChangeApplied
    fresh = replace(st, status=MitigationStatus.model_validate(st.status.to_dict()))
    first = reduce(fresh, Tick(), now=T0)
    assert [type(e) for e in first.effects] == [ObserveTarget]
    st2, _ = step(fresh, Tick(), cluster, T0)
    assert st2.status.phase == P.BAKING
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 5
    assert cluster.mutations.count("Apply:Deployment") == 1
    # Re-sending the original patch would be refused by its precondition anyway.
    assert isinstance(cluster.run(patch), ApplyFailed)


def test_resume_effects_are_identical_for_every_persisted_step() -> None:
    """From each persisted status, re-running reduce gives the same effects (deterministic)."""
    cluster = new_cluster()
    st = state({"scale": {"factor": 2}})
    observations: list[Observation] = [
        Tick(),
        PolicyDecided(ALLOW),
        TargetObserved(cluster.world()),
        IntentPersisted("Lock", 1),
    ]
    for obs in observations:
        again = MitigationStatus.model_validate(st.status.to_dict())
        a = reduce(st, obs, now=T0)
        b = reduce(replace(st, status=again), obs, now=T0)
        assert a.effects == b.effects
        assert a.state.status == b.state.status
        st = a.state


def test_crash_during_revert_resumes_once() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    cluster.error_ratio = 0.4
    now = T0
    # Run checks without executing the revert: stop at the Revert intent.
    while st.status.phase == P.BAKING:
        now += timedelta(seconds=30)
        st = reduce(st, GuardSample(now, series(0.4, 6)), now=now).state
    assert st.status.phase == P.REVERTING
    t = reduce(st, TargetObserved(cluster.world()), now=now)
    st = t.state
    # The revert's writes go out with the transition that holds its intent (persisted first).
    assert st.status.intent is not None
    assert st.status.intent.step == "Revert"
    (patch,) = t.effects
    assert isinstance(patch, Patch)
    cluster.run(patch)  # lands; crash
    st2, _ = step(
        replace(st, status=MitigationStatus.model_validate(st.status.to_dict())), Tick(), cluster, now
    )
    assert st2.status.phase == P.REVERTED
    assert cluster.mutations.count("Revert:Deployment") == 1


def test_no_data_during_bake_never_succeeds() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    now = T0
    for _ in range(15):
        now += timedelta(seconds=30)
        st = reduce(st, GuardSample(now, series(None, 0)), now=now).state
    assert st.status.phase == P.BAKING  # held (noData=Hold), never Succeeded
    assert st.status.verdict is not None
    assert st.status.verdict.result.value == "NoData"
    assert any(isinstance(e, WakeAt) for e in reduce(st, Tick(), now=now).effects)


def test_undo_after_someone_edited_the_released_target_needs_attention_and_clobbers_nothing() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}, temporary=True), Tick(), cluster, T0)
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    # After the lock is released, a human annotates the Deployment: its generation moves on.
    dep = cluster.objects[("Deployment", "web")]
    dep["metadata"].setdefault("annotations", {})["team"] = "payments"
    dep["metadata"]["generation"] += 1
    st, _ = step(st, IncidentResolved(), cluster, T0 + timedelta(hours=1))
    for i in range(10):  # the operator keeps ticking; the answer must settle, not loop
        if st.status.phase != P.REVERTING:
            break
        st, _ = step(st, Tick(), cluster, T0 + timedelta(hours=1, seconds=30 * (i + 1)))
    assert st.status.phase == P.NEEDS_ATTENTION
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 6
    assert cluster.objects[("Deployment", "web")]["metadata"]["annotations"]["team"] == "payments"


def test_target_changed_between_snapshot_and_lock_is_snapshotted_again() -> None:
    cluster = new_cluster()
    st = state({"scale": {"factor": "2"}})
    t = reduce(st, PolicyDecided(ALLOW), now=T0)
    t = reduce(t.state, TargetObserved(cluster.world()), now=T0)
    assert t.state.status.snapshot is not None
    assert t.state.status.snapshot["target"]["spec"]["replicas"] == 3
    # Before the lock lands, an HPA-less human scale to 4 moves the generation.
    dep = cluster.objects[("Deployment", "web")]
    dep["spec"]["replicas"] = 4
    dep["metadata"]["generation"] += 1
    t = reduce(t.state, TargetObserved(cluster.world()), now=T0)
    assert t.state.status.snapshot is not None
    assert t.state.status.snapshot["target"]["spec"]["replicas"] == 4


def test_status_names_the_action_for_the_printer_column() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    assert st.status.action is not None
    assert st.status.action.value == "Scale"


# --- specs that cannot be executed ----------------------------------------------------------------


def test_unexecutable_spec_ends_failed_once_with_the_field_named_and_the_target_untouched() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rollback": {"toRevision": 99}}, "spec.rollback.toRevision 99"),
        (
            {"configToggle": {"configMap": "flags", "key": "beta", "value": "0"}},
            "spec.configToggle.configMap",
        ),
        ({"evacuate": {"node": "kwok-node-9"}}, "spec.evacuate.node 'kwok-node-9'"),
    ]
    for action, field_name in cases:
        cluster = new_cluster()
        before = copy.deepcopy(cluster.objects)
        st, log = step(state(action), Tick(), cluster, T0)
        assert st.status.phase == P.FAILED, (action, st.status.message)
        assert field_name in (st.status.message or ""), st.status.message
        assert cluster.mutations == []
        assert cluster.objects == before
        (valid,) = [c for c in st.status.conditions if c.type == "Valid"]
        assert (valid.status.value, valid.reason) == ("False", "PlanFailed")
        assert field_name in valid.message
        last = log[-1]
        assert [(e.type, e.reason) for e in last.events] == [("Warning", "PlanFailed")]
        assert any(isinstance(e, Finish) for e in last.effects)
        # Terminal: the next wake-up changes nothing and asks for nothing (no retry, no hot loop).
        again = reduce(st, Tick(), now=T0 + timedelta(seconds=30))
        assert again.state == st
        assert again.effects == ()
        assert again.events == ()


def test_missing_target_fails_without_touching_anything() -> None:
    cluster = Cluster({})
    st, _ = step(state({"scale": {"replicas": 3}}), Tick(), cluster, T0)
    assert st.status.phase == P.FAILED
    assert "spec.target: Deployment/web not found" in (st.status.message or "")
    assert cluster.mutations == []


def test_a_planned_mitigation_is_valid() -> None:
    st, _ = step(state({"scale": {"replicas": 4}}), Tick(), new_cluster(), T0)
    (valid,) = [c for c in st.status.conditions if c.type == "Valid"]
    assert valid.status.value == "True"


def test_a_spec_that_does_not_parse_fails_once() -> None:
    from stanch.core.machine.reducer import invalid_spec

    status, event = invalid_spec(MitigationStatus(phase=P.PENDING), "spec.scale: needs replicas", T0)
    assert status.phase == P.FAILED
    assert event is not None
    assert event.type == "Warning"
    assert "spec.scale" in event.message
    assert [a.event for a in status.audit] == ["InvalidSpec"]
    assert status.conditions[0].reason == "InvalidSpec"
    again, none = invalid_spec(status, "spec.scale: needs replicas", T0 + timedelta(minutes=1))
    assert none is None
    assert again == status


# --- a bounded, meaningful audit trail ------------------------------------------------------------


def test_a_long_hold_is_audited_and_announced_once_per_change_of_state() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 4}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING
    before = len(st.status.audit)
    now, transitions = T0, []
    # An hour of checks at the 30 s interval with Prometheus gone (noData: Hold): the bake ends, the
    # machine holds — and says so once, not 120 times.
    for _ in range(120):
        now += timedelta(seconds=30)
        t = reduce(st, GuardSample(now, series(None, 0)), now=now)
        st = t.state
        transitions.append(t)
    assert st.status.phase == P.BAKING
    events = [(e.type, e.reason) for t in transitions for e in t.events]
    assert events == [("Normal", "Check"), ("Normal", "Hold")], events
    assert [a.event for a in st.status.audit[before:]] == ["Check", "Hold"]
    assert st.status.verdict is not None
    assert st.status.verdict.result.value == "NoData"
    assert len(st.status.observations) == 60  # capped, the latest kept
    assert st.status.observations[-1].time == now
    assert "holding" in (st.status.message or "")
    assert all(any(isinstance(e, WakeAt) for e in t.effects) for t in transitions)
    # Data comes back and the check fails: a different state, announced once.
    t = reduce(st, GuardSample(now + timedelta(seconds=30), series(0.4, 6)), now=now + timedelta(seconds=30))
    assert [e.reason for e in t.events] == ["Hold"]
    assert t.state.status.verdict is not None
    assert t.state.status.verdict.result.value == "Inconclusive"
    # …and back to no data: announced again.
    t = reduce(
        t.state, GuardSample(now + timedelta(seconds=60), series(None, 0)), now=now + timedelta(seconds=60)
    )
    assert [e.reason for e in t.events] == ["Hold"]


def test_checks_with_the_same_result_are_recorded_but_not_announced_each_time() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 4}}), Tick(), cluster, T0)  # bake 5m: all within it
    now, reasons = T0, []
    for value in (0.01, 0.01, 0.01, None, None, 0.01):
        now += timedelta(seconds=30)
        t = reduce(st, GuardSample(now, series(value, 6 if value is not None else 0)), now=now)
        st = t.state
        reasons += [e.message.split(":")[0] for e in t.events]
    assert reasons == ["check Pass", "check NoData", "check Pass"]
    assert [o.check.value for o in st.status.observations] == ["Pass"] * 3 + ["NoData"] * 2 + ["Pass"]


# --- evacuate: cordon, then evictions that respect PodDisruptionBudgets ---------------------------


def evacuation_cluster() -> Cluster:
    cluster = new_cluster()
    node = {"metadata": {"name": "n1", "uid": "n-uid", "annotations": {"kwok": "fake"}}, "spec": {}}
    cluster.objects[("Node", "n1")] = node
    for name in ("web-a", "web-b"):
        cluster.objects[("Pod", name)] = {"metadata": {"name": name, "uid": f"uid-{name}"}}
    return cluster


def test_evacuate_cordons_marks_evicts_and_bakes() -> None:
    cluster = evacuation_cluster()
    st, log = step(state({"evacuate": {"node": "n1"}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING, st.status.message
    assert cluster.mutations == ["Lock:Deployment", "Apply:Node", "Evict:evict web-a", "Evict:evict web-b"]
    node = cluster.objects[("Node", "n1")]
    assert node["spec"]["unschedulable"] is True
    assert node["metadata"]["annotations"][CORDONED_BY] == "shop/m1"
    events = [a.event for t in log for a in t.audit]
    assert events[-2:] == ["Evicting", "Applied"]
    # Write-ahead: the Evict intent was persisted before any eviction was sent.
    evict_intent = next(
        e for t in log for e in t.effects if isinstance(e, PersistIntent) and e.intent.step == "Evict"
    )
    assert evict_intent.intent.attempt == 1
    (evicted,) = [c for c in st.status.conditions if c.type == "Evicted"]
    assert evicted.status.value == "True"
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED


def test_an_eviction_refused_by_a_budget_is_retried_reported_once_and_never_forced() -> None:
    cluster = evacuation_cluster()
    cluster.budget_refuses = {"web-b"}
    st, log = step(state({"evacuate": {"node": "n1"}}), Tick(), cluster, T0)
    assert st.status.phase == P.APPLYING
    assert ("Pod", "web-a") not in cluster.objects  # the others still go
    assert ("Pod", "web-b") in cluster.objects  # never deleted around the budget
    (refused,) = [e for t in log for e in t.events if e.reason == "EvictionRefused"]
    assert refused.type == "Warning"
    assert "web-b: budget allows 0 disruptions" in refused.message
    (cond,) = [c for c in st.status.conditions if c.type == "Evicted"]
    assert (cond.status.value, cond.reason) == ("False", "EvictionRefused")
    wake = next(e for e in log[-1].effects if isinstance(e, WakeAt))
    assert wake.at == T0 + timedelta(seconds=5)
    # A minute of retries every 5 s: the same refusal, recorded but not announced again.
    now, audit_before = T0, len(st.status.audit)
    for _ in range(12):
        now += timedelta(seconds=5)
        st, log = step(st, Tick(), cluster, now)
        assert not [e for t in log for e in t.events]
    assert len(st.status.audit) == audit_before
    assert st.status.intent is not None
    assert st.status.intent.attempt == 13
    assert st.status.intent.started_at == T0  # the budget runs from the first attempt
    # The budget allows it now: the pod goes, the bake starts.
    cluster.budget_refuses = set()
    st, _ = step(st, Tick(), cluster, now + timedelta(seconds=5))
    assert st.status.phase == P.BAKING
    assert ("Pod", "web-b") not in cluster.objects
    assert cluster.mutations.count("Evict:evict web-a") == 1 + 13  # idempotent re-sends of a gone pod


def test_evictions_refused_for_the_whole_bake_time_revert_the_cordon() -> None:
    cluster = evacuation_cluster()
    cluster.budget_refuses = {"web-a", "web-b"}
    st, _ = step(state({"evacuate": {"node": "n1"}}), Tick(), cluster, T0)
    now = T0
    while st.status.phase == P.APPLYING and now < T0 + timedelta(minutes=10):
        now += timedelta(seconds=5)
        st, _ = step(st, Tick(), cluster, now)
    assert st.status.phase == P.REVERTED, st.status.message
    assert now == T0 + timedelta(minutes=5)  # the bake time (built-in 5m)
    node = cluster.objects[("Node", "n1")]
    assert "unschedulable" not in node["spec"]
    assert CORDONED_BY not in node["metadata"]["annotations"]
    assert {("Pod", "web-a"), ("Pod", "web-b")} <= set(cluster.objects)
    audit = [a.event for a in st.status.audit]
    assert audit.count("EvictionRefused") == 1
    assert "Reverting" in audit
    reverting = next(a for a in st.status.audit if a.event == "Reverting")
    assert "never deletes around a PodDisruptionBudget" in reverting.reason


def test_evacuating_an_already_cordoned_node_never_uncordons_it() -> None:
    cluster = evacuation_cluster()
    cluster.objects[("Node", "n1")]["spec"]["unschedulable"] = True
    st, _ = step(state({"evacuate": {"node": "n1"}}), Tick(), cluster, T0)
    assert st.status.phase == P.BAKING
    assert "Apply:Node" not in cluster.mutations
    cluster.error_ratio = 0.4
    st = bake(st, cluster, T0)
    assert st.status.phase == P.REVERTED
    assert cluster.objects[("Node", "n1")]["spec"]["unschedulable"] is True
    assert "Revert:Node" not in cluster.mutations


def test_crash_after_the_evict_intent_resumes_without_doubling_the_cordon() -> None:
    cluster = evacuation_cluster()
    st = state({"evacuate": {"node": "n1"}})
    # Run until the Evict intent is persisted, then "crash": drop the in-memory queue.
    now = T0
    queue: list[Observation] = [Tick()]
    while queue:
        t = reduce(st, queue.pop(0), now=now)
        st = t.state
        if st.status.intent is not None and st.status.intent.step == "Evict":
            break
        for effect in t.effects:
            if isinstance(effect, PersistIntent):
                queue.append(IntentPersisted(effect.intent.step, effect.intent.attempt))
            elif isinstance(effect, ObserveTarget):
                queue.append(TargetObserved(cluster.world()))
            elif isinstance(effect, QuerySignals):
                queue.append(BaselineCollected(effect.start, effect.end, series(0.01, 20)))
            elif isinstance(effect, EvaluatePolicy):
                queue.append(PolicyDecided(ALLOW))
            elif isinstance(effect, (Patch, Delete, Evict)):
                cluster.run(effect)
                if not (isinstance(effect, Patch) and effect.best_effort):
                    queue.append(ChangeApplied(effect.step))
    assert st.status.phase == P.APPLYING
    assert cluster.mutations == ["Lock:Deployment", "Apply:Node"]
    st, _ = step(st, Tick(), cluster, now + timedelta(seconds=1))  # a new process resumes
    assert st.status.phase == P.BAKING
    assert cluster.mutations == ["Lock:Deployment", "Apply:Node", "Evict:evict web-a", "Evict:evict web-b"]


def test_deletion_while_reverting_carries_on_with_the_revert_instead_of_restarting_it() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 1}}), Tick(), cluster, T0)
    st = replace(st, deleting=True)
    t = reduce(st, DeleteRequested(), now=T0 + timedelta(seconds=1))
    assert t.state.status.phase == P.REVERTING
    reverting = t.state
    assert [a.event for a in t.audit] == ["Reverting"]
    # Every later pass of the finalizer feeds DeleteRequested again: nothing new, no second
    # "Reverting" entry or revert attempt; the revert goes on from its own observations.
    again = reduce(reverting, DeleteRequested(), now=T0 + timedelta(seconds=2))
    assert again.audit == ()
    assert again.effects == ()
    st, log = step(reverting, Tick(), cluster, T0 + timedelta(seconds=2))
    assert st.status.phase == P.REVERTED
    assert [a.event for t in log for a in t.audit].count("Reverting") == 0
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
