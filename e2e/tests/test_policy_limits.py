"""What a mitigation may introduce is limited by policy, on a real cluster with the real operator.

The staging policy (``e2e/tests/policies/staging.yaml``) allows canaries of its own registry's images
and toggling one key of the ``flags`` ConfigMap. A canary of another registry's image and a toggle
of another key end Rejected: the decision, the message and a Warning Event name the rule and the
limit; no canary exists, the Deployment and the ConfigMap are exactly as they were.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    shutdown,
    wait_phase,
)
from e2e.tests.test_policy_decisions import apply_policy_file, untouched
from e2e.tests.test_workloads import rollout_complete

pytestmark = pytest.mark.local_world("ready-pods")


def _events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.events(namespace)
        if e["involvedObject"].get("kind") == "Mitigation" and e["involvedObject"].get("name") == name
    ]


def _rejected(kube: Kube, namespace: str, name: str, rule: str) -> dict[str, Any]:
    st = wait_phase(kube, namespace, name, {"Rejected"}, 30)
    decision = st["policy"]
    assert (decision["decision"], decision["rule"]) == ("Deny", rule), decision
    assert decision["policy"] == f"MitigationPolicy/{namespace}/staging", decision
    assert audit_events(st) == ["PolicyDenied"]
    assert st.get("snapshot") is None, "nothing is snapshotted, locked or planned for a denied Mitigation"
    warnings = kube.wait_for(
        lambda: [e for e in _events(kube, namespace, name) if e["type"] == "Warning"], 15, "a Warning Event"
    )
    assert any(rule in e["message"] or decision["reasons"][0] in e["message"] for e in warnings), warnings
    return st


def test_a_canary_of_an_unlisted_image_and_a_toggle_of_an_unlisted_key_are_refused(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    apply_policy_file(kube, namespace, "staging.yaml")
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "flags"},
            "data": {"newcheckout": "true", "payments_provider": "primary"},
        },
        namespace=namespace,
    )
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "web rolled out")
    before = deployment_state(kube, namespace, "web")
    flags_before = kube.get("configmap", "flags", namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        foreign = {"canary": {"image": "docker.io/attacker/miner:latest", "replicas": 1}}
        kube.apply(mitigation("foreign-canary", "web", foreign), namespace=namespace)
        st = _rejected(kube, namespace, "foreign-canary", "actions[Canary].limits.canaryImages")
        assert (
            "docker.io/attacker/miner:latest matches none of limits.canaryImages (registry.example/*)"
            in (st["message"])
        )

        env = {
            "canary": {"image": "registry.example/app:1.1", "env": [{"name": "LD_PRELOAD", "value": "/x"}]}
        }
        kube.apply(mitigation("env-canary", "web", env), namespace=namespace)
        _rejected(kube, namespace, "env-canary", "actions[Canary].limits.canaryEnv")

        toggle = {"configToggle": {"configMap": "flags", "key": "payments_provider", "value": "attacker"}}
        kube.apply(mitigation("other-key", "web", toggle), namespace=namespace)
        st = _rejected(kube, namespace, "other-key", "actions[ConfigToggle].limits.configMaps")
        assert "key payments_provider of ConfigMap flags is not allowed by limits.configMaps" in st["message"]
        time.sleep(3)
        after = deployment_state(kube, namespace, "web")
        flags_after = kube.get("configmap", "flags", namespace=namespace)
        deployments = [d["metadata"]["name"] for d in kube.items("deployments", namespace)]
    finally:
        shutdown(operator, kube, namespace)
    untouched(before, after)
    assert flags_after["data"] == flags_before["data"]
    assert flags_after["metadata"]["resourceVersion"] == flags_before["metadata"]["resourceVersion"]
    assert deployments == ["web"], "no canary was created"
