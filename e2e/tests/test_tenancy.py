"""A tenant, played by impersonation (``kubectl --as``), holding the shipped stanch-request and
stanch-view roles through a RoleBinding in their own namespace only, against the real API server's
RBAC: they can ask Stanch for help at home and nothing more. Cannot act in another namespace, cannot
widen a cluster policy (or write any policy), cannot edit a Mitigation once asked or write its
status, cannot approve their own request, cannot read a Secret, directly or through what Stanch writes.

The operator runs as the shipped ServiceAccount (e2e.identity), which cannot read Secrets either.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.identity import OPERATOR_USER, install_operator_identity
from e2e.kube import Kube, deployment
from e2e.shared import GUARD, shared_write
from e2e.tests.mitigation_world import (
    allow_all_policy,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_error_ratio,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods

TENANT = "alice@tenant.example"
SECRET_VALUE = "hunter2-not-for-tenants"


def kubectl(kube: Kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl as the harness (admin) or, with ``--as`` in ``args``, as someone else; the result,
    whether it succeeded or not."""
    GUARD.allow(shared_write(args, stdin), "kubectl " + " ".join(args))
    return subprocess.run(
        [kube.kubectl, "--kubeconfig", kube.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_tenant(kube: Kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return kubectl(kube, *args, "--as", TENANT, stdin=stdin)


def assert_forbidden(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode != 0, f"{what}: allowed, must be refused:\n{result.stdout}"
    assert "forbidden" in result.stderr.lower(), f"{what}: refused for another reason: {result.stderr}"
    assert TENANT in result.stderr or "cannot" in result.stderr, result.stderr


def can_i(kube: Kube, user: str, verb: str, resource: str, namespace: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, "--as", user]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    return kubectl(kube, *args).stdout.strip() == "yes"


def yaml_of(*objects: dict[str, Any]) -> str:
    return "\n---\n".join(json.dumps(o) for o in objects)


def paths_holding(obj: Any, value: str, path: str = "") -> list[str]:
    """Where in ``obj`` a string containing ``value`` sits, as JSON paths."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in paths_holding(v, value, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in paths_holding(v, value, f"{path}[{i}]")]
    return [path] if isinstance(obj, str) and value in obj else []


@pytest.fixture
def tenant(kube: Kube, namespace: str, crds_installed: None) -> str:
    """The tenant's namespace: stanch-request and stanch-view bound to the tenant there only."""
    install_operator_identity(kube)
    for role in ("stanch-request", "stanch-view"):
        kube.run(
            "create",
            "rolebinding",
            f"tenant-{role}",
            f"--clusterrole={role}",
            f"--user={TENANT}",
            "-n",
            namespace,
        )
    kube.wait_for(
        lambda: can_i(kube, TENANT, "create", "mitigations.stanch.dev", namespace), 30, "the binding"
    )
    return namespace


@pytest.fixture
def other_namespace(kube: Kube) -> Iterator[str]:
    """Another team's namespace, where the tenant holds nothing."""
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false")


def tenant_mitigation(name: str, target: str, action: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A Mitigation as the tenant writes it: naming themselves as the requester (the stanch-identity
    admission policy refuses any other name)."""
    return mitigation(name, target, action, requester={"username": TENANT}, **spec)


def incident(name: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"target": {"kind": "Deployment", "name": target}},
    }


def test_a_tenant_asks_for_help_at_home_and_nowhere_else(
    kube: Kube, tenant: str, other_namespace: str
) -> None:
    kube.apply(deployment("web", replicas=1), namespace=other_namespace)
    asked = tenant_mitigation("scale-web", "web", {"scale": {"replicas": 3}}, dryRun=True)
    opened = incident("web-5xx", "web")

    # At home: the request role works (the positive control for every refusal below).
    for obj in (asked, opened):
        result = as_tenant(kube, "create", "-n", tenant, "-f", "-", stdin=yaml_of(obj))
        assert result.returncode == 0, result.stderr
    assert as_tenant(kube, "get", "mitigations,incidents", "-n", tenant).returncode == 0

    # In another team's namespace: refused by the API server, nothing created there.
    for obj in (asked, opened):
        kind = obj["kind"]
        result = as_tenant(kube, "create", "-n", other_namespace, "-f", "-", stdin=yaml_of(obj))
        assert_forbidden(result, f"{kind} in {other_namespace}")
    assert_forbidden(
        as_tenant(kube, "get", "mitigations", "-n", other_namespace), "reading another namespace"
    )
    assert kube.items("mitigations", other_namespace) == []
    assert kube.items("incidents", other_namespace) == []
    assert kube.get("deployment", "web", other_namespace)["spec"]["replicas"] == 1


def test_a_tenant_cannot_widen_a_policy_or_edit_what_was_decided(kube: Kube, tenant: str) -> None:
    widened = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "ClusterMitigationPolicy",
        "metadata": {"name": f"tenant-widens-{tenant}"},
        "spec": {"actions": [{"action": "Scale", "tier": "Auto"}]},
    }
    # A server-side dry run is authorized exactly like the write (and changes nothing shared).
    for verb in ("create", "apply"):
        result = as_tenant(kube, verb, "--dry-run=server", "-f", "-", stdin=yaml_of(widened))
        assert_forbidden(result, f"{verb} a ClusterMitigationPolicy")
    for verb in ("create", "update", "patch", "delete"):
        assert not can_i(kube, TENANT, verb, "clustermitigationpolicies.stanch.dev")
    # Nor a namespaced policy at home: policies are the platform's control over Stanch.
    home_policy = allow_all_policy(tenant)
    result = as_tenant(kube, "create", "-n", tenant, "-f", "-", stdin=yaml_of(home_policy))
    assert_forbidden(result, "a MitigationPolicy in the tenant's own namespace")

    # A Mitigation, once asked, is not edited (what runs is what the policy decided on), and its
    # status (decision, approval, audit) is Stanch's alone.
    created = as_tenant(
        kube,
        "create",
        "-n",
        tenant,
        "-f",
        "-",
        stdin=yaml_of(tenant_mitigation("m", "web", {"scale": {"replicas": 2}}, dryRun=True)),
    )
    assert created.returncode == 0, created.stderr
    swap = json.dumps({"spec": {"scale": {"replicas": 50}}})
    assert_forbidden(
        as_tenant(kube, "patch", "mitigation", "m", "-n", tenant, "--type", "merge", "-p", swap),
        "editing a spec",
    )
    approve = json.dumps({"status": {"phase": "Succeeded"}})
    result = as_tenant(
        kube,
        "patch",
        "mitigation",
        "m",
        "-n",
        tenant,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        approve,
    )
    assert_forbidden(result, "writing a Mitigation's status")
    # Cancelling is allowed: deleting a Mitigation reverts what it changed.
    assert can_i(kube, TENANT, "delete", "mitigations.stanch.dev", tenant)

    # Nor approved by its requester: requesting grants no approvals (stanch-approve is a separate,
    # deliberate grant), so the tenant cannot approve their own request at all.
    uid = kube.get("mitigation", "m", tenant)["metadata"]["uid"]
    approval = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationApproval",
        "metadata": {"name": "self-approved"},
        "spec": {"mitigationRef": {"name": "m", "uid": uid}, "approver": {"username": TENANT}},
    }
    result = as_tenant(kube, "create", "-n", tenant, "-f", "-", stdin=yaml_of(approval))
    assert_forbidden(result, "approving one's own Mitigation")
    assert kube.items("mitigationapprovals", tenant) == []
    kube.run(
        "create",
        "rolebinding",
        "approver",
        "--clusterrole=stanch-approve",
        "--user=bob@example",
        "-n",
        tenant,
    )
    kube.wait_for(
        lambda: can_i(kube, "bob@example", "create", "mitigationapprovals.stanch.dev", tenant),
        30,
        "bob approves",
    )


def test_no_one_reads_a_secret_through_stanch_rbac(kube: Kube, tenant: str) -> None:
    kube.run("create", "secret", "generic", "db", f"--from-literal=password={SECRET_VALUE}", "-n", tenant)
    assert_forbidden(as_tenant(kube, "get", "secret", "db", "-n", tenant, "-o", "json"), "reading a Secret")
    for verb in ("get", "list", "watch"):
        assert not can_i(kube, TENANT, verb, "secrets", tenant)
        # The operator's own identity cannot read Secrets either: nothing it writes can hold one's data.
        assert not can_i(kube, OPERATOR_USER, verb, "secrets")


class SecretLeakedError(AssertionError):
    """A secret value is readable by the tenant in something Stanch wrote."""


@pytest.mark.local_world("ready-pods", "simulator")
def test_a_literal_secret_in_a_pod_template_does_not_reach_the_tenant_through_a_mitigation(
    world: WorldInfo, kube: Kube, tenant: str, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2, env={"DB_PASSWORD": SECRET_VALUE}), namespace=tenant)
    kube.wait_for(lambda: len(ready_pods(kube, tenant, "web")) == 2, 60, "2 ready pods")
    wait_error_ratio(world.prometheus_url, tenant, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    kube.apply(allow_all_policy(tenant), namespace=tenant)
    operator = fast_operator(world, tenant, tmp_path / "operator")
    operator.start()
    try:
        asked = as_tenant(
            kube,
            "create",
            "-n",
            tenant,
            "-f",
            "-",
            stdin=yaml_of(tenant_mitigation("bounce", "web", {"restart": {}})),
        )
        assert asked.returncode == 0, asked.stderr
        wait_phase(kube, tenant, "bounce", {"Succeeded"}, 120)
        seen = as_tenant(kube, "get", "mitigation", "bounce", "-n", tenant, "-o", "json")
        assert seen.returncode == 0, seen.stderr
        events = kube.run("get", "events", "-n", tenant, "-o", "json")
    finally:
        shutdown(operator, kube, tenant)
    assert json.loads(seen.stdout)["status"].get("snapshot"), "the snapshot to check was not written"
    assert SECRET_VALUE not in events, f"the secret value is in an Event of {tenant}"
    # The name stays: what was snapshotted is still recognisable.
    assert "DB_PASSWORD" in seen.stdout
    leaks = paths_holding(json.loads(seen.stdout), SECRET_VALUE)
    if leaks:
        raise SecretLeakedError(f"the secret value is in the Mitigation the tenant reads, at {leaks}")
