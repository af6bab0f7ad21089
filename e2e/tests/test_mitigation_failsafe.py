"""No data is not good news: Prometheus stopped during the bake leads to the configured fail-safe
(Revert, or Hold), never Succeeded. Dry-run records the plan and changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo
from e2e.cluster.processes import free_loopback_port, running, start_detached, stop
from e2e.cluster.prometheus import command, find_prometheus, render_config
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    shutdown,
    status,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods
from stanch.core.models import LOCK_ANNOTATION


def _own_prometheus(world: WorldInfo, tmp_path: Path) -> tuple[str, Path]:
    """A second Prometheus scraping the same simulator, ours to stop."""
    port = free_loopback_port()
    state = tmp_path / "prom-state"
    state.mkdir(parents=True)
    config = state / "prometheus.yml"
    assert world.simulator_url, "the local world runs the simulator"
    config.write_text(render_config(world.simulator_url.removeprefix("http://")))
    start_detached("prometheus", command(find_prometheus(), config, state / "data", port), state)
    url = f"http://127.0.0.1:{port}"
    Kube.wait_for(lambda: running("prometheus", state), 30, "prometheus running")
    return url, state


@pytest.mark.local_world("ready-pods", "simulator", "prometheus-process")
@pytest.mark.parametrize("no_data", ["Revert", "Hold"])
def test_prometheus_down_during_bake_is_never_success(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path, no_data: str
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    url, state = _own_prometheus(world, tmp_path)
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator", prometheus_url=url)
    try:
        time.sleep(24)  # the baseline window needs scrapes in our Prometheus
        operator.start()
        guard = {**FAST_GUARD, "bakeTime": "20s", "noData": no_data}
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}, guard), namespace=namespace)
        wait_phase(kube, namespace, "grow", {"Baking"}, 60)
        stop("prometheus", state)
        if no_data == "Revert":
            st = wait_phase(kube, namespace, "grow", {"Reverted"}, 60)
            assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 2
        else:
            # Hold: the change stays, the machine does not call it a success, and says why.
            time.sleep(30)
            st = status(kube, namespace, "grow")
            assert st["phase"] != "Succeeded", st
            assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 3
            # Ten or so held checks at a 3 s interval: one Hold in the audit trail and one Event,
            # while every check is still recorded.
            assert audit_events(st).count("Hold") == 1, audit_events(st)
            holds = [
                e
                for e in kube.events(namespace)
                if e["reason"] == "Hold" and e["involvedObject"].get("name") == "grow"
            ]
            assert [e.get("count", 1) for e in holds] == [1], holds
    finally:
        shutdown(operator, kube, namespace)
        stop("prometheus", state)
    assert "Succeeded" not in [a.get("toPhase") for a in st.get("audit") or []]
    checks = [o["check"] for o in st.get("observations") or []]
    assert "NoData" in checks, checks
    verdict = st.get("verdict") or {}
    assert verdict.get("result") != "Healthy", verdict


@pytest.mark.local_world("ready-pods")
def test_dry_run_records_the_plan_and_changes_nothing(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    before = deployment_state(kube, namespace, "web")
    # No policy at all: dry run is still allowed (default deny covers only real changes).
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("preview", "web", {"scale": {"replicas": 6}}, dryRun=True), namespace=namespace)
        st = wait_phase(kube, namespace, "preview", {"Succeeded"}, 60)
    finally:
        shutdown(operator, kube, namespace)
    plan = st["plan"]
    assert "6" in plan["summary"], plan
    assert plan["patch"] or plan["changes"]
    assert st["policy"]["decision"] == "Allow"
    after = deployment_state(kube, namespace, "web")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert LOCK_ANNOTATION not in (after["metadata"].get("annotations") or {})
    assert "Applied" not in audit_events(st)


def test_no_policy_denies_a_real_change(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    before = deployment_state(kube, namespace, "web")
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("sneaky", "web", {"scale": {"replicas": 6}}), namespace=namespace)
        st = wait_phase(kube, namespace, "sneaky", {"Rejected"}, 60)
    finally:
        shutdown(operator, kube, namespace)
    assert st["policy"]["decision"] == "Deny"
    assert st["policy"]["reasons"]
    after = deployment_state(kube, namespace, "web")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
