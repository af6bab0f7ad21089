"""Canary fixes (promoted when better, aborted when worse) and config toggles (kept when better,
reverted to the previous value when worse), against the real API server and the simulator."""

from __future__ import annotations

import json
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
    settle,
    shutdown,
    wait_error_ratio,
    wait_phase,
    world_keys,
)
from e2e.tests.test_workloads import ready_pods

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

FLAGGED = {
    "sim.stanch.dev/config-map": "flags",
    "sim.stanch.dev/flag.newcheckout": "error-ratio=0.4",
}


def _flags(kube: Kube, namespace: str, value: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags"},
        "data": {"newcheckout": value},
    }
    kube.apply(cm, namespace=namespace)


def _flag(kube: Kube, namespace: str) -> str:
    value: str = kube.get("configmap", "flags", namespace)["data"]["newcheckout"]
    return value


def test_config_toggle_kept_when_better_and_reverted_when_worse(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    _flags(kube, namespace, "true")
    kube.apply(deployment("shop", replicas=2, annotations=FLAGGED), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "shop")) == 2, 60, "2 ready pods")
    wait_error_ratio(world.prometheus_url, namespace, "shop", lambda v: v > 0.25, 60, "flag errors")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        off = {"configToggle": {"configMap": "flags", "key": "newcheckout", "value": "false"}}
        kube.apply(mitigation("flag-off", "shop", off), namespace=namespace)
        st = wait_phase(kube, namespace, "flag-off", {"Succeeded"}, 90)
        assert _flag(kube, namespace) == "false"
        assert st["verdict"]["result"] == "Healthy", st["verdict"]
        wait_error_ratio(world.prometheus_url, namespace, "shop", lambda v: v < 0.05, 60, "errors gone")
        settle()

        on = {"configToggle": {"configMap": "flags", "key": "newcheckout", "value": "true"}}
        kube.apply(mitigation("flag-on", "shop", on), namespace=namespace)
        st = wait_phase(kube, namespace, "flag-on", {"Reverted"}, 90)
    finally:
        shutdown(operator, kube, namespace)
    assert st["verdict"]["result"] == "Worse", st["verdict"]
    assert _flag(kube, namespace) == "false", "the previous value is restored"
    assert audit_events(st).count("Reverted") == 1


def test_bad_canary_is_aborted_and_the_stable_workload_untouched(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    bad = f"registry.example/{namespace}/api:3.0"
    images = {bad: {"error-ratio": "0.5"}}
    kube.apply(deployment("api", replicas=3), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "api")) == 3, 60, "3 ready pods")
    wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    before = deployment_state(kube, namespace, "api")
    with world_keys(kube, {f"images.{namespace}": json.dumps(images)}):
        kube.apply(allow_all_policy(namespace), namespace=namespace)
        operator = fast_operator(world, namespace, tmp_path / "operator")
        operator.start()
        try:
            canary = {"canary": {"image": bad, "replicas": 1}}
            kube.apply(mitigation("try-3", "api", canary, FAST_GUARD), namespace=namespace)
            st = wait_phase(kube, namespace, "try-3", {"Reverted"}, 120)
        finally:
            shutdown(operator, kube, namespace)
    assert st["verdict"]["result"] == "Worse", st["verdict"]
    assert st["canary"]
    kube.wait_for(
        lambda: not kube.ok("get", "deployment", st["canary"], "-n", namespace), 30, "canary removed"
    )
    after = deployment_state(kube, namespace, "api")
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["spec"]["replicas"] == 3


def test_good_canary_is_promoted_into_the_workload(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    broken, fixed = f"registry.example/{namespace}/api:2.0", f"registry.example/{namespace}/api:2.1"
    images = {broken: {"error-ratio": "0.4"}}
    with world_keys(kube, {f"images.{namespace}": json.dumps(images)}):
        kube.apply(deployment("api", replicas=3, image=broken), namespace=namespace)
        kube.wait_for(lambda: len(ready_pods(kube, namespace, "api")) == 3, 60, "3 ready pods")
        wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v > 0.25, 60, "the broken image")
        settle()
        kube.apply(allow_all_policy(namespace), namespace=namespace)
        operator = fast_operator(world, namespace, tmp_path / "operator")
        operator.start()
        try:
            canary = {"canary": {"image": fixed, "replicas": 1}}
            kube.apply(mitigation("fix-21", "api", canary), namespace=namespace)
            st = wait_phase(kube, namespace, "fix-21", {"Succeeded"}, 120)
        finally:
            shutdown(operator, kube, namespace)
        assert st["verdict"]["result"] == "Healthy", st["verdict"]
        assert "Promoted" in audit_events(st)
        dep = deployment_state(kube, namespace, "api")
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == fixed
        kube.wait_for(
            lambda: not kube.ok("get", "deployment", st["canary"], "-n", namespace), 30, "canary removed"
        )
        wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v < 0.05, 90, "the fix rolled out")
