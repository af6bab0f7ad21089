"""The guard is frozen when the policy decides (issue 13, deliverable 3): ``status.guard`` holds the
guard resolved under the deciding policy's ``guardDefaults``, and every later pass runs under it, so
a policy edited mid-bake does not change how a change already made is watched. A Mitigation decided
before ``status.guard`` existed resolves its guard on every pass, as it always did.

Pure side: the reducer freezes ``state.guard`` at the decision. Wiring side: a pass resolves that
guard under the policy that decided, before it feeds the decision, and reads it back from status."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, cast

import kopf

from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.core.effects import EvaluatePolicy
from stanch.core.identity import OfferedApproval
from stanch.core.machine.observations import Approved, PolicyDecided, Tick
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, Transition
from stanch.core.mitigation_context import IncidentFacts, read_status, running_guard
from stanch.core.models import (
    DEFAULT_GUARD,
    InconclusiveAction,
    MitigationSpec,
    NoDataAction,
    PolicyDecision,
    PolicyDecisionKind,
    ResolvedGuard,
    UserIdentity,
)
from stanch.core.settings import Settings
from stanch.wiring.handlers.mitigation import Pass, Runtime, _interval, machine_state
from stanch.wiring.metrics import Metrics
from stanch.wiring.mitigation_policy import policy_context

from .test_machine import GUARD, T0, P, state

REF = "MitigationPolicy/shop/p"
ALLOW = PolicyDecision(decision=PolicyDecisionKind.ALLOW, policy=REF, rule="actions[Scale]")
DECIDED_DEFAULTS = {"interval": "5s", "bakeTime": "1m", "noData": "Revert", "tolerance": 0.2}
EDITED_DEFAULTS = {"interval": "30s", "bakeTime": "20m", "noData": "Hold", "tolerance": 0.5}


def policy(guard_defaults: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"actions": [{"action": "Scale", "tier": "Auto"}], "guardDefaults": guard_defaults},
    }


class FakeKube:
    """Answers ``get`` with the one policy, as it is now; nothing else is called by these tests."""

    def __init__(self, guard_defaults: dict[str, Any]) -> None:
        self.policy = policy(guard_defaults)

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.policy if (kind, name, namespace) == ("MitigationPolicy", "p", "shop") else None


def runtime(kube: FakeKube) -> Runtime:
    async def decide(obj: Any, now: datetime) -> PolicyDecision:
        return ALLOW

    return Runtime(
        kube=cast(KubeClient, kube),
        prometheus=PrometheusClient("http://prometheus.invalid"),
        settings=Settings(prometheus_url="http://prometheus.invalid", all_namespaces=True),
        metrics=Metrics(),
        decide=decide,
    )


def mitigation(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": "m1", "namespace": "shop", "uid": "mit-uid", "generation": 1},
        "spec": {"target": {"name": "web"}, "scale": {"replicas": 6}, **spec},
        "status": status or {},
    }


def decide_in_a_pass(obj: dict[str, Any], kube: FakeKube) -> MachineState:
    """What a pass does with a Pending Mitigation: run ``EvaluatePolicy`` (the decision, then the
    deciding policy read as it is now) and reduce the decision it yields."""

    async def run() -> MachineState:
        rt = runtime(kube)
        one = Pass(rt, obj, IncidentFacts(), await policy_context(rt.kube, None))
        (decided,) = await one._run_effects(Transition(state=one.state, effects=(EvaluatePolicy(),)))
        assert isinstance(decided, PolicyDecided)
        return reduce(one.state, decided, now=T0).state

    return asyncio.run(run())


def state_of(obj: dict[str, Any], kube: FakeKube) -> MachineState:
    """The machine state a later pass (or a restarted operator) builds from the stored object."""

    async def run() -> MachineState:
        rt = runtime(kube)
        ref = ((obj.get("status") or {}).get("policy") or {}).get("policy")
        return machine_state(obj, rt, await policy_context(rt.kube, ref))

    return asyncio.run(run())


# --- the reducer freezes the guard it decides under -----------------------------------------------


def test_every_decision_that_runs_something_freezes_the_guard() -> None:
    st = state({"scale": {"replicas": 6}}, requester={"username": "alice"})
    allowed = reduce(st, PolicyDecided(ALLOW), now=T0).state
    assert allowed.status.phase == P.BASELINE
    assert allowed.status.guard == GUARD
    required = ALLOW.model_copy(update={"decision": PolicyDecisionKind.REQUIRE_APPROVAL})
    need = reduce(st, PolicyDecided(required), now=T0)
    assert need.state.status.phase == P.AWAITING_APPROVAL
    assert need.state.status.guard == GUARD
    # Approved much later: the guard stays the one decided on.
    bob = OfferedApproval("bob", UserIdentity(username="bob"))
    approved = reduce(need.state, Approved(bob), now=T0).state
    assert approved.status.phase == P.BASELINE
    assert approved.status.guard == GUARD
    dry = reduce(state({"scale": {"replicas": 6}}, dryRun=True), PolicyDecided(ALLOW), now=T0).state
    assert dry.status.guard == GUARD


def test_a_denied_mitigation_runs_nothing_and_freezes_no_guard() -> None:
    deny = PolicyDecision(decision=PolicyDecisionKind.DENY, reasons=["no"])
    t = reduce(state({"scale": {"replicas": 6}}), PolicyDecided(deny), now=T0)
    assert t.state.status.phase == P.REJECTED
    assert t.state.status.guard is None


# --- the wiring: resolved under the deciding policy, read back from status ------------------------


def test_the_decision_freezes_the_guard_resolved_under_the_deciding_policy() -> None:
    decided = decide_in_a_pass(mitigation(guard={"failureLimit": 3}), FakeKube(DECIDED_DEFAULTS))
    guard = decided.status.guard
    assert guard is not None
    assert (guard.interval, guard.bake_time, guard.no_data, guard.tolerance) == (
        "5s",
        "1m",
        NoDataAction.REVERT,
        0.2,
    )
    assert guard.failure_limit == 3  # the Mitigation's own field wins over the policy's
    assert guard.baseline_window == DEFAULT_GUARD.baseline_window  # and the built-in fills the rest
    # As the API server stores it and gives it back.
    assert decided.status.to_dict()["guard"]["noData"] == "Revert"
    assert ResolvedGuard.model_validate(decided.status.to_dict()["guard"]) == guard


def test_a_policy_edited_mid_bake_does_not_change_the_running_guard() -> None:
    kube = FakeKube(DECIDED_DEFAULTS)
    decided = decide_in_a_pass(mitigation(), kube)
    stored = mitigation({**decided.status.to_dict(), "phase": "Baking"})
    frozen = state_of(stored, kube).guard
    # The platform team loosens the policy while the change bakes: a longer interval and bake, Hold
    # on no data instead of Revert, a tolerance of 50 %.
    kube.policy = policy(EDITED_DEFAULTS)
    later = state_of(stored, kube)
    assert later.guard == frozen == decided.status.guard
    assert (later.guard.interval, later.guard.no_data, later.guard.tolerance) == (
        "5s",
        NoDataAction.REVERT,
        0.2,
    )
    assert later.guard_problem is None
    # Nor does an edit that would make the merge invalid (interval 10m over the 1m bake) stop it.
    kube.policy = policy({"interval": "10m"})
    assert state_of(stored, kube).guard_problem is None
    # The daemon's fallback poll follows the frozen interval too, not the policy's or the spec's.
    assert _interval(kopf.Body(stored)) == 5.0  # type: ignore[arg-type]


def test_an_older_mitigation_without_a_frozen_guard_resolves_as_before() -> None:
    # Decided by a Stanch that did not freeze the guard: status.policy but no status.guard.
    old = mitigation(
        {"phase": "Baking", "policy": {"decision": "Allow", "policy": REF, "rule": "actions[Scale]"}}
    )
    under_policy = state_of(old, FakeKube(EDITED_DEFAULTS))
    assert (under_policy.guard.interval, under_policy.guard.no_data) == ("30s", NoDataAction.HOLD)
    assert under_policy.guard_problem is None
    assert under_policy.status.guard is None
    # An invalid merge still ends it visibly (test_stopped), naming the policy to fix.
    broken = state_of(old, FakeKube({"interval": "10m"}))
    assert broken.guard_problem is not None
    assert f"{REF} spec.guardDefaults.interval" in broken.guard_problem.message
    # It then stops the way every invalid guard does; that path is tested in test_stopped.
    assert reduce(broken, Tick(), now=T0).events[0].reason == "InvalidGuard"


def test_a_frozen_guard_a_later_stanch_refuses_ends_visibly_instead_of_failing_every_read() -> None:
    valid = GUARD.to_dict()
    raw = {"phase": "AwaitingApproval", "guard": {**valid, "interval": "0s"}}
    status, problem = read_status(raw)
    assert status.phase == P.AWAITING_APPROVAL
    assert status.guard is None
    assert problem is not None
    assert "status.guard, the guard frozen when the policy decided" in problem.message
    assert "interval must be between 1s and 1h" in problem.message
    assert "delete the Mitigation and create it again" in problem.message
    st = state_of(mitigation(raw), FakeKube(DECIDED_DEFAULTS))
    assert st.guard_problem == problem
    t = reduce(st, Tick(), now=T0)
    assert t.state.status.phase == P.FAILED
    assert t.events[0].reason == "InvalidGuard"
    # A valid one reads back as it was written.
    status, problem = read_status({"phase": "Baking", "guard": valid})
    assert (status.guard, problem) == (GUARD, None)


def test_running_guard_prefers_the_frozen_one_over_any_policy() -> None:
    spec = MitigationSpec.model_validate({"target": {"name": "web"}, "scale": {"replicas": 6}})
    frozen = GUARD.model_copy(update={"inconclusive": InconclusiveAction.REVERT})
    status, _ = read_status({"phase": "Baking", "guard": frozen.to_dict()})
    assert running_guard(spec, status, None) == (frozen, None)
    no_guard, _ = read_status({"phase": "Pending"})
    assert running_guard(spec, no_guard, None) == (DEFAULT_GUARD, None)
