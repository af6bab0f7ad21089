"""Turns the model's rates into counters with realistic noise, deterministically under a seed.

Each pod gets its own RNG seeded from the simulator seed and the pod's name, so adding or removing
one pod does not change another pod's numbers. A container restart resets the pod's counters, as
a restarted process does; Prometheus' rate() copes with that the same way it does in production.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from e2e.simulator.model import EdgeRates, Inputs, Plan, PodRates, WorkloadHealth, plan
from e2e.simulator.pods import PodKey, PodView, ServiceView
from e2e.simulator.world import HotPod, WorkloadKey, World

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Codes every pod exports from its first scrape, so error-ratio queries see 0 rather than no data.
CODES: tuple[int, ...] = (200, 404, 500, 502, 503, 504)
_EXACT_LIMIT = 30


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < _EXACT_LIMIT:
        threshold, k, prod = math.exp(-lam), 0, rng.random()
        while prod > threshold:
            k += 1
            prod *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n <= _EXACT_LIMIT:
        return sum(1 for _ in range(n) if rng.random() < p)
    mean = n * p
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


def multinomial(rng: random.Random, n: int, shares: Sequence[float]) -> list[int]:
    """Split n draws over categories by sequential conditional binomials (exact total)."""
    out: list[int] = []
    left, mass = n, 1.0
    for i, share in enumerate(shares):
        if i == len(shares) - 1 or mass <= 0:
            out.append(left)
            left = 0
            continue
        k = binomial(rng, left, min(1.0, share / mass))
        out.append(k)
        left -= k
        mass -= share
    return out + [0] * (len(shares) - len(out))


def lognormal_bucket_shares(median: float, sigma: float) -> list[float]:
    """Share of requests per histogram bucket (the last is +Inf) for a log-normal latency."""
    if median <= 0:
        return [1.0] + [0.0] * len(BUCKETS)
    sigma = max(sigma, 1e-6)
    cdf = [
        0.5 * (1.0 + math.erf((math.log(le) - math.log(median)) / (sigma * math.sqrt(2)))) for le in BUCKETS
    ]
    shares, prev = [], 0.0
    for c in cdf:
        shares.append(max(0.0, c - prev))
        prev = c
    shares.append(max(0.0, 1.0 - prev))
    return shares


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))  # per bucket, not cumulative
    total: float = 0.0
    count: int = 0


@dataclass
class PodSeries:
    view: PodView
    rng: random.Random
    log_rng: random.Random
    restarts: int
    requests: dict[tuple[int, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    memory_bytes: dict[str, float] = field(default_factory=dict)
    rates: PodRates | None = None
    restarted_at: float | None = None
    tick_codes: dict[int, int] = field(default_factory=dict)  # this tick only, for log lines
    seen_ticks: int = 0

    def reset_counters(self) -> None:
        self.requests.clear()
        self.durations.clear()
        self.cpu_seconds.clear()


@dataclass
class EdgeSeries:
    rates: EdgeRates
    requests: dict[str, int] = field(default_factory=dict)  # client -> 503s


@dataclass(frozen=True)
class StepResult:
    plan: Plan
    new_pods: tuple[PodKey, ...]
    gone_pods: tuple[PodKey, ...]
    restarted: tuple[PodKey, ...]


class Simulation:
    """All counters of every simulated pod; advance it with `step` once per tick."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.pods: dict[PodKey, PodSeries] = {}
        self.edge: dict[WorkloadKey, EdgeSeries] = {}
        self.health: Mapping[WorkloadKey, WorkloadHealth] = {}
        self.edge_rng = random.Random(f"{seed}:edge")
        self.last_plan: Plan | None = None
        # hot-pod.<ns>.<group> world keys, latched on the pod they picked when first seen: the
        # busy loop lives in that process, so a new pod (a restart) does not inherit it.
        self.hot_latch: dict[WorkloadKey, tuple[HotPod, PodKey]] = {}

    def _rng(self, pod: PodView, purpose: str, world: World) -> random.Random:
        # A namespace's own seed (world key seed.<ns>) varies its noise without touching anyone else's.
        local = world.noise_seeds.get(pod.namespace)
        prefix = f"{self.seed}:{local}" if local else f"{self.seed}"
        return random.Random(f"{prefix}:{pod.namespace}/{pod.name}:{purpose}")

    def step(
        self,
        pods: Sequence[PodView],
        world: World,
        now: float,
        dt: float,
        *,
        unready_nodes: frozenset[str] = frozenset(),
        config_maps: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
        namespaces: frozenset[str] | None = None,
        services: Mapping[tuple[str, str], ServiceView] | None = None,
    ) -> StepResult:
        new, restarted = self._track(pods, now, world)
        current = {p.key for p in pods}
        gone = tuple(sorted(k for k in self.pods if k not in current))
        for key in gone:
            del self.pods[key]
        views = [self._effective_view(self.pods[p.key]) for p in pods]
        pinned = self._latch_hot_pods(pods, world)
        result = plan(Inputs(views, world, now, unready_nodes, config_maps, self.health, namespaces, pinned))
        for key, rates in result.pods.items():
            self._advance(self.pods[key], rates, dt)
        self.health = result.workloads
        self._advance_edge(result.edge, dt)
        self.last_plan = result
        return StepResult(result, tuple(new), gone, tuple(restarted))

    def _track(self, pods: Sequence[PodView], now: float, world: World) -> tuple[list[PodKey], list[PodKey]]:
        new: list[PodKey] = []
        restarted: list[PodKey] = []
        for p in pods:
            series = self.pods.get(p.key)
            if series is None or series.view.uid != p.uid:
                self.pods[p.key] = PodSeries(
                    p, self._rng(p, "metrics", world), self._rng(p, "logs", world), p.restart_count
                )
                new.append(p.key)
                continue
            if p.restart_count > series.restarts:
                series.reset_counters()
                series.restarted_at = now
                restarted.append(p.key)
            series.restarts = p.restart_count
            series.view = p
        return new, restarted

    def _latch_hot_pods(self, pods: Sequence[PodView], world: World) -> dict[PodKey, float]:
        """Extra CPU per pod from hot-pod world keys. The pod is picked once, when the key appears
        (or changes): the ``ordinal``-th oldest running pod of the group; it stays hot until it is
        gone, and no other pod takes its place."""
        for key in [k for k in self.hot_latch if self.hot_latch[k][0] != world.hot_pods.get(k)]:
            del self.hot_latch[key]
        for key, hot in world.hot_pods.items():
            if key in self.hot_latch:
                continue
            running = sorted(
                (
                    p
                    for p in pods
                    if (p.namespace, p.workload) == key and p.running and not p.terminating and p.node
                ),
                key=lambda p: (p.created_at, p.name),
            )
            if len(running) > hot.ordinal:
                self.hot_latch[key] = (hot, running[hot.ordinal].key)
        present = {p.key for p in pods}
        return {pod: hot.cores for hot, pod in self.hot_latch.values() if pod in present}

    @staticmethod
    def _effective_view(series: PodSeries) -> PodView:
        """The pod with its process start moved to the last restart we saw (a leak starts over)."""
        view = series.view
        restarted = series.restarted_at
        if restarted is None or not view.containers:
            return view
        main = view.containers[0]
        if main.started_at is not None and main.started_at >= restarted:
            return view
        main = dataclasses.replace(main, started_at=restarted)
        return dataclasses.replace(view, containers=(main, *view.containers[1:]))

    def _advance(self, s: PodSeries, rates: PodRates, dt: float) -> None:
        s.rates = rates
        s.tick_codes = {}
        s.seen_ticks += 1
        if not rates.serving:
            s.memory_bytes = {}
            return
        rng = s.rng
        # A little drift per tick: real latency wanders even at constant load.
        median = rates.latency_median_s * math.exp(rng.gauss(0.0, 0.05))
        mean = median * math.exp(rates.latency_sigma**2 / 2.0)
        shares = lognormal_bucket_shares(median, rates.latency_sigma)
        for client, share in rates.clients:
            for code in CODES:
                s.requests.setdefault((code, client), 0)
            hist = s.durations.setdefault(client, Histogram())
            n = poisson(rng, rates.rps * share * dt)
            if n == 0:
                continue
            outcomes = rates.outcomes.get(client, ())
            split = multinomial(rng, n, [r for _, r in outcomes])
            for (code, _), k in zip(outcomes, split, strict=True):
                if k:
                    s.requests[(code, client)] = s.requests.get((code, client), 0) + k
                    s.tick_codes[code] = s.tick_codes.get(code, 0) + k
            for i, k in enumerate(multinomial(rng, n, shares)):
                hist.buckets[i] += k
            hist.count += n
            hist.total += n * mean * (1.0 + rng.gauss(0.0, 0.02) / math.sqrt(n))
        for container, cores in rates.cpu_cores.items():
            used = max(0.0, cores * dt * (1.0 + rng.gauss(0.0, 0.03)))
            s.cpu_seconds[container] = s.cpu_seconds.get(container, 0.0) + used
        s.memory_bytes = {
            c: max(0.0, m * (1.0 + rng.gauss(0.0, 0.005))) for c, m in rates.memory_bytes.items()
        }

    def _advance_edge(self, edge: Mapping[WorkloadKey, EdgeRates], dt: float) -> None:
        for key, rates in edge.items():
            series = self.edge.setdefault(key, EdgeSeries(rates))
            series.rates = rates
            for client, share in rates.clients:
                n = poisson(self.edge_rng, rates.rps * share * dt)
                series.requests[client] = series.requests.get(client, 0) + n
        # Keep edge counters of workloads that recovered: a counter that vanishes and comes back
        # would read as a reset. Drop them only with their namespace (the health map forgets it).
        for key in [k for k in self.edge if k not in self.health and k not in edge]:
            del self.edge[key]
