"""Identity rules (design invariant 12): the stanch-identity admission policy evaluated offline with a
CEL interpreter, the operator's check that it is in force, and which approval approves what."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel

from stanch.core.identity import (
    RULES,
    OfferedApproval,
    admission_binding,
    admission_policy,
    admission_problem,
    approval_refusal,
    approvals_for,
)
from stanch.core.models import ApprovalRequirements, ApproverGroups, PolicyDecisionKind, UserIdentity
from stanch.core.policy import evaluate, requested_by

from .policy_builders import NOW, policy, request, rule
from .test_policy_evaluation import FACTS

ENV = celpy.Environment()


def admit(
    user: str,
    resource: str,
    operation: str,
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    groups: tuple[str, ...] = ("system:authenticated",),
) -> list[str]:
    """The messages of the rules that refuse this request (empty: admitted)."""
    activation = {
        "request": json_to_cel(
            {
                "operation": operation,
                "resource": {"group": "stanch.dev", "version": "v1alpha1", "resource": resource},
                "userInfo": {"username": user, **({"groups": list(groups)} if groups else {})},
            }
        ),
        "object": json_to_cel(obj),
        "oldObject": json_to_cel(old),
    }
    refused = []
    for r in RULES:
        result = ENV.program(ENV.compile(r.expression)).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), f"{r.expression} -> {result!r}"
        if not result:
            refused.append(r.message)
    return refused


def mitigation(requester: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"target": {"name": "web"}, "scale": {"replicas": 3}}
    if requester is not None:
        spec["requester"] = requester
    return {"metadata": {"name": "m", "namespace": "shop"}, "spec": spec}


def approval(approver: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "a", "namespace": "shop"},
        "spec": {"mitigationRef": {"name": "m", "uid": "u1"}, "approver": approver},
    }


# --- the admission policy, offline ----------------------------------------------------------------


def test_a_requester_can_only_name_themselves() -> None:
    assert admit("alice", "mitigations", "CREATE", mitigation({"username": "alice"})) == []
    assert admit("alice", "mitigations", "CREATE", mitigation({"username": "bob"})) == [
        "spec.requester.username must be your own user name"
    ]
    assert admit("alice", "mitigations", "CREATE", mitigation(None)) == [
        "spec.requester.username must be your own user name"
    ]


def test_groups_named_must_be_the_users_own() -> None:
    mine = mitigation({"username": "alice", "groups": ["sre"]})
    assert admit("alice", "mitigations", "CREATE", mine, groups=("sre", "system:authenticated")) == []
    assert admit("alice", "mitigations", "CREATE", mine) == [
        "spec.requester.groups may only name groups you are in"
    ]
    assert admit("alice", "mitigations", "CREATE", mine, groups=()) == [
        "spec.requester.groups may only name groups you are in"
    ]


def test_the_requester_never_changes_but_others_may_update_the_mitigation() -> None:
    old = mitigation({"username": "alice", "groups": ["sre"]})
    # The operator (another user, other groups) adds a finalizer: the requester is untouched.
    assert admit("system:serviceaccount:stanch-system:stanch", "mitigations", "UPDATE", old, old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["requester"]["username"] = "bob"
    assert admit("bob", "mitigations", "UPDATE", changed, old) == [
        "spec.requester is immutable: it was checked against the creator's identity"
    ]
    # An old Mitigation without one cannot gain one later (it was never checked).
    assert admit("bob", "mitigations", "UPDATE", changed, mitigation(None)) != []
    assert admit("bob", "mitigations", "UPDATE", mitigation(None), mitigation(None)) == []


def test_an_approver_approves_as_themselves_in_their_own_groups() -> None:
    bob = approval({"username": "bob", "groups": ["sre-oncall"]})
    assert admit("bob", "mitigationapprovals", "CREATE", bob, groups=("sre-oncall",)) == []
    assert admit("alice", "mitigationapprovals", "CREATE", bob, groups=("sre-oncall",)) == [
        "spec.approver.username must be your own user name"
    ]
    assert admit("bob", "mitigationapprovals", "CREATE", bob, groups=("dev",)) == [
        "spec.approver.groups may only name groups you are in"
    ]
    edited = copy.deepcopy(bob)
    edited["spec"]["reason"] = "changed my mind"
    assert admit("bob", "mitigationapprovals", "UPDATE", edited, bob) == [
        "a MitigationApproval is immutable: delete it and create a new one"
    ]


def test_the_manifest_matches_the_rules_the_operator_checks() -> None:
    policy_doc = admission_policy()
    assert [v["expression"] for v in policy_doc["spec"]["validations"]] == [r.expression for r in RULES]
    assert policy_doc["spec"]["failurePolicy"] == "Fail"
    assert admission_binding()["spec"] == {"policyName": "stanch-identity", "validationActions": ["Deny"]}


# --- is it in force? -------------------------------------------------------------------------------


def weakened(path: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = {"policy": admission_policy(), "binding": admission_binding()}
    which, *keys = path.split(".")
    node = docs[which]
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return docs["policy"], docs["binding"]


def test_the_shipped_policy_is_in_force() -> None:
    assert admission_problem(admission_policy(), admission_binding()) is None
    # A stricter addition is fine.
    stricter = admission_policy()
    stricter["spec"]["validations"].append({"expression": "true", "message": "extra"})
    assert admission_problem(stricter, admission_binding()) is None


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        ("policy.spec.failurePolicy", "Ignore", "failurePolicy Ignore"),
        ("policy.spec.matchConditions", [{"name": "x", "expression": "false"}], "matchConditions"),
        ("policy.spec.validations", [], "lacks the rule"),
        ("policy.spec.matchConstraints.namespaceSelector", {"matchLabels": {"a": "b"}}, "namespaceSelector"),
        ("policy.spec.matchConstraints.resourceRules", [], "does not match CREATE of mitigations"),
        ("binding.spec.validationActions", ["Warn", "Audit"], "does not Deny"),
        ("binding.spec.policyName", "other", "binds 'other'"),
        ("binding.spec.matchResources", {"objectSelector": {"matchLabels": {"a": "b"}}}, "objectSelector"),
    ],
)
def test_a_weakened_policy_is_not_in_force(path: str, value: Any, why: str) -> None:
    problem = admission_problem(*weakened(path, value))
    assert problem is not None
    assert why in problem
    assert "apply manifests/identity-admission.yaml" in problem


def test_a_missing_policy_or_binding_is_not_in_force() -> None:
    assert "does not exist" in (admission_problem(None, admission_binding()) or "")
    assert "ValidatingAdmissionPolicyBinding stanch-identity does not exist" in (
        admission_problem(admission_policy(), None) or ""
    )


# --- which approval approves ----------------------------------------------------------------------

ALICE = UserIdentity(username="alice")
BOB = UserIdentity(username="bob", groups=["sre-oncall"])


def offer(who: UserIdentity, name: str = "a1") -> OfferedApproval:
    return OfferedApproval(name, who, "looks right")


def test_the_requester_cannot_approve_their_own_by_default() -> None:
    refusal = approval_refusal(ALICE, offer(ALICE), ApprovalRequirements(), None)
    assert refusal is not None
    assert "alice requested this Mitigation" in refusal
    assert "approval.allowSelfApproval is false" in refusal
    assert approval_refusal(ALICE, offer(BOB), ApprovalRequirements(), None) is None
    assert approval_refusal(ALICE, offer(ALICE), ApprovalRequirements(allow_self_approval=True), None) is None
    # A decision recorded before policies had an approval section: the defaults.
    assert approval_refusal(ALICE, offer(ALICE), None, None) is not None


def test_approver_groups_of_every_policy_must_be_met() -> None:
    rules = ApprovalRequirements(
        approver_groups=[
            ApproverGroups(policy="MitigationPolicy/shop/prod", groups=["sre-oncall", "sre-leads"]),
            ApproverGroups(policy="ClusterMitigationPolicy/base", groups=["sre-oncall"]),
        ]
    )
    assert approval_refusal(ALICE, offer(BOB), rules, None) is None
    carol = UserIdentity(username="carol", groups=["dev"])
    refusal = approval_refusal(ALICE, offer(carol), rules, None)
    assert refusal is not None
    assert (
        "MitigationPolicy/shop/prod approval.approverGroups wants one of [sre-oncall, sre-leads]" in refusal
    )
    assert "(listed: dev)" in refusal


def test_an_old_mitigation_without_a_requester_needs_self_approval_allowed() -> None:
    refusal = approval_refusal(None, offer(BOB), ApprovalRequirements(), None)
    assert refusal is not None
    assert "names no requester" in refusal
    assert "recreate it" in refusal
    assert approval_refusal(None, offer(BOB), ApprovalRequirements(allow_self_approval=True), None) is None


def test_no_approval_counts_while_the_admission_policy_is_not_in_force() -> None:
    problem = admission_problem(None, None)
    refusal = approval_refusal(ALICE, offer(BOB), ApprovalRequirements(allow_self_approval=True), problem)
    assert refusal is not None
    assert "identities are unverified" in refusal
    assert "does not exist" in refusal


def test_approvals_are_matched_by_name_and_uid_oldest_first() -> None:
    def obj(name: str, ref: str, uid: str, created: str, **meta: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "creationTimestamp": created, **meta},
            "spec": {"mitigationRef": {"name": ref, "uid": uid}, "approver": {"username": name}},
        }

    found = approvals_for(
        [
            obj("late", "m", "u1", "2025-03-07T12:05:00Z"),
            obj("early", "m", "u1", "2025-03-07T12:00:00Z"),
            obj("earlier-mitigation", "m", "u0", "2025-03-07T11:00:00Z"),  # same name, older object
            obj("other", "n", "u1", "2025-03-07T12:00:00Z"),
            obj("withdrawn", "m", "u1", "2025-03-07T11:59:00Z", deletionTimestamp="2025-03-07T12:01:00Z"),
        ],
        "m",
        "u1",
    )
    assert [a.name for a in found] == ["early", "late"]


# --- what the policy asks for, recorded with the decision ------------------------------------------


def test_the_decision_records_who_may_approve() -> None:
    prod = policy("prod", actions=[rule("Rollback", "Manual")], approval={"approverGroups": ["sre-oncall"]})
    base = policy(
        "base", cluster=True, actions=[rule("Rollback", "Manual")], approval={"allowSelfApproval": True}
    )
    d = evaluate(request(), [prod, base], [], FACTS, NOW)
    assert d.decision is PolicyDecisionKind.REQUIRE_APPROVAL
    assert d.approval is not None
    assert d.approval.allow_self_approval is False  # prod does not allow it: the strictest wins
    assert [(g.policy, g.groups) for g in d.approval.approver_groups] == [
        ("MitigationPolicy/payments/prod", ["sre-oncall"])
    ]
    lenient = evaluate(request(), [base], [], FACTS, NOW)
    assert lenient.approval is not None
    assert lenient.approval.allow_self_approval is True
    allowed = evaluate(request(), [policy("auto", actions=[rule("Rollback")])], [], FACTS, NOW)
    assert allowed.decision is PolicyDecisionKind.ALLOW
    assert allowed.approval is None


def test_requested_by_is_the_checked_requester() -> None:
    meta = {
        "managedFields": [{"manager": "kubectl-create"}],
        "annotations": {"stanch.dev/requested-by": "eve"},
    }
    assert requested_by(meta, "alice") == "alice"
    assert requested_by(meta) == "eve (unverified annotation); field manager kubectl-create"
