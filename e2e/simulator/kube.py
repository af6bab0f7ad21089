"""The Kubernetes side: watch pods, nodes, namespaces and ConfigMaps; write the world ConfigMap and
kwok ``Logs`` objects. Nothing here decides behaviour; it keeps caches the tick loop reads.

The simulator may only ever talk to a local kube-apiserver: `check_loopback` refuses a kubeconfig
whose server is not on a loopback address, and environment proxies are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from lightkube import ALL_NS, AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.operators import exists
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod, Service

from e2e.simulator.knobs import WORKLOAD_LABEL
from e2e.simulator.pods import PodKey, PodView, ServiceView, pod_view, service_view
from e2e.simulator.world import CONFIGMAP, NAMESPACE

log = logging.getLogger("stanch.simulator.kube")

FIELD_MANAGER = "stanch-simulator"
KwokLogs = create_namespaced_resource("kwok.x-k8s.io", "v1alpha1", "Logs", "logs")
_RELIST_BACKOFF_S = 1.0
_LOGS_RETRY_S = 30.0


class NotLoopbackError(ValueError):
    pass


def check_loopback(kubeconfig: str | Path) -> str:
    """The API server URL of the kubeconfig's current context, if it is on loopback."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    current = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    context = contexts.get(current) if current else next(iter(contexts.values()), None)
    if context is None:
        raise NotLoopbackError(f"{kubeconfig}: no current context")
    server = str(clusters[context["cluster"]]["server"])
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return server
    try:
        if ipaddress.ip_address(host).is_loopback:
            return server
    except ValueError:
        pass
    raise NotLoopbackError(f"refusing to talk to {server}: the simulator only talks to a loopback API server")


def _is_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class Kube:
    """Caches of the cluster state the simulator needs, kept fresh by list+watch loops."""

    def __init__(self, kubeconfig: str | Path) -> None:
        check_loopback(kubeconfig)
        self.client = AsyncClient(
            config=KubeConfig.from_file(str(kubeconfig)), field_manager=FIELD_MANAGER, trust_env=False
        )
        self.pods: dict[PodKey, PodView] = {}
        self.unready_nodes: set[str] = set()
        self._nodes: dict[str, bool] = {}
        self.namespaces: set[str] = set()
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self.services: dict[tuple[str, str], ServiceView] = {}
        self.synced: dict[str, bool] = {
            "pods": False,
            "nodes": False,
            "namespaces": False,
            "configmaps": False,
            "services": False,
        }
        self.on_world_change: Callable[[dict[str, str]], None] | None = None
        self._logs_available: bool | None = None
        self._logs_checked_at = 0.0
        self._logs_lock = asyncio.Semaphore(8)

    @property
    def ready(self) -> bool:
        return all(self.synced.values())

    async def close(self) -> None:
        await self.client.close()

    # -- watches ---------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(
            self._loop("pods", Pod, self._reset_pods, self._pod_event, labels={WORKLOAD_LABEL: exists()}),
            self._loop("nodes", Node, self._reset_nodes, self._node_event),
            self._loop("namespaces", Namespace, self._reset_namespaces, self._namespace_event),
            self._loop("configmaps", ConfigMap, self._reset_config_maps, self._config_map_event),
            self._loop("services", Service, self._reset_services, self._service_event),
        )

    async def _loop(
        self,
        what: str,
        res: Any,
        reset: Callable[[list[dict[str, Any]]], None],
        event: Callable[[str, dict[str, Any]], None],
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        namespaced = res is not Node and res is not Namespace
        kwargs: dict[str, Any] = {"labels": labels} if labels else {}
        if namespaced:
            kwargs["namespace"] = ALL_NS
        while True:
            try:
                listing = self.client.list(res, **kwargs)
                items = [obj.to_dict() async for obj in listing]
                reset(items)
                self.synced[what] = True
                async for op, obj in self.client.watch(
                    res, resource_version=listing.resourceVersion, server_timeout=240, **kwargs
                ):
                    event(op, obj.to_dict())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # relist on anything: a watch that dies must not freeze the world
                log.warning("watch of %s failed (%s); relisting", what, exc)
                await asyncio.sleep(_RELIST_BACKOFF_S)

    def _reset_pods(self, items: list[dict[str, Any]]) -> None:
        pods: dict[PodKey, PodView] = {}
        for obj in items:
            view = pod_view(obj)
            if view is not None:
                pods[view.key] = view
        self.pods = pods

    def _pod_event(self, op: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        view = pod_view(obj) if op != "DELETED" else None
        if view is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = view

    def _reset_nodes(self, items: list[dict[str, Any]]) -> None:
        self._nodes = {obj["metadata"]["name"]: _is_ready(obj) for obj in items}
        self.unready_nodes = {n for n, ok in self._nodes.items() if not ok}

    def _node_event(self, op: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if op == "DELETED":
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = _is_ready(obj)
        self.unready_nodes = {n for n, ok in self._nodes.items() if not ok}

    def _reset_namespaces(self, items: list[dict[str, Any]]) -> None:
        self.namespaces = {obj["metadata"]["name"] for obj in items}

    def _namespace_event(self, op: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if op == "DELETED":
            self.namespaces.discard(name)
        else:
            self.namespaces.add(name)

    def _reset_services(self, items: list[dict[str, Any]]) -> None:
        self.services = {}
        for obj in items:
            self._service_event("ADDED", obj)

    def _service_event(self, op: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        view = service_view(obj) if op != "DELETED" else None
        if view is None:
            self.services.pop(key, None)
        else:
            self.services[key] = view

    def _reset_config_maps(self, items: list[dict[str, Any]]) -> None:
        self.config_maps = {}
        for obj in items:
            self._config_map_event("ADDED", obj)
        if (NAMESPACE, CONFIGMAP) not in self.config_maps:
            self._notify_world({})

    def _config_map_event(self, op: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if op == "DELETED":
            self.config_maps.pop(key, None)
            data: dict[str, str] = {}
        else:
            data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
            self.config_maps[key] = data
        if key == (NAMESPACE, CONFIGMAP):
            self._notify_world(data)

    def _notify_world(self, data: dict[str, str]) -> None:
        if self.on_world_change is not None:
            self.on_world_change(dict(data))

    # -- the world ConfigMap ---------------------------------------------------------------

    async def ensure_world(self) -> None:
        """Create ``stanch-sim`` and its ``world`` ConfigMap if missing; never touch existing data."""
        with contextlib.suppress(ApiError):
            await self.client.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
        try:
            await self.client.create(
                ConfigMap(
                    metadata=ObjectMeta(
                        name=CONFIGMAP,
                        namespace=NAMESPACE,
                        annotations={"sim.stanch.dev/docs": "docs/simulator.md in the Stanch repository"},
                    ),
                    data={},
                )
            )
        except ApiError as exc:
            if exc.status.code != 409:
                raise

    async def write_world(self, data: Mapping[str, str]) -> None:
        """Replace the world ConfigMap's data (keys not in ``data`` are removed)."""
        current = self.config_maps.get((NAMESPACE, CONFIGMAP), {})
        patch: dict[str, str | None] = {k: None for k in current if k not in data}
        patch.update(data)
        await self.client.patch(ConfigMap, CONFIGMAP, {"data": patch}, namespace=NAMESPACE)

    # -- kwok Logs objects -----------------------------------------------------------------

    async def logs_supported(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._logs_available is not None and (
            self._logs_available or loop.time() - self._logs_checked_at < _LOGS_RETRY_S
        ):
            return self._logs_available
        self._logs_checked_at = loop.time()
        try:
            async for _ in self.client.list(KwokLogs, namespace=NAMESPACE, chunk_size=1):
                break
            self._logs_available = True
        except ApiError as exc:
            if self._logs_available is not False:
                log.warning("kwok Logs kind unavailable (%s); pod logs only on disk", exc.status.message)
            self._logs_available = False
        return self._logs_available

    async def ensure_logs(self, pod: PodView, files: Mapping[str, tuple[Path, Path]]) -> bool:
        """Point kwok at the pod's log files; owned by the pod so it goes when the pod goes.

        False means "try again later" (kwok's Logs kind missing, or a transient error).
        """
        if not await self.logs_supported():
            return False
        obj = KwokLogs.from_dict(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Logs",
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
                    ],
                },
                "spec": {
                    "logs": [
                        {
                            "containers": [container],
                            "logsFile": str(current.resolve()),
                            "previousLogsFile": str(previous.resolve()),
                            "follow": True,
                        }
                        for container, (current, previous) in sorted(files.items())
                    ]
                },
            }
        )
        async with self._logs_lock:
            try:
                await self.client.apply(obj, field_manager=FIELD_MANAGER, force=True)
            except ApiError as exc:
                if exc.status.code == 404:  # the namespace is gone with the pod: nothing to serve
                    return True
                log.warning("could not write Logs %s/%s: %s", pod.namespace, pod.name, exc.status.message)
                return False
            except Exception as exc:
                log.warning("could not write Logs %s/%s: %s", pod.namespace, pod.name, exc)
                return False
        return True

    async def delete_logs(self, key: PodKey) -> None:
        if not self._logs_available:
            return
        async with self._logs_lock:
            with contextlib.suppress(ApiError):
                await self.client.delete(KwokLogs, key[1], namespace=key[0])
