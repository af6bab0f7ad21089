"""The evidence cache against the real API server: it follows pods and Events through list and watch,
resumes a watch the server closed without listing again, and gives the investigation exactly the
evidence that listing gives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, deployment
from e2e.tests.test_workloads import ready_pods
from stanch.adapters.evidence import EvidenceRequest, collect
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.adapters.watch_cache import EvidenceCache, WatchedObjects
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES


async def eventually(check: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        await asyncio.sleep(0.2)


def versions(objs: list[dict[str, Any]] | None) -> dict[str, str]:
    assert objs is not None
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objs}


def core_event(name: str, type_: str, reason: str, pod: str, namespace: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "type": type_,
        "reason": reason,
        "message": f"{reason} for {pod}",
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace, "apiVersion": "v1"},
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "e2e"},
    }


@pytest.mark.local_world("ready-pods")
async def test_the_cache_follows_pods_and_events_and_matches_listing(
    world: WorldInfo, kube: Kube, namespace: str
) -> None:
    async with KubeClient.from_env(operator_kubeconfig(world)) as client:
        cache = EvidenceCache(KubeClient.from_env(operator_kubeconfig(world)), [namespace])
        cache.start()
        try:
            async with asyncio.timeout(20):
                assert await cache.wait_ready()
            assert cache.pods(namespace) == []
            assert cache.pods("default") is None, "only the namespaces it was given"

            kube.apply(deployment("api", replicas=3), namespace=namespace)
            kube.wait_for(lambda: len(ready_pods(kube, namespace, "api")) == 3, 60, "3 ready pods")
            listed: dict[str, str] = {}

            def same_as_listed() -> bool:
                return versions(cache.pods(namespace)) == listed

            async def converged(what: str) -> None:
                async def check() -> bool:
                    listed.clear()
                    listed.update(versions(await client.list("Pod", namespace)))
                    return same_as_listed()

                deadline = asyncio.get_running_loop().time() + 20
                while not await check():
                    assert asyncio.get_running_loop().time() < deadline, f"cache never matched {what}"
                    await asyncio.sleep(0.2)

            await converged("three ready pods")
            assert len(listed) == 3
            assert all("managedFields" not in p["metadata"] for p in cache.pods(namespace) or []), (
                "stored slim"
            )

            kube.run("scale", "deployment/api", "--replicas=1", "-n", namespace)
            kube.wait_for(lambda: len(kube.items("pod", namespace, "app=api")) == 1, 60, "scale down to 1")
            await converged("the scale-down (deletes)")

            survivor = next(iter(listed))
            kube.apply(core_event("w-1", "Warning", "BackOff", survivor, namespace), namespace=namespace)
            kube.apply(core_event("n-1", "Normal", "Pulled", survivor, namespace), namespace=namespace)

            def event_names() -> set[str]:
                return {e["metadata"]["name"] for e in cache.events(namespace) or []}

            await eventually(lambda: "w-1" in event_names(), 20, "the Warning Event")
            assert "n-1" not in event_names(), "a Normal pod Event is not what the collector reads"
            reasons = {(e["involvedObject"]["kind"], e["reason"]) for e in cache.events(namespace) or []}
            assert ("Deployment", "ScalingReplicaSet") in reasons, reasons

            # The investigation's evidence is the same from memory as from lists.
            prometheus = PrometheusClient(world.prometheus_url)
            try:
                now = datetime.now(UTC)
                request = EvidenceRequest(
                    namespace, "api", now, now - timedelta(minutes=2), timedelta(minutes=5)
                )
                by_list = await collect(client, prometheus, request, DEFAULT_SIGNAL_TEMPLATES)
                by_memory = await collect(client, prometheus, request, DEFAULT_SIGNAL_TEMPLATES, memory=cache)
            finally:
                await prometheus.close()
            assert by_memory.from_memory == ("pods", "events")
            assert by_list.from_memory == ()
            assert by_memory.evidence.pod_health == by_list.evidence.pod_health
            assert by_memory.evidence.pod_health.total == 1
            assert by_memory.evidence.events_by_reason == by_list.evidence.events_by_reason
            assert {e.reason for e in by_memory.evidence.events_by_reason} >= {"BackOff", "ScalingReplicaSet"}
        finally:
            await cache.stop()
        assert cache.pods(namespace) is None, "a stopped cache vouches for nothing"


async def test_a_watch_the_server_closes_resumes_without_listing_again(
    world: WorldInfo, kube: Kube, namespace: str
) -> None:
    async with KubeClient.from_env(operator_kubeconfig(world)) as client:
        store = WatchedObjects(client, "Pod", namespace, watch_seconds=1)
        task = asyncio.create_task(store.run())
        try:
            await eventually(lambda: store.ready, 20, "the first list")
            before = client.stats.by_verb.get("watch", 0)
            await eventually(
                lambda: client.stats.by_verb.get("watch", 0) >= before + 2, 20, "two watch restarts"
            )
            kube.apply(deployment("web", replicas=2), namespace=namespace)
            await eventually(
                lambda: len(store.items(namespace) or []) == 2, 60, "the new pods, seen by a resumed watch"
            )
            assert store.state().lists == 1, (
                "a closed stream resumes from its version; it does not list again"
            )
            assert store.state().problem is None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
