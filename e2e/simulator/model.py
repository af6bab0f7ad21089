"""The pure model: from pods, knobs, world controls and time to per-pod rates for the next tick.

No I/O and no randomness here; `simulation` turns these rates into noisy counters. Effects are
modelled the way production behaves, so mitigations change the numbers for the right reasons:

- A workload's traffic is split evenly over its Ready, non-terminating pods (an Endpoints-style
  load balancer). More pods -> less load per pod; fewer pods -> more.
- Load beyond a pod's capacity is shed as 503s; latency grows queueing-style as utilisation nears 1.
- Failure causes (the code's own error ratio, dependencies, node faults, expired certificates, bad
  input from one client) are independent: a request succeeds only if none of them hits it.
- Dependencies are read from the previous tick's health of the named workload, so a cycle of
  dependencies cannot loop and a failure propagates one tick later, as retries and timeouts do.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from e2e.simulator.knobs import Behaviour, resolve
from e2e.simulator.pods import PodKey, PodView, ServiceView
from e2e.simulator.world import NODE_FAIL, NODE_SLOW, Fault, WorkloadKey, World

MB = 1024.0 * 1024.0
SIDECAR_CPU_CORES = 0.005
SIDECAR_MEMORY_BYTES = 24 * MB
REQUEST_BUFFER_MB_PER_RPS = 0.25
MEMORY_PRESSURE_AT = 0.9  # share of the limit where GC thrash starts hurting latency
MEMORY_CEILING = 0.99  # working set never exceeds the limit: the kernel would OOM-kill first
UTILISATION_CAP = 0.95  # beyond this the queue is shed, not grown
DEPENDENCY_HOP_S = 0.002
CERT_ERROR_RATIO = 0.9  # most requests need an outbound TLS call

# Causes of failure, with the status code a caller would see and a stable name for log lines.
OVERLOAD = "overload"
APP = "app"
DEPENDENCY = "dependency"
DEPENDENCY_SLOW = "dependency-slow"
NODE = "node"
NODE_SLOWNESS = "node-slow"
CERT = "cert"
BAD_INPUT = "bad-input"


@dataclass(frozen=True)
class Cause:
    kind: str
    ratio: float
    code: int
    detail: str = ""  # dependency name, node name, client name
    port: int = 0


@dataclass(frozen=True)
class WorkloadHealth:
    """What a caller of this workload experiences; feeds dependency effects on the next tick."""

    deployment: str
    error_ratio: float
    latency_s: float
    ready_pods: int
    ever_ready: bool


@dataclass(frozen=True)
class PodRates:
    key: PodKey
    workload: WorkloadKey
    serving: bool  # metrics exported (the pod runs on a node)
    rps: float  # requests per second routed to this pod
    clients: tuple[tuple[str, float], ...]
    # per client: ((code, share of that client's requests), ...); shares sum to 1
    outcomes: Mapping[str, tuple[tuple[int, float], ...]]
    causes: tuple[Cause, ...]
    latency_median_s: float
    latency_sigma: float
    utilisation: float
    cpu_cores: Mapping[str, float]
    memory_bytes: Mapping[str, float]
    memory_pressure: bool
    cpu_hot: bool
    behaviour: Behaviour

    @property
    def error_ratio(self) -> float:
        total = 0.0
        for client, share in self.clients:
            total += share * sum(r for code, r in self.outcomes.get(client, ()) if code >= 500)
        return total


@dataclass(frozen=True)
class EdgeRates:
    """Requests the load balancer answers itself because the workload has no Ready pod."""

    workload: WorkloadKey
    deployment: str
    rps: float
    clients: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Plan:
    pods: Mapping[PodKey, PodRates]
    workloads: Mapping[WorkloadKey, WorkloadHealth]
    edge: Mapping[WorkloadKey, EdgeRates]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Inputs:
    pods: Sequence[PodView]
    world: World
    now: float
    unready_nodes: frozenset[str] = frozenset()
    config_maps: Mapping[tuple[str, str], Mapping[str, str]] | None = None
    previous: Mapping[WorkloadKey, WorkloadHealth] | None = None
    namespaces: frozenset[str] | None = None  # None: unknown, keep every remembered workload
    pinned_hot: Mapping[PodKey, float] | None = None  # extra CPU cores of pods a world key made hot
    # Services by (namespace, name): a group with a Service of its own name gets traffic only on the
    # pods that Service selects and on the port they listen on. None: no Services known.
    services: Mapping[tuple[str, str], ServiceView] | None = None


def reached_by(service: ServiceView | None, pod: PodView, b: Behaviour) -> bool:
    """Whether the group's Service sends requests to this pod: it selects the pod's labels, and one
    of its target ports is the port the app listens on (by number, or by name). No Service (or one
    without ports): every pod of the group, as before Services were modelled."""
    if service is None:
        return True
    if not service.selects(pod.labels):
        return False
    if not service.target_ports:
        return True
    return any(t == b.port if isinstance(t, int) else t == b.port_name for t in service.target_ports)


def load_latency_factor(utilisation: float) -> float:
    """Flat while there is headroom, steep near saturation (an M/M/c-like knee)."""
    rho = min(max(utilisation, 0.0), UTILISATION_CAP)
    return 1.0 + rho**4 / (1.0 - rho)


def overload_ratio(rps: float, capacity: float) -> float:
    if rps <= 0:
        return 0.0
    if capacity <= 0:
        return 1.0
    return max(0.0, 1.0 - capacity / rps)


def _combine(causes: Iterable[Cause]) -> list[tuple[int, float]]:
    """Independent causes -> share of requests failing with each code (proportional split)."""
    causes = [c for c in causes if c.ratio > 0]
    if not causes:
        return []
    survive = 1.0
    for c in causes:
        survive *= 1.0 - min(c.ratio, 1.0)
    failing = 1.0 - survive
    weight = sum(c.ratio for c in causes)
    by_code: dict[int, float] = defaultdict(float)
    for c in causes:
        by_code[c.code] += failing * c.ratio / weight
    return sorted(by_code.items())


def _outcomes(
    overload: float, causes: Sequence[Cause], client_errors: Mapping[str, float], client: str, b: Behaviour
) -> tuple[tuple[int, float], ...]:
    extra = [*causes]
    if client_errors.get(client, 0.0) > 0:
        extra.append(Cause(BAD_INPUT, client_errors[client], 500, client))
    served = 1.0 - overload
    shares: dict[int, float] = defaultdict(float)
    if overload > 0:
        shares[503] += overload
    failed = 0.0
    for code, share in _combine(extra):
        shares[code] += served * share
        failed += share
    ok = served * (1.0 - failed)
    shares[404] += ok * b.client_error_ratio
    shares[200] += ok * (1.0 - b.client_error_ratio)
    return tuple(sorted(shares.items()))


def _node_faults(pod: PodView, b: Behaviour, inputs: Inputs) -> list[tuple[Fault, str]]:
    faults: list[tuple[Fault, str]] = []
    if not pod.node:
        return faults
    if pod.node in inputs.world.node_faults:
        faults.append((inputs.world.node_faults[pod.node], pod.node))
    if pod.node in inputs.unready_nodes:
        faults.append((NODE_FAIL, pod.node))
    if b.bad_node and b.bad_node == pod.node:
        faults.append((NODE_FAIL if b.bad_node_effect == "fail" else NODE_SLOW, pod.node))
    return faults


def _dependency_effects(
    pod: PodView, b: Behaviour, inputs: Inputs, previous: Mapping[WorkloadKey, WorkloadHealth]
) -> tuple[list[Cause], float]:
    causes: list[Cause] = []
    latency = 0.0
    for dep in b.depends_on:
        key = (dep.namespace or pod.namespace, dep.name)
        err, lat = 0.0, DEPENDENCY_HOP_S
        health = previous.get(key)
        if health is not None:
            err, lat = health.error_ratio, health.latency_s + DEPENDENCY_HOP_S
        fault = inputs.world.dependency_faults.get(key)
        slow = False
        if fault is not None:
            err = 1.0 - (1.0 - err) * (1.0 - fault.error_ratio)
            lat += fault.latency_ms / 1000.0
            slow = fault.kind == "slow" or (fault.latency_ms > 0 and fault.error_ratio < 0.5)
        latency += lat
        if err > 0:
            kind = DEPENDENCY_SLOW if slow else DEPENDENCY
            causes.append(Cause(kind, err, 504 if slow else 502, dep.name, dep.port))
    return causes, latency


def _hot_pods(pods: Sequence[PodView], behaviours: Mapping[PodKey, Behaviour], now: float) -> set[PodKey]:
    """Pods whose CPU is pinned: the Nth-oldest running pod of each revision that asks for it."""
    by_revision: dict[tuple[str, str, str], list[PodView]] = defaultdict(list)
    for p in pods:
        if p.running and not p.terminating and p.node:
            by_revision[(p.namespace, p.workload, p.revision)].append(p)
    hot: set[PodKey] = set()
    for members in by_revision.values():
        members.sort(key=lambda p: (p.created_at, p.name))
        for index, p in enumerate(members):
            b = behaviours[p.key]
            if b.cpu_hot_ordinal == index and now - _started(p) >= b.cpu_hot_after_s:
                hot.add(p.key)
    return hot


def _started(p: PodView) -> float:
    return p.main.started_at or p.started_at or p.created_at


def plan(inputs: Inputs) -> Plan:
    world = inputs.world
    previous = inputs.previous or {}
    config_maps = inputs.config_maps or {}
    problems: list[str] = list(world.problems)
    behaviours: dict[PodKey, Behaviour] = {}
    for p in inputs.pods:
        cm_name = p.annotations.get("sim.stanch.dev/config-map", "").strip()
        cm = config_maps.get((p.namespace, cm_name)) if cm_name else None
        resolved = resolve(p.annotations, world.image_profile(p.image, p.namespace), cm)
        behaviours[p.key] = resolved.behaviour
        problems.extend(f"{p.namespace}/{p.name}: {msg}" for msg in resolved.problems)

    groups: dict[WorkloadKey, list[PodView]] = defaultdict(list)
    for p in inputs.pods:
        groups[(p.namespace, p.workload)].append(p)
    hot = _hot_pods(inputs.pods, behaviours, inputs.now)

    rates: dict[PodKey, PodRates] = {}
    health: dict[WorkloadKey, WorkloadHealth] = {}
    edge: dict[WorkloadKey, EdgeRates] = {}
    services = inputs.services or {}
    for wkey, members in sorted(groups.items()):
        members.sort(key=lambda p: p.name)
        service = services.get(wkey)
        # A Service whose selector or targetPort matches no pod leaves them all idle: its traffic is
        # refused at the load balancer, as with no Ready pod (the edge's 503s below).
        receivers = {
            p.key
            for p in members
            if p.ready
            and p.running
            and not p.terminating
            and p.node
            and reached_by(service, p, behaviours[p.key])
        }
        traffic = world.traffic_for(wkey)
        clients = world.clients_for(wkey)
        client_errors = world.client_errors.get(wkey, {})
        per_pod = traffic / len(receivers) if receivers else 0.0
        weighted_err = weighted_lat = 0.0
        for p in members:
            b = behaviours[p.key]
            r = _pod_rates(
                p,
                b,
                wkey,
                per_pod if p.key in receivers else 0.0,
                clients,
                client_errors,
                p.key in hot,
                inputs,
                previous,
            )
            rates[p.key] = r
            if r.rps > 0:
                weighted_err += r.rps * r.error_ratio
                weighted_lat += r.rps * r.latency_median_s
        prior = previous.get(wkey)
        ever_ready = bool(receivers) or (prior is not None and prior.ever_ready)
        deployment = members[0].deployment
        if receivers and traffic > 0:
            health[wkey] = WorkloadHealth(
                deployment, weighted_err / traffic, weighted_lat / traffic, len(receivers), True
            )
        else:
            health[wkey] = WorkloadHealth(
                deployment, 1.0 if traffic > 0 else 0.0, 0.0, len(receivers), ever_ready
            )
            if not receivers and ever_ready and traffic > 0:
                edge[wkey] = EdgeRates(wkey, deployment, traffic, clients)

    # Workloads with no pod at all (scaled to zero, or deleted) keep receiving traffic: callers do
    # not know. Forget them only when their namespace is gone.
    for wkey, prior in previous.items():
        if wkey in health:
            continue
        if inputs.namespaces is not None and wkey[0] not in inputs.namespaces:
            continue
        traffic = world.traffic_for(wkey)
        health[wkey] = WorkloadHealth(prior.deployment, 1.0 if traffic > 0 else 0.0, 0.0, 0, prior.ever_ready)
        if prior.ever_ready and traffic > 0:
            edge[wkey] = EdgeRates(wkey, prior.deployment, traffic, world.clients_for(wkey))
    return Plan(rates, health, edge, tuple(dict.fromkeys(problems)))


def _pod_rates(
    p: PodView,
    b: Behaviour,
    wkey: WorkloadKey,
    rps: float,
    clients: tuple[tuple[str, float], ...],
    client_errors: Mapping[str, float],
    is_hot: bool,
    inputs: Inputs,
    previous: Mapping[WorkloadKey, WorkloadHealth],
) -> PodRates:
    serving = p.running and bool(p.node)
    uptime_min = max(0.0, inputs.now - _started(p)) / 60.0
    overload = overload_ratio(rps, b.capacity_rps)
    utilisation = rps / b.capacity_rps if b.capacity_rps > 0 else (math.inf if rps > 0 else 0.0)
    served = rps * (1.0 - overload)

    main = p.main
    pinned = (inputs.pinned_hot or {}).get(p.key, 0.0)
    demand = (
        b.cpu_idle_cores
        + served * b.cpu_ms_per_request / 1000.0
        + (b.cpu_hot_cores if is_hot else 0.0)
        + pinned
    )
    is_hot = is_hot or pinned > 0
    throttle = 1.0
    cpu = demand
    if main.cpu_limit_cores:
        if demand > main.cpu_limit_cores:
            throttle = demand / main.cpu_limit_cores
            cpu = main.cpu_limit_cores
    elif is_hot:
        throttle = 1.5  # a spinning thread competes with request handlers even without a limit

    memory = (b.memory_mb + b.memory_leak_mb_per_min * uptime_min + REQUEST_BUFFER_MB_PER_RPS * rps) * MB
    pressure = False
    if main.memory_limit_bytes:
        pressure = memory >= MEMORY_PRESSURE_AT * main.memory_limit_bytes
        memory = min(memory, MEMORY_CEILING * main.memory_limit_bytes)

    causes: list[Cause] = []
    if b.error_ratio > 0:
        causes.append(Cause(APP, b.error_ratio, b.error_code))
    dep_causes, dep_latency = _dependency_effects(p, b, inputs, previous)
    causes.extend(dep_causes)
    node_factor, node_latency = 1.0, 0.0
    for fault, node in _node_faults(p, b, inputs):
        if fault.error_ratio > 0:
            kind = NODE if fault.kind != "slow" else NODE_SLOWNESS
            causes.append(Cause(kind, fault.error_ratio, 502 if kind == NODE else 504, node))
        if fault.kind == "slow":
            node_factor *= 2.0
        node_latency += fault.latency_ms / 1000.0
    if b.warmup_error_ratio > 0 and uptime_min * 60.0 < b.warmup_s:
        causes.append(Cause(APP, b.warmup_error_ratio, 503))
    if b.cert_expired or wkey in inputs.world.cert_expired:
        causes.append(Cause(CERT, CERT_ERROR_RATIO, 502))

    latency = (
        b.latency_ms
        / 1000.0
        * load_latency_factor(utilisation)
        * throttle
        * (1.5 if pressure else 1.0)
        * node_factor
        + dep_latency
        + node_latency
    )
    sigma = b.latency_jitter + (0.2 if overload > 0 else 0.0)
    outcomes = {c: _outcomes(overload, causes, client_errors, c, b) for c, _ in clients}
    cpu_cores = {main.name: cpu if serving and main.running else 0.0}
    memory_bytes = {main.name: memory if serving and main.running else 0.0}
    for c in p.containers[1:]:
        cpu_cores[c.name] = SIDECAR_CPU_CORES if serving and c.running else 0.0
        memory_bytes[c.name] = SIDECAR_MEMORY_BYTES if serving and c.running else 0.0
    all_causes = tuple(causes)
    if overload > 0:
        all_causes = (Cause(OVERLOAD, overload, 503), *all_causes)
    return PodRates(
        key=p.key,
        workload=wkey,
        serving=serving,
        rps=rps,
        clients=clients,
        outcomes=outcomes,
        causes=all_causes,
        latency_median_s=latency,
        latency_sigma=sigma,
        utilisation=utilisation,
        cpu_cores=cpu_cores,
        memory_bytes=memory_bytes,
        memory_pressure=pressure,
        cpu_hot=is_hot,
        behaviour=b,
    )
