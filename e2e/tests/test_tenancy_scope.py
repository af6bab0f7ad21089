"""A tenant, by impersonation, against the real API server: one namespace, and a frozen spec.

The tenant holds a Role in its own namespace only (Mitigations and Incidents, read Deployments) and
no right on any status. The attacks of issue 12 end in a clear refusal and nothing changes in the
other namespace:

- naming another namespace in ``spec.target.namespace``: refused at admission by the shipped
  ValidatingAdmissionPolicy, and, on a cluster without it, ended by the operator without acting;
- swapping the action of a Mitigation that awaits approval: refused by the CRD's root rule.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster import WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import REPO, Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.shared import GUARD
from e2e.tests.mitigation_world import allow_all_policy, mitigation, shutdown, wait_phase
from stanch.core.models import LOCK_ANNOTATION, SPEC_FROZEN

VAP = REPO / "manifests" / "vap-target-namespace.yaml"
BINDING = "validatingadmissionpolicybinding.admissionregistration.k8s.io/stanch-target-in-own-namespace"
TENANT = "alice"
TENANT_GROUP = "team-dev"
AS_TENANT = (f"--as={TENANT}", f"--as-group={TENANT_GROUP}")


def grant_tenant(kube: Kube, namespace: str) -> None:
    """What a platform team would give a team in its namespace: request Incidents and Mitigations,
    read Deployments. No status, no other namespace."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "stanch-tenant"},
        "rules": [
            {
                "apiGroups": ["stanch.dev"],
                "resources": ["mitigations", "incidents"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            },
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "stanch-tenant"},
        "subjects": [{"kind": "User", "name": TENANT, "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"kind": "Role", "name": "stanch-tenant", "apiGroup": "rbac.authorization.k8s.io"},
    }
    kube.apply(role, binding, namespace=namespace)


def as_tenant(kube: Kube, *args: str, stdin: str | None = None) -> str:
    return kube.run(*AS_TENANT, *args, stdin=stdin)


def create_as_tenant(kube: Kube, namespace: str, obj: dict[str, Any], *extra: str) -> str:
    """Create as the tenant, a Mitigation naming the tenant as its requester (stanch-identity)."""
    if obj["kind"] == "Mitigation":
        obj = {**obj, "spec": {**obj["spec"], "requester": {"username": TENANT, "groups": [TENANT_GROUP]}}}
    return as_tenant(kube, "create", "-n", namespace, *extra, "-f", "-", stdin=yaml.safe_dump(obj))


def cross(name: str, victim: str, kind: str = "Mitigation") -> dict[str, Any]:
    target = {"name": "coredns", "namespace": victim}
    if kind == "Incident":
        return {
            "apiVersion": "stanch.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name},
            "spec": {"target": target},
        }
    obj = mitigation(name, "coredns", {"scale": {"replicas": 0}})
    obj["spec"]["target"] = target
    return obj


def install_target_namespace_policy(kube: Kube) -> None:
    """The shipped policy, applied as the install does: the same whoever applies it (harness write;
    install_crds applies it too)."""
    with GUARD.harness():
        kube.run("apply", "--server-side", "--force-conflicts", "-f", str(VAP))


def wait_enforced(kube: Kube, namespace: str, victim: str) -> None:
    """A new admission policy is enforced once the API server has compiled it: a second or so."""
    probe = yaml.safe_dump(kube.as_requester(cross(f"probe-{uuid.uuid4().hex[:5]}", victim)))

    def refused() -> bool:
        try:
            kube.run("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=probe)
        except AssertionError as err:
            return "stanch-target-in-own-namespace" in str(err)
        return False

    kube.wait_for(refused, 30, "the admission policy enforced")


@pytest.fixture
def victim(kube: Kube, namespace: str) -> Iterator[str]:
    """Another team's namespace, with a workload the tenant must not touch."""
    name = f"{namespace[:50]}-v"
    kube.run("create", "namespace", name)
    kube.apply(deployment("coredns", replicas=2), namespace=name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false")


def untouched(kube: Kube, victim: str, before: dict[str, Any]) -> None:
    now = kube.get("deployment", "coredns", victim)
    assert now["spec"]["replicas"] == 2
    assert now["metadata"]["generation"] == before["metadata"]["generation"]
    assert LOCK_ANNOTATION not in (now["metadata"].get("annotations") or {})
    assert kube.items("mitigations.stanch.dev", victim) == []


def test_a_tenant_cannot_name_another_namespace(
    kube: Kube, namespace: str, victim: str, crds_installed: None
) -> None:
    install_target_namespace_policy(kube)
    wait_enforced(kube, namespace, victim)
    grant_tenant(kube, namespace)
    before = kube.get("deployment", "coredns", victim)

    # The confused deputy: from its own namespace, naming the other one.
    for kind in ("Mitigation", "Incident"):
        with pytest.raises(AssertionError) as refused:
            create_as_tenant(kube, namespace, cross("reach", victim, kind))
        message = str(refused.value)
        assert "ValidatingAdmissionPolicy 'stanch-target-in-own-namespace'" in message, message
        assert (
            f"spec.target.namespace '{victim}' is not this {kind}'s namespace '{namespace}': a {kind} acts"
            " only on workloads in its own namespace" in message
        ), message
    # Directly in the other namespace: RBAC says no.
    with pytest.raises(AssertionError, match="forbidden"):
        create_as_tenant(kube, victim, mitigation("reach", "coredns", {"scale": {"replicas": 0}}))
    # Its own namespace, written out, is fine (the same as leaving it unset).
    own = mitigation("home", "coredns", {"scale": {"replicas": 0}})
    own["spec"]["target"]["namespace"] = namespace
    create_as_tenant(kube, namespace, own, "--dry-run=server")

    untouched(kube, victim, before)


@pytest.mark.serial("cluster-objects")
def test_without_the_admission_policy_the_operator_refuses_to_act_elsewhere(
    world: WorldInfo, kube: Kube, namespace: str, victim: str, crds_installed: None, tmp_path: Path
) -> None:
    """A cluster where the admission policy is missing (not installed, unbound): the operator's own
    check ends the Mitigation Rejected and leaves the Incident uninvestigated, reading and writing
    nothing in the other namespace, although both namespaces' policies allow everything."""
    install_target_namespace_policy(kube)
    grant_tenant(kube, namespace)
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    kube.apply(allow_all_policy(victim), namespace=victim)
    before = kube.get("deployment", "coredns", victim)
    operator = OperatorProcess(
        operator_kubeconfig(world), world.prometheus_url, [namespace, victim], tmp_path / "op"
    )
    kube.run("delete", BINDING)
    try:
        kube.wait_for(lambda: _admitted(kube, namespace, victim), 30, "the admission policy gone")
        operator.start()
        create_as_tenant(kube, namespace, cross("reach", victim))
        create_as_tenant(kube, namespace, cross("look", victim, "Incident"))
        st = wait_phase(kube, namespace, "reach", {"Rejected"}, 60)
        incident = kube.wait_for(
            lambda: _valid_false(kube.get("incident", "look", namespace)), 60, "the Incident refused"
        )
    finally:
        install_target_namespace_policy(kube)
        shutdown(operator, kube, namespace)

    problem = f"spec.target.namespace '{victim}' is not this Mitigation's namespace '{namespace}'"
    (valid,) = [c for c in st["conditions"] if c["type"] == "Valid"]
    assert (valid["status"], valid["reason"]) == ("False", "CrossNamespaceTarget")
    assert problem in valid["message"]
    assert "snapshot" not in st, "nothing read"
    assert "plan" not in st, "nothing planned"
    assert st["audit"][-1]["event"] == "CrossNamespaceTarget"
    assert "phase" not in incident["status"], "never investigated"
    assert "evidence" not in incident["status"]
    reasons = {
        (e["involvedObject"]["kind"], e["reason"]) for e in kube.events(namespace) if e["type"] == "Warning"
    }
    assert {("Mitigation", "CrossNamespaceTarget"), ("Incident", "CrossNamespaceTarget")} <= reasons, reasons
    untouched(kube, victim, before)


def _admitted(kube: Kube, namespace: str, victim: str) -> bool:
    """Whether a cross-namespace Mitigation gets past admission (server-side dry run)."""
    probe = yaml.safe_dump(kube.as_requester(cross(f"probe-{uuid.uuid4().hex[:5]}", victim)))
    try:
        kube.run("create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=probe)
    except AssertionError:
        return False
    return True


def _valid_false(incident: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (incident.get("status") or {}).get("conditions") or []
    refused = any(c["type"] == "Valid" and c["status"] == "False" for c in conditions)
    return incident if refused else None


def test_a_decided_spec_cannot_be_swapped(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    """The issue's probe: a Scale that awaits approval edited into a ConfigToggle the policy forbids."""
    grant_tenant(kube, namespace)
    kube.apply(
        deployment("web", replicas=2),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {"checkout": "on"}},
        namespace=namespace,
    )
    policy = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": "manual-scale"},
        "spec": {
            "actions": [
                {"action": "Scale", "tier": "Manual"},
                {"action": "ConfigToggle", "tier": "Forbidden", "reason": "flags change through Git"},
            ]
        },
    }
    kube.apply(policy, namespace=namespace)
    before = kube.get("deployment", "web", namespace)
    operator = OperatorProcess(operator_kubeconfig(world), world.prometheus_url, [namespace], tmp_path / "op")
    operator.start()
    try:
        create_as_tenant(kube, namespace, mitigation("grow", "web", {"scale": {"replicas": 3}}))
        waiting = wait_phase(kube, namespace, "grow", {"AwaitingApproval"}, 60)
        assert waiting["policy"]["specDigest"].startswith("sha256:")
        swap = {
            "spec": {"scale": None, "configToggle": {"configMap": "flags", "key": "checkout", "value": "off"}}
        }
        bigger = {"spec": {"scale": {"replicas": 30}}}
        for edit in (swap, bigger):
            with pytest.raises(AssertionError) as refused:
                as_tenant(
                    kube,
                    "patch",
                    "mitigation",
                    "grow",
                    "-n",
                    namespace,
                    "--type=merge",
                    "-p",
                    json.dumps(edit),
                )
            assert SPEC_FROZEN in str(refused.value), refused.value
        # The tenant cannot clear the decision to unfreeze it: status is the operator's alone.
        with pytest.raises(AssertionError, match="forbidden"):
            as_tenant(
                kube, "patch", "mitigation", "grow", "-n", namespace, "--subresource=status", "--type=merge",
                "-p", '{"status":{"policy":null}}',
            )  # fmt: skip
        # What does not change what runs may still change.
        as_tenant(
            kube,
            "patch",
            "mitigation",
            "grow",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"revertOnDelete":false}}',
        )
        obj = kube.get("mitigation", "grow", namespace)
        assert obj["spec"]["scale"] == {"replicas": 3}
        assert "configToggle" not in obj["spec"]
        assert obj["status"]["phase"] == "AwaitingApproval"
    finally:
        shutdown(operator, kube, namespace)
    now = kube.get("deployment", "web", namespace)
    assert now["spec"]["replicas"] == 2
    assert now["metadata"]["generation"] == before["metadata"]["generation"]
    assert kube.get("configmap", "flags", namespace)["data"] == {"checkout": "on"}
