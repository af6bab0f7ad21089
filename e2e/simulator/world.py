"""World controls: what happens outside Kubernetes (traffic, clients, node and dependency faults).

They live in the ConfigMap ``stanch-sim/world`` as flat string keys, because in production a
traffic surge or a dead database is not a change to any workload object: Stanch must find it from
the metrics, not from a diff. The HTTP ``/world`` endpoint reads and writes the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from e2e.simulator.knobs import KnobError, parse_overrides

NAMESPACE = "stanch-sim"
CONFIGMAP = "world"

DEFAULT_TRAFFIC_RPS = 50.0
DEFAULT_CLIENTS: tuple[tuple[str, float], ...] = (("web", 0.7), ("mobile", 0.25), ("partner", 0.05))

WorkloadKey = tuple[str, str]  # (namespace, workload)


@dataclass(frozen=True)
class Fault:
    """Extra failure and delay seen by whoever calls through a faulty node or dependency."""

    kind: str  # "fail" | "slow" | "custom"
    error_ratio: float
    latency_ms: float


@dataclass(frozen=True)
class HotPod:
    """One pod of a group spinning on CPU (a busy loop in one process): which, and how hard."""

    ordinal: int = 0  # the N-th oldest running pod when the key is first seen
    cores: float = 1.0


FAIL = Fault("fail", 1.0, 0.0)
SLOW = Fault("slow", 0.05, 1500.0)
NODE_FAIL = Fault("fail", 0.9, 0.0)
NODE_SLOW = Fault("slow", 0.02, 300.0)


@dataclass(frozen=True)
class World:
    default_traffic_rps: float = DEFAULT_TRAFFIC_RPS
    traffic: Mapping[WorkloadKey, float] = field(default_factory=dict)
    default_clients: tuple[tuple[str, float], ...] = DEFAULT_CLIENTS
    clients: Mapping[WorkloadKey, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    client_errors: Mapping[WorkloadKey, Mapping[str, float]] = field(default_factory=dict)
    node_faults: Mapping[str, Fault] = field(default_factory=dict)
    dependency_faults: Mapping[WorkloadKey, Fault] = field(default_factory=dict)
    cert_expired: frozenset[WorkloadKey] = frozenset()
    hot_pods: Mapping[WorkloadKey, HotPod] = field(default_factory=dict)
    noise_seeds: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    namespace_images: Mapping[str, Mapping[str, tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def traffic_for(self, key: WorkloadKey) -> float:
        return self.traffic.get(key, self.default_traffic_rps)

    def clients_for(self, key: WorkloadKey) -> tuple[tuple[str, float], ...]:
        return self.clients.get(key, self.default_clients)

    def image_profile(self, image: str, namespace: str = "") -> tuple[tuple[str, str], ...]:
        """Overrides for an image in a namespace: the namespace's own ``images.<ns>`` first, then the
        cluster-wide ``images``; in each, the exact reference first, then its ``:tag`` alone. Tests
        and scenarios running side by side each own their namespace's key, so none of them has to
        read-modify-write one shared JSON value."""
        for table in (self.namespace_images.get(namespace, {}), self.images):
            if image in table:
                return table[image]
            tail = image.rsplit("/", 1)[-1]
            if ":" in tail and ":" + tail.split(":", 1)[1] in table:
                return table[":" + tail.split(":", 1)[1]]
        return ()


def _positive(text: str) -> float:
    value = float(text)
    if value < 0 or value != value:
        raise ValueError(f"negative or NaN: {text!r}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"ratio out of [0, 1]: {text!r}")
    return value


def parse_client_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"web=70,mobile=25,scraper=5"`` -> normalised weights (order kept)."""
    pairs: list[tuple[str, float]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, weight = item.partition("=")
        pairs.append((name.strip(), _positive(weight) if weight else 1.0))
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        raise ValueError(f"client mix needs a positive weight: {text!r}")
    return tuple((n, w / total) for n, w in pairs if w > 0)


def parse_fault(text: str, *, fail: Fault, slow: Fault) -> Fault | None:
    """``fail``, ``slow``, ``ok`` (no fault) or ``error-ratio=0.3; latency-ms=800``."""
    value = text.strip()
    if value in ("", "ok", "none", "healthy"):
        return None
    if value == "fail":
        return fail
    if value == "slow":
        return slow
    try:
        pairs = dict(parse_overrides(value))
    except KnobError as exc:
        raise ValueError(str(exc)) from exc
    unknown = set(pairs) - {"error-ratio", "latency-ms"}
    if unknown:
        raise ValueError(f"a fault takes error-ratio and latency-ms only, not {sorted(unknown)}")
    return Fault("custom", _ratio(pairs.get("error-ratio", "0")), _positive(pairs.get("latency-ms", "0")))


def parse_hot_pod(text: str) -> HotPod:
    """``ordinal=0; cores=1.5`` (either may be left out: ordinal 0, 1 core)."""
    pairs: dict[str, str] = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in ("ordinal", "cores"):
            raise ValueError(f"a hot pod takes ordinal=N and cores=C, not {item!r}")
        pairs[name.strip()] = value.strip()
    ordinal = pairs.get("ordinal", "0")
    if not ordinal.isdigit():
        raise ValueError(f"ordinal must be a whole number >= 0: {ordinal!r}")
    return HotPod(int(ordinal), _positive(pairs.get("cores", "1")))


def _split_scoped(rest: str) -> WorkloadKey:
    namespace, sep, name = rest.partition(".")
    if not sep or not namespace or not name:
        raise ValueError("expected <namespace>.<name>")
    return namespace, name


def parse_world(data: Mapping[str, str]) -> World:
    """Parse the flat ConfigMap data. Bad entries are skipped and listed in ``problems``."""
    traffic: dict[WorkloadKey, float] = {}
    clients: dict[WorkloadKey, tuple[tuple[str, float], ...]] = {}
    client_errors: dict[WorkloadKey, dict[str, float]] = {}
    node_faults: dict[str, Fault] = {}
    dep_faults: dict[WorkloadKey, Fault] = {}
    certs: set[WorkloadKey] = set()
    hot_pods: dict[WorkloadKey, HotPod] = {}
    noise_seeds: dict[str, str] = {}
    images: dict[str, tuple[tuple[str, str], ...]] = {}
    namespace_images: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}
    default_traffic = DEFAULT_TRAFFIC_RPS
    default_clients = DEFAULT_CLIENTS
    problems: list[str] = []
    for key, value in sorted(data.items()):
        kind, _, rest = key.partition(".")
        try:
            if key == "traffic.default":
                default_traffic = _positive(value)
            elif key == "clients.default":
                default_clients = parse_client_mix(value)
            elif kind == "traffic":
                traffic[_split_scoped(rest)] = _positive(value)
            elif kind == "clients":
                clients[_split_scoped(rest)] = parse_client_mix(value)
            elif kind == "client-errors":
                per_client: dict[str, float] = {}
                for item in value.split(","):
                    if item.strip():
                        name, _, ratio = item.partition("=")
                        per_client[name.strip()] = _ratio(ratio)
                client_errors[_split_scoped(rest)] = per_client
            elif kind == "node":
                if not rest:
                    raise ValueError("expected node.<name>")
                fault = parse_fault(value, fail=NODE_FAIL, slow=NODE_SLOW)
                if fault:
                    node_faults[rest] = fault
            elif kind == "dependency":
                fault = parse_fault(value, fail=FAIL, slow=SLOW)
                if fault:
                    dep_faults[_split_scoped(rest)] = fault
            elif kind == "cert":
                if value.strip() == "expired":
                    certs.add(_split_scoped(rest))
                elif value.strip() not in ("", "ok", "valid"):
                    raise ValueError("expected expired or valid")
            elif kind == "seed":
                if not rest or "." in rest or not value.strip():
                    raise ValueError("expected seed.<namespace> with a non-empty value")
                noise_seeds[rest] = value.strip()
            elif kind == "hot-pod":
                hot_pods[_split_scoped(rest)] = parse_hot_pod(value)
            elif key == "images":
                images = _parse_images(value)
            elif kind == "images":
                if not rest or "." in rest:
                    raise ValueError("expected images.<namespace>")
                namespace_images[rest] = _parse_images(value)
            else:
                raise ValueError("unknown key")
        except (ValueError, KnobError) as exc:
            problems.append(f"world key {key!r}: {exc}")
    return World(
        default_traffic_rps=default_traffic,
        traffic=traffic,
        default_clients=default_clients,
        clients=clients,
        client_errors=client_errors,
        node_faults=node_faults,
        dependency_faults=dep_faults,
        cert_expired=frozenset(certs),
        hot_pods=hot_pods,
        noise_seeds=noise_seeds,
        images=images,
        namespace_images=namespace_images,
        problems=tuple(problems),
    )


def _parse_images(text: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """``{"shop/checkout:1.4.2": {"error-ratio": "0.3"}, ":1.5.0-rc1": "latency-ms=400"}``."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("images must be a JSON object")
    images: dict[str, tuple[tuple[str, str], ...]] = {}
    for image, spec in raw.items():
        if isinstance(spec, str):
            images[str(image)] = parse_overrides(spec)
        elif isinstance(spec, dict):
            images[str(image)] = parse_overrides("; ".join(f"{k}={v}" for k, v in spec.items()))
        else:
            raise ValueError(f"profile of {image!r} must be an object or a string")
    return images
