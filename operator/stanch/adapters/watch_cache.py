"""Pods and Events kept current in memory by one list and a watch each, for the investigation.

At 1,000 pods and 10,000 Events, listing them on every refresh was most of an investigation's
time: the API server encodes megabytes of JSON and the operator decodes them, on every refresh of
every Incident. A watch pays for the list once, then only for what changes, and a refresh reads
memory. This is a client-go informer's reflector in small: list, watch from the list's
resourceVersion, resume a closed stream from the last version seen (bookmarks keep that version
fresh), list again when the server answers 410 (the version is too old).

Only what the collector reads is kept: pods without their managedFields, and the Events it asks
for (Warnings, and any Event of a Deployment or ReplicaSet). A store that is not yet listed, that is
recovering from an error, or that outgrew its cap answers ``None``, and the collector lists as it
always did; memory never serves evidence it cannot vouch for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stanch.adapters.kube import KubeClient, KubeError

Keep = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What to store of a watched object (None: not this one)."""
OnProblem = Callable[[str, str | None, str], None]
"""Told (kind, namespace or None for all, what went wrong) when a store stops serving."""

# Per kind, over all watched namespaces, so the cache fits the shipped Deployment's 512 MiB limit
# with room for the operator itself (~105 MiB): measured in Python, a kwok pod without
# managedFields takes 13 KiB and a kept Event 2.5 KiB; production pods with several containers,
# env and volumes take two to four times that. 5,000 pods at up to ~40 KiB and 20,000 Events at
# ~2.5 KiB stay under ~250 MiB. A refresh reads at most 5,000 pods and 5,000 Events a selection.
DEFAULT_MAX_PODS = 5_000
DEFAULT_MAX_EVENTS = 20_000
EVENT_KINDS_KEPT = frozenset({"Deployment", "ReplicaSet"})


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without managedFields: often a third of a pod's size, and nothing reads it."""
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def keep_event(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The Events the collector selects: Warnings of anything, any Event of a Deployment or
    ReplicaSet (ScalingReplicaSet dates a rollout). Normal pod Events are most of the volume."""
    involved = (obj.get("involvedObject") or {}).get("kind")
    if obj.get("type") == "Warning" or involved in EVENT_KINDS_KEPT:
        return slim(obj)
    return None


class Budget:
    """How many objects of one kind all its stores may hold together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class _ExpiredError(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class _OverflowError(Exception):
    pass


@dataclass(frozen=True)
class StoreState:
    kind: str
    namespace: str | None
    ready: bool
    objects: int
    lists: int
    problem: str | None


class WatchedObjects:
    """One kind in one scope (a namespace, or every namespace when ``namespace`` is None)."""

    def __init__(
        self,
        kube: KubeClient,
        kind_name: str,
        namespace: str | None = None,
        *,
        keep: Keep = slim,
        max_objects: int = DEFAULT_MAX_PODS,
        budget: Budget | None = None,
        on_problem: OnProblem | None = None,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        watch_seconds: int = 300,
    ) -> None:
        self.kube = kube
        self.kind = kind_name
        self.namespace = namespace
        self._keep = keep
        self._budget = budget or Budget(max_objects)
        self._on_problem = on_problem
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._watch_seconds = watch_seconds
        self._by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        self._count = 0
        self._ready = False
        self._lists = 0
        self._problem: str | None = None
        self._synced = asyncio.Event()

    # ---- reading -------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._ready

    def covers(self, namespace: str) -> bool:
        return self.namespace is None or self.namespace == namespace

    def items(self, namespace: str) -> list[dict[str, Any]] | None:
        """The namespace's objects, or None when this store cannot vouch for them right now."""
        if not self._ready or not self.covers(namespace):
            return None
        return list(self._by_ns.get(namespace, {}).values())

    def state(self) -> StoreState:
        return StoreState(self.kind, self.namespace, self._ready, self._count, self._lists, self._problem)

    async def wait_ready(self) -> None:
        await self._synced.wait()

    # ---- keeping current -------------------------------------------------------------------------
    async def run(self) -> None:
        """List and watch until cancelled. Errors are retried with backoff; an overflow stops it."""
        delay = self._retry
        while True:
            try:
                version = await self._relist()
                delay = self._retry
                while True:
                    began = time.monotonic()
                    resumed_from = version
                    version = await self._watch(version)
                    if version == resumed_from and time.monotonic() - began < 1.0:
                        # A stream closed at once with nothing in it: never spin on the API server.
                        await asyncio.sleep(self._retry)
            except _ExpiredError:
                self._ready = False
                continue
            except _OverflowError:
                self._drop(
                    f"more than {self._budget.limit} {self.kind} objects to keep (all watched namespaces"
                    " together); the investigation lists them on every refresh instead"
                )
                return
            except asyncio.CancelledError:
                self._ready = False
                raise
            except Exception as exc:  # any failure: serve nothing stale, list again after a pause
                self._drop(_describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry)

    def _drop(self, problem: str) -> None:
        self._ready = False
        self._by_ns = {}
        self._budget.used -= self._count
        self._count = 0
        self._problem = problem
        if self._on_problem is not None:
            self._on_problem(self.kind, self.namespace, problem)

    async def _relist(self) -> str:
        items, version = await self.kube.list_versioned(self.kind, self.namespace, cached=True)
        self._lists += 1
        by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        count = 0
        for obj in items:
            kept = self._keep(obj)
            if kept is None:
                continue
            meta = kept.get("metadata", {})
            by_ns.setdefault(meta.get("namespace", ""), {})[meta.get("name", "")] = kept
            count += 1
            if self._budget.used - self._count + count > self._budget.limit:
                raise _OverflowError
        self._budget.used += count - self._count
        self._by_ns, self._count = by_ns, count
        self._ready = True
        self._problem = None
        self._synced.set()
        return version

    async def _watch(self, version: str) -> str:
        try:
            async for kind, obj in self.kube.watch(
                self.kind, self.namespace, resource_version=version, timeout_seconds=self._watch_seconds
            ):
                meta = obj.get("metadata") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _ExpiredError
                    raise KubeError(
                        int(obj.get("code") or 0), str(obj.get("reason", "")), str(obj.get("message", ""))
                    )
                version = meta.get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self._remove(meta)
                    continue
                kept = self._keep(obj)
                if kept is None:
                    self._remove(meta)  # e.g. an Event that no longer qualifies
                else:
                    self._put(meta, kept)
        except KubeError as exc:
            if exc.status == 410:
                raise _ExpiredError from exc
            raise
        return version

    def _put(self, meta: dict[str, Any], obj: dict[str, Any]) -> None:
        bucket = self._by_ns.setdefault(meta.get("namespace", ""), {})
        name = meta.get("name", "")
        if name not in bucket:
            if self._budget.used >= self._budget.limit:
                raise _OverflowError
            self._count += 1
            self._budget.used += 1
        bucket[name] = obj

    def _remove(self, meta: dict[str, Any]) -> None:
        bucket = self._by_ns.get(meta.get("namespace", ""))
        if bucket is not None and bucket.pop(meta.get("name", ""), None) is not None:
            self._count -= 1
            self._budget.used -= 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KubeError):
        hint = " (RBAC does not allow list and watch)" if exc.forbidden else ""
        return f"{exc.status} {exc.reason}: {exc.message}"[:300] + hint
    return f"{type(exc).__name__}: {exc}"[:300]


class EvidenceCache:
    """Pods and Events for the collector, per namespace, from memory when a store is ready.

    ``namespaces`` None watches every namespace (an operator run with ``--all-namespaces``);
    otherwise one store per kind and namespace, so a namespaced operator needs no cluster-wide
    list or watch permission.
    """

    def __init__(
        self,
        kube: KubeClient,
        namespaces: Sequence[str] | None = None,
        *,
        max_pods: int = DEFAULT_MAX_PODS,
        max_events: int = DEFAULT_MAX_EVENTS,
        on_problem: OnProblem | None = None,
    ) -> None:
        self.kube = kube
        scopes: list[str | None] = [None] if namespaces is None else list(dict.fromkeys(namespaces))
        pods, events = Budget(max_pods), Budget(max_events)
        self._pods = [
            WatchedObjects(kube, "Pod", s, keep=slim, budget=pods, on_problem=on_problem) for s in scopes
        ]
        self._events = [
            WatchedObjects(kube, "Event", s, keep=keep_event, budget=events, on_problem=on_problem)
            for s in scopes
        ]
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stores(self) -> list[WatchedObjects]:
        return [*self._pods, *self._events]

    def pods(self, namespace: str) -> list[dict[str, Any]] | None:
        return _first_ready(self._pods, namespace)

    def events(self, namespace: str) -> list[dict[str, Any]] | None:
        return _first_ready(self._events, namespace)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(s.run(), name=f"watch-{s.kind}") for s in self.stores]

    async def wait_ready(self) -> bool:
        """Wait until every store has listed once (bound it with ``asyncio.timeout``)."""
        await asyncio.gather(*(s.wait_ready() for s in self.stores))
        return all(s.ready for s in self.stores)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


def _first_ready(stores: Iterable[WatchedObjects], namespace: str) -> list[dict[str, Any]] | None:
    for store in stores:
        items = store.items(namespace)
        if items is not None:
            return items
    return None
