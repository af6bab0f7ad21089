"""Policies against the real API server and the real operator process: admission rejects malformed
policies, the operator reports semantic problems in status and an invalid policy allows nothing,
and two Incidents about one bad deploy produce exactly one automatic Mitigation."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.test_investigation import (  # noqa: F401 - fixtures
    baseline,
    incident,
    investigation_env,
    stanch_op,
    top,
    wait_for_hypotheses,
)
from e2e.tests.test_workloads import rollout_complete

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "policies"


def example(name: str, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    obj["metadata"]["namespace"] = namespace
    return obj


def valid_condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = kube.get("mitigationpolicy", name, namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Valid"), None)


def test_admission_rejects_a_malformed_policy(kube: Kube, namespace: str, crds_installed: None) -> None:
    policy = example("production-manual-approval.yaml", namespace)
    policy["spec"]["freezeWindows"][0]["schedule"]["duration"] = "200h"
    with pytest.raises(AssertionError, match="at most 168h"):
        kube.apply(policy, namespace=namespace)
    duplicate = example("staging-auto-rollback.yaml", namespace)
    duplicate["spec"]["actions"].append({"action": "Rollback", "tier": "Forbidden"})
    with pytest.raises(AssertionError, match="Duplicate value"):
        kube.apply(duplicate, namespace=namespace)


def test_valid_policy_is_reported_valid(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.apply(example("staging-auto-rollback.yaml", namespace), namespace=namespace)
    condition = kube.wait_for(lambda: valid_condition(kube, namespace, "default"), 30, "the Valid condition")
    assert condition["status"] == "True", condition
    assert "Rollback=Auto" in condition["message"]
    status = kube.get("mitigationpolicy", "default", namespace)["status"]
    assert status["observedGeneration"] == 1
    # Kopf's diff base lives in status.kopf (preserve-unknown): without it every resume is an update.
    assert "lastHandledConfiguration" in status["kopf"], status


def test_invalid_policy_is_reported_and_allows_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(deployment("checkout", replicas=2), namespace=namespace)
    policy = example("staging-auto-rollback.yaml", namespace)
    policy["spec"]["signals"] = [
        {"name": "errors", "kind": "ErrorRatio", "query": 'sum(rate(x{namespace="{{ns}}"}[1m]))'}
    ]
    kube.apply(policy, namespace=namespace)
    condition = kube.wait_for(lambda: valid_condition(kube, namespace, "default"), 30, "the Valid condition")
    assert condition["status"] == "False", condition
    assert condition["reason"] == "UnknownPlaceholder"
    assert "spec.signals[0].query" in condition["message"]

    mitigation = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": "scale-up", "annotations": {"stanch.dev/requested-by": "alice"}},
        "spec": {"target": {"name": "checkout"}, "scale": {"replicas": 3}},
    }
    kube.apply(mitigation, namespace=namespace)

    def decided() -> dict[str, Any] | None:
        status = kube.get("mitigation", "scale-up", namespace).get("status") or {}
        return status if status.get("policy") else None

    status = kube.wait_for(decided, 30, "a policy decision")
    assert status["policy"]["decision"] == "Deny", status["policy"]
    assert status["policy"]["rule"] == "defaultDeny"
    assert "no valid policy allows it" in status["policy"]["reasons"][0]
    # The annotation is a claim; the requester the admission policy checked is the one recorded.
    assert status["requestedBy"] == kube.username(), status["requestedBy"]
    assert status["requester"]["username"] == kube.username(), status
    assert kube.get("deployment", "checkout", namespace)["spec"]["replicas"] == 2


@pytest.mark.local_world("ready-pods", "simulator")
@pytest.mark.usefixtures("stanch_op")
def test_two_incidents_on_one_target_create_one_mitigation(kube: Kube, namespace: str) -> None:
    policy = example("staging-auto-rollback.yaml", namespace)
    policy["spec"]["autoMitigation"][0]["minConfidence"] = 50
    kube.apply(policy, namespace=namespace)
    baseline(kube, namespace, deployment("checkout", replicas=3, image="registry.example/checkout:1.4.2"))
    bad = deployment(
        "checkout",
        replicas=3,
        image="registry.example/checkout:1.5.0",
        annotations={"sim.stanch.dev/error-ratio": "0.4"},
    )
    kube.apply(bad, namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "checkout"), 60, "rollout of revision 2")
    time.sleep(10)
    for name in ("checkout-5xx", "checkout-latency"):
        manifest = copy.deepcopy(incident(name, "checkout"))
        manifest["spec"]["mitigation"] = {"mode": "Auto"}
        kube.apply(manifest, namespace=namespace)
    for name in ("checkout-5xx", "checkout-latency"):
        wait_for_hypotheses(
            kube,
            namespace,
            name,
            lambda s: top(s)["category"] == "RecentDeploy",
            "the deploy to be blamed",
            60,
        )

    def created() -> list[dict[str, Any]]:
        return kube.items("mitigations", namespace, "stanch.dev/created-by=policy")

    kube.wait_for(created, 30, "an automatic Mitigation")
    time.sleep(8)  # both Incidents have been refreshed several times by now
    mitigations = created()
    assert len(mitigations) == 1, [m["metadata"]["name"] for m in mitigations]
    m = mitigations[0]
    owner = m["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Incident"
    assert m["metadata"]["name"].startswith(f"{owner['name']}-auto-rollback-")
    assert (
        m["metadata"]["annotations"]["stanch.dev/created-by"]
        == f"policy:{namespace}/default#autoMitigation[0]"
    )
    assert m["spec"]["rollback"] == {"toRevision": 1}, "parameters come from the hypothesis"
    incident_status = kube.get("incident", owner["name"], namespace)["status"]
    listed = {e["name"]: e for e in incident_status.get("mitigations") or []}
    assert listed[m["metadata"]["name"]].get("createdBy") == f"policy:{namespace}/default#autoMitigation[0]"
