"""The install manifests: least-privilege RBAC with reasons, a hardened Deployment of two peered
replicas, Kopf's peering CRDs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
PEERING = "stanch"


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def cluster_role(name: str = "rbac.yaml") -> dict[str, Any]:
    (role,) = [d for d in load(name) if d["kind"] == "ClusterRole"]
    return role


def test_every_rbac_rule_has_a_reason() -> None:
    for name in ("rbac.yaml", "user-roles.yaml"):
        lines = (MANIFESTS / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1} has no comment saying why"


def test_secrets_are_not_readable_by_the_base_install() -> None:
    roles = [d for name in ("rbac.yaml", "user-roles.yaml") for d in load(name) if d["kind"] == "ClusterRole"]
    for rule in (rule for role in roles for rule in role["rules"]):
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["verbs"]
        assert "*" not in rule["apiGroups"]


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "events", "create"),
        ("stanch.dev", "incidents/status", "patch"),
        ("stanch.dev", "mitigations", "patch"),
        ("", "pods/log", "get"),
        ("apps", "replicasets", "list"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("stanch.dev", "mitigations", "create"),
        ("apps", "deployments", "create"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("", "configmaps", "patch"),
        ("", "pods", "delete"),
        ("", "pods/eviction", "create"),
        ("", "nodes", "patch"),
        ("kopf.dev", "clusterkopfpeerings", "watch"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
        ("kopf.dev", "clusterkopfpeerings", "create"),
        ("kopf.dev", "kopfpeerings", "list"),
        ("kopf.dev", "kopfpeerings", "patch"),
    ],
)
def test_needed_permissions_are_granted(group: str, resource: str, verb: str) -> None:
    assert any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
        for r in cluster_role()["rules"]
    )


def test_deployment_is_two_hardened_peered_replicas() -> None:
    (deployment,) = load("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # New Pods start paused (lower priority) and the old active one hands over as it exits.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["args"] == ["run", "--all-namespaces", "--peering", PEERING]
    # An explicit priority in a Deployment is the same for every replica: they would all pause.
    assert "STANCH_PRIORITY" not in {e["name"] for e in container["env"]}
    assert "--priority" not in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}  # the in-cluster defaults of `stanch run`


def test_peering_rbac_is_limited_to_the_deployments_peering_object() -> None:
    rules = [r for r in cluster_role()["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert all(set(r["resources"]) == {"clusterkopfpeerings", "kopfpeerings"} for r in rules)
    # Writes to an existing peering object: only the one the Deployment names.
    (named,) = [r for r in rules if "patch" in r["verbs"]]
    assert named["resourceNames"] == [PEERING]
    assert sorted(v for r in rules for v in r["verbs"]) == ["create", "list", "patch", "watch"]


def test_peering_crds_are_kopfs_kinds_with_free_form_records() -> None:
    crds = {d["spec"]["names"]["kind"]: d for d in load("peering-crds.yaml")}
    assert set(crds) == {"ClusterKopfPeering", "KopfPeering"}
    for kind, scope in (("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")):
        spec = crds[kind]["spec"]
        assert (spec["group"], spec["scope"]) == ("kopf.dev", scope)
        assert crds[kind]["metadata"]["name"] == f"{spec['names']['plural']}.kopf.dev"
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        # Kopf patches the object itself: a status subresource would silently drop its records.
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_disruption_budget_keeps_a_standby() -> None:
    (pdb,) = load("pdb.yaml")
    (deployment,) = load("deployment.yaml")
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_kustomization_lists_every_base_file() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk <= listed
    assert "../crds" in listed


def test_kustomize_builds_the_base(kubectl: str) -> None:
    out = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True, timeout=60
    )
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(out.stdout) if doc)
    assert kinds.count("CustomResourceDefinition") >= 6  # ours and Kopf's two peering kinds
    assert {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
    } <= set(kinds)
    assert "image: stanch:0.1.0" in out.stdout
