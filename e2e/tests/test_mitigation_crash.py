"""The operator is SIGKILLed at each step of a mitigation and restarted: the mitigation completes
exactly once (one spec change of the Deployment, one Applied audit entry, replicas doubled once)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    status,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods


def _wait_for(kube: Kube, namespace: str, check: str, timeout: float = 60) -> dict[str, object]:
    """Poll fast: the kill must land right after the status shows the step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(kube, namespace, "double")
        phase = st.get("phase")
        intent = st.get("intent") or {}
        if check == "Baseline" and phase == "Baseline":
            return st
        if check == "Applying" and phase == "Applying" and intent.get("step") == "Apply":
            return st
        if check == "Baking" and phase == "Baking":
            return st
        if phase in {"Succeeded", "Reverted", "Failed", "NeedsAttention", "Rejected"}:
            raise AssertionError(f"reached {phase} before the kill point {check}: {st}")
        time.sleep(0.05)
    raise AssertionError(f"never saw {check}")


@pytest.mark.parametrize("kill_at", ["Baseline", "Applying", "Baking"])
def test_killed_operator_resumes_and_applies_once(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path, kill_at: str
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    generation = deployment_state(kube, namespace, "web")["metadata"]["generation"]
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "baselineWindow": "10s", "bakeTime": "10s"}
        kube.apply(mitigation("double", "web", {"scale": {"factor": 2}}, guard), namespace=namespace)
        _wait_for(kube, namespace, kill_at)
        operator.kill()
        seen_at_kill = deployment_state(kube, namespace, "web")["spec"]["replicas"]
        time.sleep(1)
        operator.start()
        st = wait_phase(kube, namespace, "double", {"Succeeded"}, 120)
    finally:
        operator.stop()

    dep = deployment_state(kube, namespace, "web")
    assert seen_at_kill in (2, 4)
    assert dep["spec"]["replicas"] == 4, "doubled once, never twice"
    assert dep["metadata"]["generation"] == generation + 1, "exactly one spec change"
    events = audit_events(st)
    assert events.count("Applied") == 1, events
    assert operator.starts == 2
