"""Both installs, the Helm chart and the kustomize base, pass the real API server's checks: a
server-side dry run of every object they render (schemas, CRD structural rules, the admission
policies' CEL, RBAC escalation checks on the ClusterRoles and bindings), as `kubectl apply
--server-side` by an admin or a GitOps controller would send them. Nothing is stored.

Marked serial: the dry run sends cluster-scoped objects (CRDs, ClusterRoles, admission policies)
that exist in the world, and an update of them, even a dry one, must not race a test that changes
them for real.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml

from e2e.cluster import WorldInfo
from e2e.cluster.config import helm as helm_path
from e2e.identity import install_operator_identity
from e2e.install import (
    CLUSTER_SCOPED,
    NAMESPACE,
    alerts,
    dashboard_queries,
    render_chart,
    render_kustomize,
    substituted,
)
from e2e.kube import Kube, install_crds

pytestmark = pytest.mark.serial("cluster-objects")

# prometheus-operator's kinds: dry-run only where their CRDs are served (the local world has none;
# tests/unit/test_monitoring.py checks their content with promtool and the Prometheus API).
MONITORING_GROUP = "monitoring.coreos.com/"


@pytest.fixture(scope="module")
def helm() -> str:
    built = helm_path()
    assert built.exists(), f"{built} is missing: run `make cluster-binaries`"
    return str(built)


@pytest.fixture(scope="module")
def installed_identity(kube: Kube) -> None:
    # The namespace the namespaced objects go to, and the CRDs and policies an update is checked
    # against, as the rest of the suite installs them.
    install_operator_identity(kube)
    install_crds(kube)


def served(kube: Kube, api_version: str) -> bool:
    return bool(kube.run("api-resources", "--api-group", api_version.split("/")[0], "-o", "name").strip())


def dry_run(kube: Kube, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply, dry run; the objects as the API server would have stored them."""
    out = kube.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "stanch-install-test",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
        timeout=120,
    )
    result = json.loads(out)
    items: list[dict[str, Any]] = result["items"] if result.get("kind") == "List" else [result]
    return items


def checked(kube: Kube, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sendable = [o for o in objects if not o["apiVersion"].startswith(MONITORING_GROUP)]
    monitoring = [o for o in objects if o["apiVersion"].startswith(MONITORING_GROUP)]
    if monitoring and served(kube, monitoring[0]["apiVersion"]):
        sendable += monitoring
    stored = dry_run(kube, sendable)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in stored) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in sendable
    )
    for obj in stored:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["kind"]
    return stored


@pytest.mark.usefixtures("installed_identity")
def test_kustomize_base_passes_server_side_dry_run(kube: Kube) -> None:
    stored = checked(kube, render_kustomize(kube.kubectl))
    kinds = {o["kind"] for o in stored}
    assert {"CustomResourceDefinition", "Deployment", "ValidatingAdmissionPolicy", "Service"} <= kinds


@pytest.mark.usefixtures("installed_identity")
def test_chart_defaults_pass_server_side_dry_run(kube: Kube, helm: str) -> None:
    stored = checked(kube, render_chart(helm, {"namespace": {"create": True}}, namespace=NAMESPACE))
    assert {"CustomResourceDefinition", "Deployment", "ConfigMap", "PodDisruptionBudget"} <= {
        o["kind"] for o in stored
    }


@pytest.mark.usefixtures("installed_identity")
def test_chart_with_every_option_passes_in_another_namespace(kube: Kube, helm: str, namespace: str) -> None:
    values = {
        "replicas": 3,
        "prometheus": {
            "url": "https://mimir.example:8080/prometheus",
            "headers": {"X-Scope-OrgID": "team-a"},
            "bearerToken": {"secretName": "stanch-prometheus"},
            "ca": {"configMapName": "stanch-prometheus-ca"},
        },
        "signals": {"preset": "kube-state-metrics", "workloadLabel": "app"},
        "config": {"STANCH_INVESTIGATION_INTERVAL": "45s"},
        "logLevel": "DEBUG",
        "serviceAccount": {"annotations": {"example.com/role": "stanch"}},
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "extraEnv": [{"name": "STANCH_EVIDENCE_CACHE_MAX_PODS", "value": "20000"}],
        "extraArgs": ["--log-level", "DEBUG"],
        "imagePullSecrets": [{"name": "registry"}],
        "alertmanagerReceiver": {"enabled": True, "tokenSecret": {"name": "stanch-alertmanager"}},
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True},
        },
    }
    stored = checked(kube, render_chart(helm, values, namespace=namespace))
    (binding,) = [o for o in stored if o["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["namespace"] == namespace
    (deployment,) = [o for o in stored if o["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == namespace
    volumes = {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert {"tmp", "prometheus-token", "prometheus-ca"} <= volumes


@pytest.mark.usefixtures("installed_identity")
def test_the_dry_run_refuses_what_the_server_refuses(kube: Kube, helm: str, namespace: str) -> None:
    # The check can fail: an object the API server's validation rejects is reported, not stored.
    objects = render_chart(helm, namespace=namespace)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    with pytest.raises(AssertionError, match="containerPort"):
        dry_run(kube, [deployment])


def test_dashboard_and_alert_queries_run_on_the_local_prometheus(world: WorldInfo) -> None:
    # promtool parses them offline (tests/unit/test_monitoring.py); the world's Prometheus must also
    # evaluate every one, with Grafana's variables substituted as Grafana does.
    queries = [
        (title, substituted(expr)) for title, expr in dashboard_queries() if not title.startswith("variable")
    ]
    queries += [(name, rule["expr"]) for name, rule in alerts().items()]
    assert len(queries) >= 25
    for title, expr in queries:
        url = f"{world.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", f"{title}: {body}"
