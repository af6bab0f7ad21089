"""The install manifests: least-privilege RBAC with reasons, a hardened single-replica Deployment."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def cluster_role(name: str = "rbac.yaml") -> dict[str, Any]:
    (role,) = [d for d in load(name) if d["kind"] == "ClusterRole"]
    return role


def test_every_rbac_rule_has_a_reason() -> None:
    for name in ("rbac.yaml", "optional/secret-metadata-rbac.yaml"):
        lines = (MANIFESTS / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1} has no comment saying why"


def test_secrets_are_not_readable_by_the_base_install() -> None:
    for rule in cluster_role()["rules"]:
        assert "secrets" not in rule["resources"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["verbs"]
        assert "*" not in rule["apiGroups"]


def test_optional_secret_rule_is_list_only() -> None:
    (rule,) = cluster_role("optional/secret-metadata-rbac.yaml")["rules"]
    assert rule == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}


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
        ("apps", "deployments/scale", "patch"),
        ("apps", "deployments", "create"),
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("", "configmaps", "patch"),
        ("", "pods", "delete"),
        ("", "pods/eviction", "create"),
        ("", "nodes", "patch"),
    ],
)
def test_needed_permissions_are_granted(group: str, resource: str, verb: str) -> None:
    assert any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
        for r in cluster_role()["rules"]
    )


def test_deployment_is_single_hardened_replica() -> None:
    (deployment,) = load("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["args"][:2] == ["run", "--all-namespaces"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081}  # the in-cluster defaults of `stanch run`


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
    assert kinds.count("CustomResourceDefinition") >= 3
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= set(kinds)
    assert "image: stanch:0.1.0" in out.stdout
