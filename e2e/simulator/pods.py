"""What the simulator needs to know about a pod, read from the pod object as the API returns it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from e2e.simulator.knobs import WORKLOAD_LABEL

PodKey = tuple[str, str]  # (namespace, name)

_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity (``"512Mi"``, ``"250m"``, ``"1.5"``, ``"1e9"``) as a float."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class ContainerView:
    name: str
    memory_limit_bytes: float | None = None
    cpu_limit_cores: float | None = None
    restart_count: int = 0
    running: bool = True
    started_at: float | None = None
    last_terminated_reason: str = ""


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    uid: str
    workload: str
    deployment: str
    revision: str
    node: str
    image: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerView, ...] = ()
    ready: bool = False
    running: bool = False
    terminating: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> PodKey:
        return (self.namespace, self.name)

    @property
    def main(self) -> ContainerView:
        """The container that serves requests: the first one, as for most web workloads."""
        return self.containers[0] if self.containers else ContainerView(name="app")

    @property
    def restart_count(self) -> int:
        return sum(c.restart_count for c in self.containers)


def _deployment_of(meta: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        owner = str(ref.get("name", ""))
        pth = labels.get("pod-template-hash")
        if ref.get("kind") == "ReplicaSet" and pth and owner.endswith("-" + pth):
            return owner[: -len(pth) - 1]
        return owner
    return ""


def _limits(spec: Mapping[str, Any]) -> tuple[float | None, float | None]:
    limits = (spec.get("resources") or {}).get("limits") or {}
    mem = cpu = None
    try:
        if "memory" in limits:
            mem = parse_quantity(limits["memory"])
        if "cpu" in limits:
            cpu = parse_quantity(limits["cpu"])
    except ValueError:
        pass
    return mem, cpu


def pod_view(obj: Mapping[str, Any]) -> PodView | None:
    """A `PodView` from a pod as a JSON-like dict, or None if it is not a simulated workload's pod."""
    meta = obj.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    if WORKLOAD_LABEL not in labels:
        return None
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    deployment = _deployment_of(meta, labels)
    label_value = labels[WORKLOAD_LABEL].strip()
    # The label value names the traffic group (what a Service would select); "true" means "my
    # controller's name", so the common case needs no repetition.
    workload = label_value if label_value and label_value != "true" else deployment or meta["name"]
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers: list[ContainerView] = []
    for c in spec.get("containers") or []:
        st = statuses.get(c.get("name")) or {}
        state = st.get("state") or {}
        last = (st.get("lastState") or {}).get("terminated") or {}
        mem, cpu = _limits(c)
        containers.append(
            ContainerView(
                name=str(c.get("name", "app")),
                memory_limit_bytes=mem,
                cpu_limit_cores=cpu,
                restart_count=int(st.get("restartCount") or 0),
                running="running" in state,
                started_at=parse_time((state.get("running") or {}).get("startedAt")),
                last_terminated_reason=str(last.get("reason") or ""),
            )
        )
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    first_image = str((spec.get("containers") or [{}])[0].get("image", ""))
    return PodView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta["name"]),
        uid=str(meta.get("uid", "")),
        workload=workload,
        deployment=deployment or workload,
        revision=labels.get("pod-template-hash") or labels.get("controller-revision-hash") or "",
        node=str(spec.get("nodeName") or ""),
        image=first_image,
        annotations=dict(meta.get("annotations") or {}),
        containers=tuple(containers),
        ready=conditions.get("Ready") == "True",
        running=status.get("phase") == "Running",
        terminating=bool(meta.get("deletionTimestamp")),
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        started_at=parse_time(status.get("startTime")),
        labels=dict(labels),
    )


@dataclass(frozen=True)
class ServiceView:
    """A Service with a selector: which pods it sends traffic to, and on which ports."""

    namespace: str
    name: str
    selector: Mapping[str, str]
    target_ports: tuple[int | str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.selector.items())


def service_view(obj: Mapping[str, Any]) -> ServiceView | None:
    """A `ServiceView`, or None for a Service without a selector (ExternalName, manual endpoints):
    its traffic is not the simulator's to route."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector or spec.get("type") == "ExternalName":
        return None
    ports: list[int | str] = []
    for port in spec.get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
            ports.append(int(target))
        elif isinstance(target, str):
            ports.append(target)
    return ServiceView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        selector={str(k): str(v) for k, v in selector.items()},
        target_ports=tuple(ports),
    )
