"""Prometheus sees the simulator's series for the pods that exist, and they follow the templates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.test_workloads import ready_pods, rollout_complete

pytestmark = pytest.mark.local_world("ready-pods", "simulator")


def query(world: WorldInfo, promql: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{world.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    resp.raise_for_status()
    body = resp.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(world: WorldInfo, promql: str) -> float | None:
    result = query(world, promql)
    return float(result[0]["value"][1]) if result else None


def error_ratio(ns: str, app: str) -> str:
    sel = f'namespace="{ns}",deployment="{app}"'
    return (
        f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[10s])) '
        f"/ sum(rate(http_requests_total{{{sel}}}[10s]))"
    )


def test_series_exist_for_the_pods_that_exist(world: WorldInfo, kube: Kube, namespace: str) -> None:
    assert world.simulator_url, "the workload simulator is part of the world"
    kube.apply(deployment("shop", replicas=3), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "shop")) == 3, 60, "3 ready pods")
    pods = {p["metadata"]["name"] for p in ready_pods(kube, namespace, "shop")}

    def series_pods() -> set[str]:
        res = query(world, f'count by (pod) (http_requests_total{{namespace="{namespace}"}})')
        return {r["metric"]["pod"] for r in res}

    kube.wait_for(lambda: series_pods() == pods, 30, "a series per pod")
    for metric in (
        "http_request_duration_seconds_bucket",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "kube_pod_container_status_restarts_total",
    ):
        assert query(world, f'{metric}{{namespace="{namespace}"}}'), metric


def test_error_ratio_follows_a_bad_rollout_and_its_undo(world: WorldInfo, kube: Kube, namespace: str) -> None:
    kube.apply(deployment("cart", replicas=3), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "cart"), 60, "revision 1")

    def ratio() -> float:
        value = scalar(world, error_ratio(namespace, "cart"))
        return -1.0 if value is None else value

    kube.wait_for(lambda: 0 <= ratio() < 0.05, 40, "a healthy error ratio")
    bad = deployment(
        "cart",
        replicas=3,
        image="registry.example/app:2.0",
        annotations={"sim.stanch.dev/error-ratio": "0.5"},
    )
    kube.apply(bad, namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "cart"), 60, "bad revision 2")
    kube.wait_for(lambda: ratio() > 0.3, 40, "the error ratio to rise")

    kube.run("rollout", "undo", "deployment/cart", "-n", namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "cart"), 60, "undo")
    kube.wait_for(lambda: 0 <= ratio() < 0.05, 40, "the error ratio to recover")


def test_pod_logs_come_through_the_pods_log_api(kube: Kube, namespace: str) -> None:
    kube.apply(
        deployment("pay", replicas=1, annotations={"sim.stanch.dev/error-ratio": "0.5"}), namespace=namespace
    )
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "pay")) == 1, 60, "a ready pod")
    pod = ready_pods(kube, namespace, "pay")[0]["metadata"]["name"]

    def error_lines() -> list[str]:
        if not kube.ok("logs", pod, "-n", namespace):
            return []
        return [line for line in kube.run("logs", pod, "-n", namespace).splitlines() if "ERROR" in line]

    lines = kube.wait_for(error_lines, 40, "ERROR lines in kubectl logs")
    assert "request_id=" in lines[0]
