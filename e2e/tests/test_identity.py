"""Identities come from the API server (design invariant 12), on the real API server, as tenants
(impersonation): a tenant cannot create a pre-approved Mitigation, cannot name someone else as its
requester, cannot approve as someone else or claim a group they are not in, cannot approve their own
Mitigation under a policy that wants another approver; an approver in the policy's group can, and
status and the audit trail show both identities.

The stanch-identity admission policy is installed by the harness with the CRDs (the same manifest
for every test); the tenants' rights are namespaced Roles, so nothing here writes cluster-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster import WorldInfo
from e2e.kube import Kube, approve, deployment, install_crds
from e2e.tests.mitigation_world import deployment_state, fast_operator, settle, shutdown, wait_phase
from e2e.tests.test_workloads import ready_pods

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

ALICE = "alice"  # a tenant: may request Mitigations in the namespace
TENANTS = "tenants"
ONCALL = "sre-oncall"


def grant_requester(kube: Kube, namespace: str, user: str) -> None:
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "requester"},
            "rules": [
                {
                    "apiGroups": ["stanch.dev"],
                    "resources": ["mitigations"],
                    "verbs": ["get", "list", "create", "patch", "update"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"requester-{user}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "requester"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
        namespace=namespace,
    )


def as_tenant(kube: Kube, user: str, groups: tuple[str, ...], *args: str, stdin: str | None = None) -> str:
    """kubectl as ``user`` in ``groups``; the API server's refusal as the AssertionError's text."""
    return kube.run(*args, f"--as={user}", *(f"--as-group={g}" for g in groups), stdin=stdin)


def refused(kube: Kube, user: str, groups: tuple[str, ...], verb: str, doc: dict[str, Any]) -> str:
    with pytest.raises(AssertionError) as err:
        as_tenant(kube, user, groups, verb, "-f", "-", stdin=yaml.safe_dump(doc))
    return str(err.value)


def mitigation(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"target": {"name": "web"}, "scale": {"replicas": 3}, **spec},
    }


@pytest.mark.usefixtures("crds_installed")
def test_a_tenant_cannot_forge_an_identity_or_arrive_approved(kube: Kube, namespace: str) -> None:
    grant_requester(kube, namespace, ALICE)
    me = (ALICE, TENANTS)

    pre_approved = mitigation(
        namespace, "pre", requester={"username": ALICE}, approval={"approved": True, "approvedBy": "boss"}
    )
    assert "spec.approval no longer approves anything" in refused(kube, ALICE, me, "create", pre_approved)

    forged = mitigation(namespace, "forged", requester={"username": "boss"})
    out = refused(kube, ALICE, me, "create", forged)
    assert "spec.requester.username must be your own user name" in out, out
    assert "you are alice" in out, out

    anonymous = mitigation(namespace, "anonymous")
    assert "spec.requester.username must be your own user name" in refused(
        kube, ALICE, me, "create", anonymous
    )

    claims_group = mitigation(namespace, "claims", requester={"username": ALICE, "groups": [ONCALL]})
    out = refused(kube, ALICE, me, "create", claims_group)
    assert "spec.requester.groups may only name groups you are in" in out, out

    honest = mitigation(namespace, "honest", requester={"username": ALICE, "groups": [TENANTS]})
    as_tenant(kube, ALICE, me, "create", "-f", "-", stdin=yaml.safe_dump(honest))
    patch = '{"spec":{"requester":{"username":"boss"}}}'
    with pytest.raises(AssertionError) as err:
        as_tenant(
            kube, ALICE, me, "patch", "mitigation", "honest", "-n", namespace, "--type=merge", "-p", patch
        )
    assert "requester is immutable" in str(err.value)

    # A requester has no right to approve at all (RBAC), and an approver approves only as themselves.
    uid = kube.get("mitigation", "honest", namespace)["metadata"]["uid"]
    approval: dict[str, Any] = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationApproval",
        "metadata": {"name": "self", "namespace": namespace},
        "spec": {"mitigationRef": {"name": "honest", "uid": uid}, "approver": {"username": ALICE}},
    }
    assert "forbidden" in refused(kube, ALICE, me, "create", approval).lower()
    approve(kube, namespace, "honest", "bob", (ONCALL,), name="bob-ok")  # grants bob the Role
    as_alice = {**approval, "metadata": {"name": "as-alice", "namespace": namespace}}
    out = refused(kube, "bob", (ONCALL,), "create", as_alice)
    assert "spec.approver.username must be your own user name" in out, out
    claims = {
        **approval,
        "metadata": {"name": "claims", "namespace": namespace},
        "spec": {**approval["spec"], "approver": {"username": "bob", "groups": ["platform-admins"]}},
    }
    out = refused(kube, "bob", (ONCALL,), "create", claims)
    assert "spec.approver.groups may only name groups you are in" in out, out
    # Not even a cluster admin edits an approval after the fact.
    edit = '{"spec":{"reason":"edited"}}'
    with pytest.raises(AssertionError) as err:
        kube.run("patch", "mitigationapproval", "bob-ok", "-n", namespace, "--type=merge", "-p", edit)
    assert "immutable" in str(err.value)

    names = {m["metadata"]["name"] for m in kube.items("mitigations", namespace)}
    assert names == {"honest"}, names
    assert {a["metadata"]["name"] for a in kube.items("mitigationapprovals", namespace)} == {"bob-ok"}

    # `stanch approve` fills in what the admission policy checks: the caller and the uid.
    cli = [sys.executable, "-m", "stanch", "approve", f"{namespace}/honest", "--reason", "looked"]
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    again = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "already exists" in again.stdout, again.stdout + again.stderr
    mine = [a for a in kube.items("mitigationapprovals", namespace) if a["metadata"]["name"] != "bob-ok"]
    assert [a["spec"]["approver"]["username"] for a in mine] == [kube.username()], mine
    assert mine[0]["spec"]["mitigationRef"] == {"name": "honest", "uid": uid}


@pytest.mark.usefixtures("crds_installed")
def test_approval_needs_another_person_in_the_policys_group(
    world: WorldInfo, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    kube.apply(
        {
            "apiVersion": "stanch.dev/v1alpha1",
            "kind": "MitigationPolicy",
            "metadata": {"name": "prod"},
            "spec": {
                "actions": [{"action": "Scale", "tier": "Manual", "limits": {"maxReplicas": 10}}],
                "approval": {"approverGroups": [ONCALL]},
            },
        },
        namespace=namespace,
    )
    grant_requester(kube, namespace, ALICE)
    settle()
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        grow = mitigation(namespace, "grow", requester={"username": ALICE})
        grow["spec"]["guard"] = {"bakeTime": "20s", "interval": "2s", "baselineWindow": "20s"}
        as_tenant(kube, ALICE, (TENANTS,), "create", "-f", "-", stdin=yaml.safe_dump(grow))
        st = wait_phase(kube, namespace, "grow", {"AwaitingApproval"}, 60)
        assert st["requester"]["username"] == ALICE, st["requester"]
        assert st["policy"]["approval"]["approverGroups"][0]["groups"] == [ONCALL], st["policy"]

        # Alice approves her own (even in the right group): refused, visibly, nothing changes.
        approve(kube, namespace, "grow", ALICE, (ONCALL,), name="alice-self")
        # Carol is someone else, but not on call.
        approve(kube, namespace, "grow", "carol", ("dev",), name="carol-dev")

        def refusals() -> list[str]:
            audit = (kube.get("mitigation", "grow", namespace).get("status") or {}).get("audit") or []
            return [a["reason"] for a in audit if a["event"] == "ApprovalRefused"]

        kube.wait_for(lambda: len(refusals()) >= 2, 60, "both approvals refused")
        reasons = refusals()
        assert any("alice requested this Mitigation" in r for r in reasons), reasons
        assert any("wants one of [sre-oncall]" in r and "carol" in r for r in reasons), reasons
        time.sleep(4)
        assert kube.get("mitigation", "grow", namespace)["status"]["phase"] == "AwaitingApproval"
        assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 2, "nothing before approval"
        warnings = {
            e["reason"]
            for e in kube.events(namespace)
            if e["involvedObject"].get("name") == "grow" and e["type"] == "Warning"
        }
        assert "ApprovalRefused" in warnings, warnings

        approve(kube, namespace, "grow", "bob", (ONCALL,), name="bob-oncall", reason="capacity, checked")
        st = wait_phase(kube, namespace, "grow", {"Baking", "Succeeded"}, 90)
        assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 3
    finally:
        shutdown(operator, kube, namespace)
    assert st["requester"]["username"] == ALICE
    assert st["requestedBy"] == ALICE
    assert st["approval"]["approver"] == {"username": "bob", "groups": [ONCALL]}, st["approval"]
    assert st["approval"]["approval"] == "bob-oncall"
    approved = [a for a in st["audit"] if a["event"] == "Approved"]
    assert [a["actor"] for a in approved] == ["bob"], st["audit"]
    assert "MitigationApproval bob-oncall" in approved[0]["reason"]
    assert "capacity, checked" in approved[0]["reason"]


@pytest.mark.serial("cluster-objects")
@pytest.mark.usefixtures("crds_installed")
def test_no_approval_counts_while_the_admission_policy_is_missing(
    world: WorldInfo, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Defence in depth: with the binding gone the identity fields are typed text again, so the
    operator refuses every approval, visibly, and lets it through once the binding is back."""
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    kube.apply(
        {
            "apiVersion": "stanch.dev/v1alpha1",
            "kind": "MitigationPolicy",
            "metadata": {"name": "prod"},
            "spec": {"actions": [{"action": "Scale", "tier": "Manual", "limits": {"maxReplicas": 10}}]},
        },
        namespace=namespace,
    )
    settle()
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        grow = mitigation(namespace, "grow")
        grow["spec"]["guard"] = {"bakeTime": "20s", "interval": "2s", "baselineWindow": "20s"}
        kube.apply(grow, namespace=namespace)
        wait_phase(kube, namespace, "grow", {"AwaitingApproval"}, 60)
        kube.run("delete", "validatingadmissionpolicybinding", "stanch-identity")
        try:
            approve(kube, namespace, "grow", "bob", name="bob")

            def refusal() -> str | None:
                audit = (kube.get("mitigation", "grow", namespace).get("status") or {}).get("audit") or []
                found = [a["reason"] for a in audit if a["event"] == "ApprovalRefused"]
                return found[-1] if found else None

            reason = kube.wait_for(refusal, 60, "the approval refused")
            assert "identities are unverified" in reason, reason
            assert "ValidatingAdmissionPolicyBinding stanch-identity does not exist" in reason, reason
            time.sleep(4)
            assert kube.get("mitigation", "grow", namespace)["status"]["phase"] == "AwaitingApproval"
            assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 2
        finally:
            install_crds(kube)  # puts the binding back, as every worker installs it
        st = wait_phase(kube, namespace, "grow", {"Baking", "Succeeded"}, 90)
        assert [a["actor"] for a in st["audit"] if a["event"] == "Approved"] == ["bob"], st["audit"]
    finally:
        shutdown(operator, kube, namespace)
