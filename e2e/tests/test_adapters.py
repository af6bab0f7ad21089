"""The I/O adapters against the real API server and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, deployment
from e2e.tests.test_workloads import ready_pods
from stanch.adapters.kube import KubeClient, KubeError, PatchType
from stanch.adapters.prometheus import PrometheusClient, PrometheusError


@pytest.mark.local_world("ready-pods")
async def test_kube_client_reads_pages_and_refuses_stale_writes(
    world: WorldInfo, kube: Kube, namespace: str
) -> None:
    kube.apply(deployment("api", replicas=3), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "api")) == 3, 60, "3 ready pods")
    async with KubeClient.from_env(operator_kubeconfig(world)) as client:
        pods = await client.list("Pod", namespace, label_selector="app=api")
        assert len(pods) == 3
        assert all(p["kind"] == "Pod" for p in pods)
        assert len(await client.list("Pod", namespace, limit=2)) == 2
        dep = await client.get("Deployment", "api", namespace)
        assert dep is not None
        assert await client.get("Deployment", "nope", namespace) is None

        # The resourceVersion we read is the precondition of every conditional patch.
        stale_rv = dep["metadata"]["resourceVersion"]
        await client.patch("Deployment", "api", namespace, {"spec": {"replicas": 4}}, "merge")
        cases: tuple[tuple[PatchType, Any], ...] = (
            ("merge", {"spec": {"replicas": 9}}),
            ("strategic", {"spec": {"replicas": 9}}),
            ("json", [{"op": "replace", "path": "/spec/replicas", "value": 9}]),
        )
        for patch_type, patch in cases:
            with pytest.raises(KubeError) as err:
                await client.patch(
                    "Deployment", "api", namespace, patch, patch_type, resource_version=stale_rv
                )
            assert err.value.status == 409, patch_type
            assert err.value.conflict
        # A value test (e.g. "the ConfigMap key still has the value we snapshotted") fails as a conflict.
        with pytest.raises(KubeError) as err:
            await client.patch(
                "Deployment",
                "api",
                namespace,
                [
                    {"op": "test", "path": "/spec/replicas", "value": 3},
                    {"op": "replace", "path": "/spec/replicas", "value": 9},
                ],
                "json",
            )
        assert err.value.conflict
        current = await client.get("Deployment", "api", namespace)
        assert current is not None
        assert current["spec"]["replicas"] == 4
        assert client.stats.by_verb["list"] >= 2


@pytest.mark.local_world("ready-pods", "simulator")
async def test_kube_client_reads_pod_logs(world: WorldInfo, kube: Kube, namespace: str) -> None:
    kube.apply(
        deployment("pay", replicas=1, annotations={"sim.stanch.dev/error-ratio": "0.5"}), namespace=namespace
    )
    pod = kube.wait_for(lambda: ready_pods(kube, namespace, "pay"), 60, "a ready pod")[0]["metadata"]["name"]
    async with KubeClient.from_env(operator_kubeconfig(world)) as client:

        async def errors() -> list[str]:
            try:
                text = await client.logs(pod, namespace, tail_lines=200)
            except KubeError:
                return []
            return [line for line in text.splitlines() if "ERROR" in line]

        for _ in range(60):
            lines = await errors()
            if lines:
                break
            await asyncio.sleep(0.5)
        assert lines, "no ERROR lines served through pods/log"
        assert lines[0][:4].isdigit(), "timestamps=true prefixes each line with its RFC3339 time"


async def test_prometheus_client_queries_and_types_failures(world: WorldInfo) -> None:
    prom = PrometheusClient(world.prometheus_url)
    try:
        result = await prom.query("up")
        assert result
        assert result[0].last == 1.0
        with pytest.raises(PrometheusError) as bad:
            await prom.query("sum(rate(")
        assert bad.value.kind == "bad_query"
    finally:
        await prom.close()
    dead = PrometheusClient("http://127.0.0.1:9", timeout=1.0)
    try:
        with pytest.raises(PrometheusError) as down:
            await dead.query("up")
        assert down.value.kind == "unreachable"
        assert not await dead.ready()
    finally:
        await dead.close()
