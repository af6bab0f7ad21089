"""One namespace (design invariant 11): a Mitigation is judged and acts only in its own namespace.

The confused deputy of issue 12: a user who may create Mitigations in ``dev`` named
``kube-system/coredns`` in ``spec.target.namespace``; the policies were listed from ``dev`` but matched
by ``kube-system``, while one-at-a-time and rate limits looked at ``kube-system``. Now the decision is
a denial naming the field and the fix, and every rule is evaluated in the Mitigation's namespace.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stanch.core.models import MitigationSpec, PolicyDecisionKind, TargetRef
from stanch.core.policy import MitigationRequest, TargetFacts, evaluate, matching_policies
from stanch.core.policy.evaluation import SCOPE_RULE
from stanch.core.scope import LockHolder, holds_lock, lock_holder, target_scope_problem, write_scope_problem

from .policy_builders import NOW, past, policy, request, rule

NAMESPACES = st.sampled_from(["dev", "prod", "kube-system", "payments", "a", "a-b"])
NAMES = st.sampled_from(["m1", "m2", "coredns", "web", "a"])
EVERYTHING = [rule(a) for a in ("Rollback", "Scale", "Restart", "Pause")]


def cross(namespace: str = "dev", target_namespace: str = "kube-system", **spec: object) -> MitigationRequest:
    action = {} if any(k in spec for k in ("pause", "rollback", "restart")) else {"scale": {"replicas": 0}}
    body = {"target": {"name": "coredns", "namespace": target_namespace}, **action, **spec}
    return MitigationRequest(name="m1", namespace=namespace, spec=MitigationSpec.model_validate(body))


def test_a_mitigation_naming_another_namespace_is_denied_with_the_field_and_the_fix() -> None:
    # A cluster policy that allows everything everywhere (like the shipped cluster-defaults) does not
    # lend dev's requester any right in kube-system.
    permissive = policy("everything", cluster=True, actions=EVERYTHING)
    d = evaluate(cross(), [permissive], [], TargetFacts(replicas=2), NOW)
    assert d.decision is PolicyDecisionKind.DENY
    assert (d.rule, d.policy) == (SCOPE_RULE, None)
    (why,) = d.reasons
    assert "spec.target.namespace 'kube-system' is not this Mitigation's namespace 'dev'" in why
    assert "create the Mitigation in namespace 'kube-system'" in why


def test_a_dry_run_naming_another_namespace_is_denied_too() -> None:
    """Dry runs are always allowed, but only at home: one would read the other namespace's workload."""
    d = evaluate(
        cross(dryRun=True), [policy("all", cluster=True, actions=EVERYTHING)], [], TargetFacts(), NOW
    )
    assert (d.decision, d.rule) == (PolicyDecisionKind.DENY, SCOPE_RULE)


@given(own=NAMESPACES)
def test_the_own_namespace_written_out_is_the_same_as_leaving_it_unset(own: str) -> None:
    allowing = [policy("p", own, actions=EVERYTHING)]
    facts = TargetFacts(replicas=2)
    spelled = evaluate(cross(own, own), allowing, [], facts, NOW)
    unset = evaluate(
        request({"scale": {"replicas": 0}}, namespace=own, target="coredns"), allowing, [], facts, NOW
    )
    assert spelled.decision is unset.decision is PolicyDecisionKind.ALLOW
    assert spelled.reasons == unset.reasons


@given(own=NAMESPACES, other=NAMESPACES)
def test_only_the_own_namespace_policies_and_the_cluster_policies_speak(own: str, other: str) -> None:
    policies = [
        policy("mine", own, actions=EVERYTHING),
        policy("theirs", other, actions=EVERYTHING),
        policy("cluster", cluster=True, actions=EVERYTHING),
    ]
    req = request({"scale": {"replicas": 1}}, namespace=own)
    found = {
        (p.namespace, p.name)
        for p in matching_policies(policies, req.target_namespace, "checkout", TargetFacts())
    }
    assert (own, "mine") in found
    assert (None, "cluster") in found
    assert ((other, "theirs") in found) == (other == own)


def test_another_namespace_forbidding_everything_is_not_bypassed_by_naming_it() -> None:
    """The issue's probe: a Pause in a namespace whose own policy forbids everything."""
    locked_down = policy("nothing", "prod", actions=[rule("Pause", "Forbidden")])
    home = policy("home", "dev", actions=EVERYTHING)
    d = evaluate(cross("dev", "prod", pause={}), [home, locked_down], [], TargetFacts(replicas=2), NOW)
    assert (d.decision, d.rule) == (PolicyDecisionKind.DENY, SCOPE_RULE)


@given(own=NAMESPACES, other=NAMESPACES)
def test_one_at_a_time_is_per_namespace_and_name(own: str, other: str) -> None:
    allowing = [policy("p", own, actions=EVERYTHING)]
    busy_elsewhere = past("m0", namespace=other, target="checkout", phase="Baking", ended=None)
    d = evaluate(request(namespace=own, name="m1"), allowing, [busy_elsewhere], TargetFacts(replicas=2), NOW)
    if other == own:
        assert (d.decision, d.rule) == (PolicyDecisionKind.DENY, "oneAtATime")
    else:
        # The same workload name in another namespace is another workload.
        assert d.decision is PolicyDecisionKind.ALLOW


@given(other=NAMESPACES)
def test_rate_limits_count_the_own_namespace_only(other: str) -> None:
    own = "payments"
    limited = [policy("p", own, actions=EVERYTHING, rateLimits={"actionsPerHour": 1})]
    started = past("m0", namespace=other, target="other-workload", started="2025-03-07T11:50:00Z")
    d = evaluate(request(namespace=own), limited, [started], TargetFacts(replicas=2), NOW)
    denied = d.decision is PolicyDecisionKind.DENY and d.rule == "rateLimits.actionsPerHour"
    assert denied == (other == own)


def test_a_past_mitigation_that_named_another_namespace_never_counts_as_on_the_target() -> None:
    """One that named ``prod`` from ``payments`` was refused: it holds nothing in ``payments``."""
    stray = past("m0", phase="Baking", ended=None)
    stray = type(stray)(**{**stray.__dict__, "target_namespace": "prod"})
    d = evaluate(request(), [policy(actions=EVERYTHING)], [stray], TargetFacts(replicas=2), NOW)
    assert d.decision is PolicyDecisionKind.ALLOW


# --- the target check itself -----------------------------------------------------------------------


@given(own=NAMESPACES, named=st.none() | NAMESPACES)
def test_the_target_is_in_scope_exactly_when_unset_or_equal(own: str, named: str | None) -> None:
    problem = target_scope_problem("Incident", own, TargetRef(name="web", namespace=named))
    assert (problem is None) == (named in (None, own))
    if problem is not None:
        assert "spec.target.namespace" in problem
        assert "Incident" in problem


# --- locks hold namespace/name -------------------------------------------------------------------


@given(ns=NAMESPACES, name=NAMES, other_ns=NAMESPACES, other=NAMES)
def test_a_lock_is_held_by_namespace_and_name_together(ns: str, name: str, other_ns: str, other: str) -> None:
    value = LockHolder(other_ns, other).value
    assert holds_lock(value, ns, ns, name) == ((other_ns, other) == (ns, name))
    assert lock_holder(value, ns) == LockHolder(other_ns, other)


@given(target_ns=NAMESPACES, name=NAMES, ns=NAMESPACES)
def test_a_bare_name_lock_from_before_means_the_target_namespace(target_ns: str, name: str, ns: str) -> None:
    """Locks written before they recorded the namespace: the holder lived where the target is (the
    only place a holder may live now); the same name elsewhere is someone else."""
    assert lock_holder(name, target_ns) == LockHolder(target_ns, name)
    assert holds_lock(name, target_ns, ns, name) == (ns == target_ns)


def test_no_lock() -> None:
    assert lock_holder(None, "a") is None
    assert lock_holder("", "a") is None
    assert not holds_lock(None, "a", "a", "m1")


@given(own=NAMESPACES, other=st.none() | NAMESPACES)
def test_writes_leave_the_namespace_only_for_nodes_and_checked_applications(
    own: str, other: str | None
) -> None:
    problem = write_scope_problem("Deployment", "web", other, own)
    assert (problem is None) == (other in (None, own))
    app = frozenset({"Application/argocd/shop"})
    assert write_scope_problem("Application", "shop", "argocd", own, app) is None
    if own != "argocd":
        assert write_scope_problem("Application", "other", "argocd", own, app) is not None
