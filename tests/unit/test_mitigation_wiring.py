"""The pure parts of the mitigation wiring: status patches, the Incident link, default deny, guard
resolution, what a pass feeds the reducer — and one real-API-server fact the machine must respect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stanch.adapters.effects import failed_tests, resolve_pointer
from stanch.adapters.status import status_ops
from stanch.core.effects import Patch, PersistIntent, Precondition, QuerySignals
from stanch.core.identity import OfferedApproval
from stanch.core.machine.observations import (
    Approved,
    BaselineCollected,
    ChangeApplied,
    DeleteRequested,
    IncidentResolved,
    IntentPersisted,
    PolicyDecided,
    SignalSeries,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, MitigationIdentity, Transition
from stanch.core.mitigation_context import (
    default_decision,
    incident_entry,
    link_into_incident,
    resolve_guard,
    timeline_entry,
)
from stanch.core.models import (
    ActionKind,
    GuardSpec,
    MitigationPhase,
    MitigationSpec,
    MitigationStatus,
    PolicyDecision,
    PolicyDecisionKind,
    UserIdentity,
)
from stanch.wiring.handlers.mitigation import initial_observations

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def spec(**extra: Any) -> MitigationSpec:
    return MitigationSpec.model_validate({"target": {"name": "web"}, "scale": {"replicas": 2}, **extra})


def state(status: dict[str, Any] | None = None, **kw: Any) -> MachineState:
    s = kw.pop("spec", None) or spec()
    return MachineState(
        identity=MitigationIdentity(name="m", namespace="shop", uid="uid-m"),
        spec=s,
        status=MitigationStatus.model_validate(status or {}),
        guard=resolve_guard(s),
        **kw,
    )


def test_status_ops_replace_fields_wholesale_remove_gone_ones_and_leave_kopf_alone() -> None:
    old = {"phase": "Applying", "intent": {"step": "Apply", "expectedGeneration": 3}, "kopf": {"x": 1}}
    new = {"phase": "Baking", "applied": {"generation": 4}, "kopf": {"y": 2}}
    ops = status_ops(old, new)
    assert {"op": "add", "path": "/status/phase", "value": "Baking"} in ops
    assert {"op": "add", "path": "/status/applied", "value": {"generation": 4}} in ops
    # The intent is removed as a whole: no stale expectedGeneration survives as a merge would leave it.
    assert {"op": "remove", "path": "/status/intent"} in ops
    assert not [op for op in ops if "kopf" in op["path"]]
    assert status_ops(None, {"phase": "Pending"}) == [
        {"op": "add", "path": "/status", "value": {"phase": "Pending"}}
    ]
    assert status_ops(new, new) == []
    only = status_ops({"timeline": [], "scope": {}}, {"timeline": [1]}, only=("timeline", "mitigations"))
    assert only == [{"op": "add", "path": "/status/timeline", "value": [1]}]


def test_value_tests_follow_json_patch_test_semantics() -> None:
    obj = {"metadata": {"uid": "u", "generation": 2, "annotations": {"a/b": "x"}}, "data": {"k": "v"}}
    assert resolve_pointer(obj, "/metadata/annotations/a~1b") == "x"
    assert failed_tests(obj, Precondition(uid="u", generation=2, tests=(("/data/k", "v"),))) == ""
    assert "expected 3" in failed_tests(obj, Precondition(generation=3))
    assert failed_tests(obj, Precondition(tests=(("/data/missing", None),))) == ""
    assert "expected absent" in failed_tests(obj, Precondition(tests=(("/data/k", None),)))
    assert "absent" in failed_tests(obj, Precondition(tests=(("/data/missing", "v"),)))


def test_without_a_policy_only_dry_run_is_allowed() -> None:
    denied = default_decision(spec(), NOW)
    assert denied.decision == PolicyDecisionKind.DENY
    assert denied.reasons
    allowed = default_decision(spec(dryRun=True), NOW)
    assert allowed.decision == PolicyDecisionKind.ALLOW
    assert allowed.rule == "dryRun"


def test_guard_resolution_mitigation_over_policy_over_builtin_with_default_signals() -> None:
    s = spec(guard={"interval": "2s", "bakeTime": "20s"})
    policy = GuardSpec(baseline_window="1m", interval="10s", no_data="Revert")
    guard = resolve_guard(s, policy)
    assert (guard.interval, guard.bake_time, guard.baseline_window) == ("2s", "20s", "1m")
    assert guard.no_data is not None
    assert guard.no_data.value == "Revert"
    assert guard.failure_limit == 2
    assert [sig.name for sig in guard.signals] == ["error_ratio", "latency_p99"]


def test_incident_link_upserts_by_name_and_keeps_the_timeline_ordered_and_capped() -> None:
    st = MitigationStatus.model_validate({"phase": "Baking"})
    entry = incident_entry("m", spec(), st, NOW)
    assert entry.action == ActionKind.SCALE
    existing = {
        "mitigations": [
            {"name": "other", "action": "Rollback"},
            {"name": "m", "action": "Scale", "phase": "Pending"},
        ],
        "timeline": [
            {"time": f"2026-11-28T11:{i:02d}:00Z", "kind": "Note", "summary": str(i)} for i in range(100)
        ],
        "scope": {"trend": "Stable"},
    }
    line = timeline_entry(
        NOW, "shop", "m", "uid", "Mitigation m (Scale): Applying → Baking", {"phase": "Baking"}
    )
    mitigations, timeline = link_into_incident(existing, entry, line)
    assert [m["name"] for m in mitigations] == ["other", "m"]
    assert mitigations[1]["phase"] == "Baking"
    assert len(timeline) == 100
    assert timeline[-1]["summary"].startswith("Mitigation m")
    assert timeline[0]["summary"] == "1"


def test_a_pass_feeds_approvals_deletion_and_resolution_only_when_they_matter() -> None:
    # Nothing on the Mitigation approves it: not an old spec.approval, not the old annotation.
    awaiting = state(
        {"phase": "AwaitingApproval"},
        spec=spec(approval={"approved": True, "approvedBy": "alice", "reason": "go"}),
    )
    assert not any(isinstance(o, Approved) for o in initial_observations(awaiting, False))
    offered = Approved(OfferedApproval("a1", UserIdentity(username="alice")), None)
    assert offered in initial_observations(awaiting, False, [offered])
    baking = state({"phase": "Baking"}, deleting=True)
    assert any(isinstance(o, DeleteRequested) for o in initial_observations(baking, False))
    assert not any(isinstance(o, Approved) for o in initial_observations(baking, False, [offered]))
    succeeded = state({"phase": "Succeeded"})
    assert any(isinstance(o, IncidentResolved) for o in initial_observations(succeeded, True))
    assert not any(isinstance(o, IncidentResolved) for o in initial_observations(succeeded, False))
    assert isinstance(initial_observations(succeeded, False)[0], Tick)


def _deployment(generation: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "uid-web",
            "generation": generation,
            "resourceVersion": str(100 + generation),
            "annotations": annotations or {},
        },
        "spec": {"replicas": 4, "template": {"metadata": {}, "spec": {"containers": [{"name": "app"}]}}},
    }


def _step(st: MachineState, obs: Any) -> Transition:
    return reduce(st, obs, now=NOW)


def test_apply_precondition_expects_the_generation_after_our_own_lock() -> None:
    st = state(
        {"phase": "Pending"},
        spec=spec(guard={"baselineWindow": "10s", "interval": "2s", "bakeTime": "10s"}),
    )
    allow = PolicyDecision(decision=PolicyDecisionKind.ALLOW, policy="MitigationPolicy/shop/p", rule="r")
    st = _step(st, PolicyDecided(allow)).state
    assert st.status.phase == MitigationPhase.BASELINE
    t = _step(st, TargetObserved(World(target=_deployment(1))))
    assert any(isinstance(e, PersistIntent) for e in t.effects)
    t = _step(t.state, IntentPersisted(step="Lock", attempt=1))
    lock = next(e for e in t.effects if isinstance(e, Patch))
    assert lock.step == "Lock"
    # What the API server answers to the lock patch: generation 1 → 2.
    t = _step(t.state, ChangeApplied(step="Lock", resource_version="102", generation=2))
    query = next(e for e in t.effects if isinstance(e, QuerySignals))
    t = _step(
        t.state,
        BaselineCollected(
            start=query.start,
            end=query.end,
            series=(
                SignalSeries("error_ratio", (0.0, 0.0, 0.0)),
                SignalSeries("latency_p99", (0.1, 0.1, 0.1)),
            ),
        ),
    )
    t = _step(t.state, IntentPersisted(step="Apply", attempt=1))
    apply = next(e for e in t.effects if isinstance(e, Patch) and e.step == "Apply")
    assert apply.precondition.generation == 2


def test_a_check_too_small_to_judge_is_not_a_pass() -> None:
    from stanch.core.guard import SignalSpec, run_check
    from stanch.core.models import CheckVerdict, SignalKind

    spec_ = SignalSpec(name="error_ratio", kind=SignalKind.ERROR_RATIO)
    result = run_check(
        [spec_],
        {"error_ratio": [0.0, 0.0, 0.0, 0.0]},
        {"error_ratio": [0.52, 0.55, 0.5]},
        at=NOW,
        previous=[],
        tolerance=0.1,
    )
    assert result.observation.check != CheckVerdict.PASS


def test_small_noisy_samples_do_not_fail_two_checks_in_a_row() -> None:
    """The separation fallback for tiny samples must not turn noise into a revert."""
    import random

    from stanch.core.guard import SignalSpec, run_check
    from stanch.core.models import SignalKind

    spec_ = SignalSpec(name="error_ratio", kind=SignalKind.ERROR_RATIO)
    rng = random.Random(7)
    reverts = 0
    for _ in range(300):
        level = rng.uniform(0.001, 0.2)

        def draw(n: int, level: float = level) -> list[float]:
            return [max(0.0, rng.gauss(level, level * 0.25)) for _ in range(n)]

        baseline = draw(4)
        history: list[Any] = []
        for _check in range(8):
            result = run_check(
                [spec_], {"error_ratio": baseline}, {"error_ratio": draw(3)}, at=NOW, previous=history,
                tolerance=0.1,
            )  # fmt: skip
            history.append(result.observation)
            if result.observation.consecutive_failures >= 2:
                reverts += 1
                break
    assert reverts == 0


def test_spec_errors_name_each_field_and_the_fix() -> None:
    import pytest
    from pydantic import ValidationError

    from stanch.wiring.handlers.mitigation import spec_errors

    with pytest.raises(ValidationError) as info:
        MitigationSpec.model_validate({"target": {"name": "web"}, "scale": {}})
    text = spec_errors(info.value)
    assert text.startswith("spec.scale: scale needs exactly one of replicas or factor"), text
    assert "recreate" in text
