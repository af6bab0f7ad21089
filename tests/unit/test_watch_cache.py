"""The evidence cache's list-and-watch loop against a scripted client: what it keeps, how it resumes,
and that it serves nothing it cannot vouch for. The real API server proves it in
e2e/tests/test_evidence_cache.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from stanch.adapters.kube import KubeClient, KubeError
from stanch.adapters.watch_cache import EvidenceCache, WatchedObjects, keep_event, slim

Script = list[tuple[str, dict[str, Any]]] | BaseException


def obj(name: str, namespace: str = "shop", rv: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "managedFields": [{}]},
        **extra,
    }


def event(name: str, type_: str, kind: str, rv: str = "1", namespace: str = "shop") -> dict[str, Any]:
    return obj(name, namespace, rv, type=type_, involvedObject={"kind": kind, "name": "x"})


class ScriptedKube:
    """Lists and watch streams handed out in order; once the scripts run out a watch stays open."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str] | BaseException], watches: list[Script]):
        self.lists = lists
        self.watches = watches
        self.listed = 0
        self.watched_from: list[str] = []

    async def list_versioned(
        self, kind: str, namespace: str | None = None, **_: Any
    ) -> tuple[list[dict[str, Any]], str]:
        self.listed += 1
        item = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(item, BaseException):
            raise item
        items, version = item
        return [dict(o, metadata=dict(o["metadata"])) for o in items], version

    async def watch(
        self, kind: str, namespace: str | None = None, *, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watched_from.append(resource_version)
        if not self.watches:
            await asyncio.Event().wait()
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        for type_, o in script:
            yield type_, dict(o, metadata=dict(o["metadata"]))


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling a plain predicate of a fake, briefly
            await asyncio.sleep(0.001)


def store(kube: ScriptedKube, **kwargs: Any) -> WatchedObjects:
    kwargs.setdefault("retry_seconds", 0.01)
    return WatchedObjects(cast(KubeClient, kube), "Pod", None, **kwargs)


@contextlib.asynccontextmanager
async def running(s: WatchedObjects, check: Callable[[], bool]) -> AsyncIterator[None]:
    """The store's loop, running until ``check`` holds and while the body looks at the store."""
    task = asyncio.create_task(s.run())
    try:
        await until(check)
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not s.ready  # a stopped store vouches for nothing


def names(items: list[dict[str, Any]] | None) -> list[str]:
    assert items is not None
    return sorted(o["metadata"]["name"] for o in items)


async def test_list_then_watch_follows_adds_changes_and_deletes() -> None:
    kube = ScriptedKube(
        [([obj("a"), obj("b"), obj("c", namespace="other")], "10")],
        [
            [
                ("ADDED", obj("d", rv="11")),
                ("MODIFIED", obj("a", rv="12", status={"phase": "Failed"})),
                ("DELETED", obj("b", rv="13")),
            ]
        ],
    )
    s = store(kube)
    assert s.items("shop") is None  # nothing listed yet: no vouching for anything
    async with running(s, lambda: kube.watched_from[-1:] == ["13"]):
        assert kube.watched_from == ["10", "13"]  # resumed from the last version seen
        assert names(s.items("shop")) == ["a", "d"]
        assert names(s.items("other")) == ["c"]
        shop = {o["metadata"]["name"]: o for o in s.items("shop") or []}
        assert shop["a"]["status"] == {"phase": "Failed"}
        assert "managedFields" not in shop["a"]["metadata"]
        assert s.state().objects == 3


async def test_a_bookmark_moves_the_resume_point_and_changes_nothing() -> None:
    kube = ScriptedKube([([obj("a")], "10")], [[("BOOKMARK", {"metadata": {"resourceVersion": "50"}})]])
    s = store(kube)
    async with running(s, lambda: len(kube.watched_from) == 2):
        assert kube.watched_from == ["10", "50"]
        assert names(s.items("shop")) == ["a"]


@pytest.mark.parametrize(
    "expiry",
    [
        [("ERROR", {"metadata": {}, "code": 410, "reason": "Expired", "message": "too old"})],
        KubeError(410, "Gone", "too old resource version"),
    ],
    ids=["error-event", "http-410"],
)
async def test_an_expired_version_lists_again(expiry: Script) -> None:
    kube = ScriptedKube([([obj("a")], "10"), ([obj("b")], "90")], [expiry])
    problems: list[str] = []
    s = store(kube, on_problem=lambda k, ns, what: problems.append(what))
    async with running(s, lambda: kube.watched_from[-1:] == ["90"]):
        assert kube.listed == 2
        assert names(s.items("shop")) == ["b"]  # the new list replaced the old objects wholesale
        assert problems == []  # routine, not a problem


async def test_a_failing_watch_serves_nothing_until_it_has_listed_again() -> None:
    kube = ScriptedKube(
        [([obj("a")], "10"), KubeError(503, "ServiceUnavailable", "etcd down"), ([obj("b")], "20")],
        [KubeError(500, "InternalError", "watch broke")],
    )
    problems: list[str] = []
    s = store(kube, on_problem=lambda k, ns, what: problems.append(what), retry_seconds=0.05)
    task = asyncio.create_task(s.run())
    try:
        await until(lambda: bool(problems))
        assert s.items("shop") is None
        assert "500 InternalError: watch broke" in problems[0]
        await until(lambda: kube.watched_from[-1:] == ["20"])
        assert names(s.items("shop")) == ["b"]
        assert "503" in problems[1]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_forbidden_says_which_permission_is_missing() -> None:
    kube = ScriptedKube([KubeError(403, "Forbidden", "pods is forbidden")], [])
    problems: list[str] = []
    s = store(kube, on_problem=lambda k, ns, what: problems.append(what), retry_seconds=10)
    async with running(s, lambda: bool(problems)):
        assert s.items("shop") is None
    assert "RBAC does not allow list and watch" in problems[0]


async def test_outgrowing_the_cap_stops_serving_for_good() -> None:
    kube = ScriptedKube([([obj("a"), obj("b")], "10")], [[("ADDED", obj("c", rv="11"))]])
    problems: list[str] = []
    s = store(kube, max_objects=2, on_problem=lambda k, ns, what: problems.append(what))
    task = asyncio.create_task(s.run())
    await until(task.done)
    assert s.items("shop") is None
    assert not s.ready
    assert "more than 2 Pod objects" in problems[0]
    assert s.state().objects == 0  # the memory is given back


async def test_a_list_over_the_cap_never_becomes_ready() -> None:
    kube = ScriptedKube([([obj("a"), obj("b"), obj("c")], "10")], [])
    s = store(kube, max_objects=2)
    task = asyncio.create_task(s.run())
    await until(task.done)
    assert s.items("shop") is None


def test_only_the_events_the_collector_reads_are_kept() -> None:
    assert keep_event(event("w", "Warning", "Pod")) is not None
    assert keep_event(event("d", "Normal", "Deployment")) is not None
    assert keep_event(event("r", "Normal", "ReplicaSet")) is not None
    assert keep_event(event("p", "Normal", "Pod")) is None
    kept = keep_event(event("w", "Warning", "Node"))
    assert kept is not None
    assert "managedFields" not in kept["metadata"]
    assert slim({"metadata": {"name": "x"}}) == {"metadata": {"name": "x"}}


async def test_an_event_that_stops_qualifying_is_forgotten() -> None:
    kube = ScriptedKube(
        [([event("e", "Warning", "Pod")], "10")],
        [[("MODIFIED", event("e", "Normal", "Pod", rv="11"))]],
    )
    s = WatchedObjects(cast(KubeClient, kube), "Event", None, keep=keep_event, retry_seconds=0.01)
    async with running(s, lambda: kube.watched_from[-1:] == ["11"]):
        assert s.items("shop") == []
        assert s.state().objects == 0


async def test_a_namespaced_cache_answers_only_for_its_namespaces() -> None:
    kube = ScriptedKube([([obj("a")], "10")], [])
    cache = EvidenceCache(cast(KubeClient, kube), ["shop"])
    assert cache.pods("shop") is None  # not started: lists, as before
    cache.start()
    try:
        async with asyncio.timeout(2):
            assert await cache.wait_ready()
        assert names(cache.pods("shop")) == ["a"]
        assert cache.pods("billing") is None  # not watched: the collector lists it
        assert cache.events("shop") is not None
    finally:
        await cache.stop()
    assert all(not s.ready for s in cache.stores)


async def test_a_cluster_wide_cache_answers_for_every_namespace() -> None:
    kube = ScriptedKube([([obj("a"), obj("z", namespace="billing")], "10")], [])
    cache = EvidenceCache(cast(KubeClient, kube), None)
    cache.start()
    try:
        async with asyncio.timeout(2):
            await cache.wait_ready()
        assert names(cache.pods("billing")) == ["z"]
        assert cache.pods("empty") == []
    finally:
        await cache.stop()


async def test_the_operator_metrics_show_each_store_as_it_is_at_scrape_time() -> None:
    from prometheus_client import generate_latest

    from stanch.wiring.metrics import Metrics

    kube = ScriptedKube([([obj("a"), obj("b")], "10")], [])
    cache = EvidenceCache(cast(KubeClient, kube), ["shop"])
    metrics = Metrics()
    metrics.observe_cache(cache.stores)
    before = generate_latest(metrics.registry).decode()
    assert 'stanch_evidence_cache_ready{kind="Pod",scope="shop"} 0.0' in before
    cache.start()
    try:
        async with asyncio.timeout(2):
            await cache.wait_ready()
        after = generate_latest(metrics.registry).decode()
        assert 'stanch_evidence_cache_ready{kind="Pod",scope="shop"} 1.0' in after
        assert 'stanch_evidence_cache_objects{kind="Pod",scope="shop"} 2.0' in after
    finally:
        await cache.stop()


async def test_a_stream_that_closes_at_once_is_not_reopened_in_a_tight_loop() -> None:
    kube = ScriptedKube([([obj("a")], "10")], [[], [], [], [], [], []])
    s = store(kube, retry_seconds=0.2)
    async with running(s, lambda: len(kube.watched_from) >= 2):
        await asyncio.sleep(0.3)
        assert len(kube.watched_from) <= 3, kube.watched_from
        assert names(s.items("shop")) == ["a"]


async def test_the_cap_is_shared_by_every_namespace_of_a_kind() -> None:
    class PerNamespace(ScriptedKube):
        async def list_versioned(
            self, kind: str, namespace: str | None = None, **_: Any
        ) -> tuple[list[dict[str, Any]], str]:
            if namespace == "big":
                return [obj("x", "big"), obj("y", "big")], "10"
            return [obj("a", namespace or "")], "10"

    problems: list[tuple[str, str | None]] = []
    kube = PerNamespace([([], "0")], [])
    cache = EvidenceCache(
        cast(KubeClient, kube),
        ["shop", "big"],
        max_pods=2,
        on_problem=lambda k, ns, _: problems.append((k, ns)),
    )
    cache.start()
    try:
        await until(lambda: bool(problems) and cache.pods("shop") is not None)
        # shop's one pod fits; big's two would make three: big lists instead, shop keeps serving.
        assert problems == [("Pod", "big")]
        assert names(cache.pods("shop")) == ["a"]
        assert cache.pods("big") is None
        assert [s.state().objects for s in cache.stores if s.kind == "Pod"] == [1, 0]
    finally:
        await cache.stop()
