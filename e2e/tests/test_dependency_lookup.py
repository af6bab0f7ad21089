"""A dependency named only by its ClusterIP in the pods' error lines is resolved, against the real API
server, to its Service and the Deployment behind it; the Dependency hypothesis names them.

Only a real cluster shows this: the ClusterIP is allocated by the API server, the EndpointSlices are
written by the controller-manager from the kwok pods' addresses, and the operator lists them (and,
because a Service was named, the namespace's Deployments) with the shipped ServiceAccount's rights.
The failure starts with no Kubernetes change at all (the simulator's per-namespace image profile):
the dependency, not a deploy, is what the evidence points at.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.test_investigation import (  # noqa: F401 - fixtures used by name
    baseline,
    incident,
    investigation_env,
    patch_world,
    stanch_op,
    wait_for_hypotheses,
    world_keys,
)
from e2e.tests.test_workloads import rollout_complete

pytestmark = pytest.mark.local_world("ready-pods", "simulator")


def service(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]},
    }


def test_a_dependency_named_by_its_cluster_ip_resolves_to_its_service_and_deployment(
    world: WorldInfo,
    kube: Kube,
    namespace: str,
    stanch_op: OperatorProcess,  # noqa: F811
    world_keys: dict[str, str | None],  # noqa: F811
) -> None:
    kube.apply(deployment("ledger", replicas=2), service("ledger", 5432), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "ledger"), 60, "rollout of ledger")
    cluster_ip = kube.get("service", "ledger", namespace)["spec"]["clusterIP"]
    assert cluster_ip
    assert cluster_ip != "None"
    image = f"registry.example/{namespace}/checkout:1.0"
    baseline(kube, namespace, deployment("checkout", replicas=3, image=image))
    # The callers start failing on the ledger's ClusterIP; nothing in Kubernetes changes.
    line = f"query failed: dial tcp {cluster_ip}:5432: connect: connection refused"
    patch_world(
        world,
        world_keys,
        {f"images.{namespace}": json.dumps({image: {"error-ratio": "0.4", "error-message": line}})},
    )
    kube.apply(incident("ledger-down", "checkout"), namespace=namespace)

    def resolved(status: dict[str, Any]) -> bool:
        deps = (status.get("evidence") or {}).get("dependencies") or []
        named = bool(deps) and (deps[0].get("service") or {}).get("name") == "ledger"
        # The first refreshes may come before enough lines were logged to be more than thin evidence,
        # and before the error ratio has the few samples the symptom needs (no rule is asked before).
        return named and deps[0]["count"] >= 10 and status["hypotheses"][0]["category"] == "Dependency"

    status = wait_for_hypotheses(
        kube, namespace, "ledger-down", resolved, "Dependency: the ledger", timeout=90
    )
    dep = status["evidence"]["dependencies"][0]
    assert dep["host"] == f"{cluster_ip}:5432"
    assert dep["service"]["namespace"] == namespace
    assert dep["workload"]["kind"] == "Deployment"
    assert dep["workload"]["name"] == "ledger"
    assert f"{cluster_ip} is the ClusterIP of Service ledger" in dep["resolution"]
    assert dep["endpointsTotal"] == 2
    assert dep["endpointsReady"] == 2
    assert dep["replicas"] == 2
    assert "refused" in dep["failures"]
    hypothesis = status["hypotheses"][0]
    assert "Service ledger (Deployment ledger)" in hypothesis["statement"]
    assert "no automatic mitigation" in hypothesis["statement"]
    # The ledger did not change at the onset: nothing to roll back there, and the caller's rollback
    # would not help.
    assert hypothesis.get("suggestedMitigation") is None
