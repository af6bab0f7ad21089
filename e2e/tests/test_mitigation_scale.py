"""A scale-down that overloads the remaining pods is judged Worse and reverted, exactly once; a
human edit during the bake stops the machine (NeedsAttention) without clobbering the edit."""

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
    effects_applied,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    status,
    wait_error_ratio,
    wait_phase,
    world_keys,
)
from e2e.tests.test_workloads import ready_pods
from stanch.core.models import LOCK_ANNOTATION

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

CAPACITY = {"sim.stanch.dev/capacity-rps": "100"}


def test_overloading_scale_down_is_reverted_once(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=4, annotations=CAPACITY), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 4, 60, "4 ready pods")
    with world_keys(kube, {f"traffic.{namespace}.web": "300"}):
        wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "healthy at 4 pods")
        settle()
        kube.apply(allow_all_policy(namespace), namespace=namespace)
        operator = fast_operator(world, namespace, tmp_path / "operator")
        operator.start()
        try:
            kube.apply(mitigation("shrink", "web", {"scale": {"replicas": 2}}), namespace=namespace)
            st = wait_phase(kube, namespace, "shrink", {"Reverted"}, 120)
        finally:
            shutdown(operator, kube, namespace)

    assert st["verdict"]["result"] == "Worse", st["verdict"]
    numbers = st["verdict"]["numbers"]
    assert numbers, "the verdict carries its numbers"
    assert numbers[0]["observed"] > numbers[0]["baseline"]
    events = audit_events(st)
    assert events.count("Applied") == 1, events
    assert events.count("Reverted") == 1, events
    dep = deployment_state(kube, namespace, "web")
    assert dep["spec"]["replicas"] == 4
    # One accepted write for the scale-down, one for its revert, across the operator's life.
    assert effects_applied(operator, "Apply") == 1
    assert effects_applied(operator, "Revert") == 1
    assert LOCK_ANNOTATION not in (dep["metadata"].get("annotations") or {})


def test_human_edit_during_bake_needs_attention_and_is_kept(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "bakeTime": "60s"}
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}, guard), namespace=namespace)
        wait_phase(kube, namespace, "grow", {"Baking"}, 60)
        kube.run("scale", "deployment/web", "--replicas=5", "-n", namespace)
        st = wait_phase(kube, namespace, "grow", {"NeedsAttention"}, 30)
        # Still NeedsAttention a few checks later: nothing reverts over the human's change.
        time.sleep(6)
        assert status(kube, namespace, "grow")["phase"] == "NeedsAttention"
    finally:
        shutdown(operator, kube, namespace)
    assert st["drift"]["diff"], st.get("drift")
    assert "replicas" in st["drift"]["diff"]
    assert "Reverted" not in audit_events(st)
    assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 5
