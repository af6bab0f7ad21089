"""The operator's own Prometheus metrics: is it working, is it failing, what is it doing to workloads.

A private registry rather than prometheus_client's global one, so tests can build a fresh set and
nothing imported by accident (a library registering its own collectors) leaks into our endpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

import stanch
from stanch.adapters.watch_cache import WatchedObjects
from stanch.core.settings import HostPort

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self._prometheus_clients: dict[str, Mapping[str, int]] = {}
        self._prometheus_collector_registered = False
        self.build = Info("stanch_build", "Version of the running Stanch operator.", registry=self.registry)
        self.build.info({"version": stanch.__version__})
        self.handler_invocations = Counter(
            "stanch_handler_invocations",
            "Kopf handler invocations, by handler id.",
            ["handler"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "stanch_handler_errors",
            "Kopf handler invocations that raised, by handler id and exception type.",
            ["handler", "error"],
            registry=self.registry,
        )
        # Counted on entry into a phase, so rate(...) of Reverted vs Succeeded tells how often
        # mitigations make things worse without reading any Mitigation object.
        self.mitigation_phases = Counter(
            "stanch_mitigation_phase_transitions",
            "Mitigations entering a phase, by phase and action.",
            ["phase", "action"],
            registry=self.registry,
        )
        # Design invariant 13: an error that stops a Mitigation is counted, not only logged, so an
        # alert can fire on rate(stanch_mitigation_failures_total[10m]) by reason.
        self.mitigation_failures = Counter(
            "stanch_mitigation_failures",
            "Mitigations stopped by an error, by reason (the Event's reason: InvalidGuard,"
            " BaselineNoData, RetryBudgetExhausted, InvalidSpec, PlanFailed, Drift, ...) and the phase"
            " it left them in (Failed, NeedsAttention, or Reverting when the change is being undone).",
            ["reason", "phase"],
            registry=self.registry,
        )
        self.mitigation_pass_errors = Counter(
            "stanch_mitigation_pass_errors",
            "Passes of a Mitigation's loop that raised, by exception type and whether it was a passing"
            " outage (transient=true: retried without limit) or counted against the retry budget.",
            ["error", "transient"],
            registry=self.registry,
        )
        self.evidence_cache_ready = Gauge(
            "stanch_evidence_cache_ready",
            "1 while the evidence cache serves this kind and scope from memory; 0 while it is listing,"
            " recovering from an error, or after it outgrew its cap (refreshes then list instead).",
            ["kind", "scope"],
            registry=self.registry,
        )
        self.evidence_cache_objects = Gauge(
            "stanch_evidence_cache_objects",
            "Objects the evidence cache holds, by kind and scope.",
            ["kind", "scope"],
            registry=self.registry,
        )

        self.alertmanager_notifications = Counter(
            "stanch_alertmanager_notifications",
            "Alertmanager notifications the receiver answered, by outcome: Created, Updated, Resolved,"
            " Unchanged, or the refusal's reason (InvalidPayload, NoTarget, UnknownTarget,"
            " NamespaceNotWatched, Unauthorized, TooLarge, ApiUnavailable, ...).",
            ["outcome"],
            registry=self.registry,
        )

    def observe_prometheus(self, client: str, outcomes: Mapping[str, int]) -> None:
        """Export a Prometheus client's request outcomes (read at every scrape) as
        stanch_prometheus_requests_total{client, outcome}: the operator's own view of whether it can
        reach Prometheus, which no other series shows."""
        self._prometheus_clients[client] = outcomes
        if not self._prometheus_collector_registered:
            self.registry.register(_PrometheusRequests(self._prometheus_clients))
            self._prometheus_collector_registered = True

    def observe_cache(self, stores: Iterable[WatchedObjects]) -> None:
        """Read the evidence cache's stores at every scrape (no bookkeeping in the watch loop)."""
        for store in stores:
            labels = {"kind": store.kind, "scope": store.namespace or "*"}
            self.evidence_cache_ready.labels(**labels).set_function(_ready(store))
            self.evidence_cache_objects.labels(**labels).set_function(_objects(store))

    def instrument(self, handler_id: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Count invocations and errors of an async handler. Kopf's retries count as invocations."""

        def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                self.handler_invocations.labels(handler=handler_id).inc()
                try:
                    return await fn(*args, **kwargs)
                except BaseException as exc:
                    self.handler_errors.labels(handler=handler_id, error=type(exc).__name__).inc()
                    raise

            return wrapper

        return decorate

    def serve(self, address: HostPort) -> Any:
        """Start the /metrics endpoint in a daemon thread; returns the server so tests can stop it."""
        server, _thread = start_http_server(address.port, addr=address.host, registry=self.registry)
        return server


class _PrometheusRequests(Collector):
    def __init__(self, clients: Mapping[str, Mapping[str, int]]) -> None:
        self._clients = clients

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "stanch_prometheus_requests",
            "Requests from the operator to Prometheus, by client (investigation, mitigation) and outcome:"
            " ok, or why it failed (unreachable, timeout, unauthorized, credentials, server_error,"
            " bad_query, bad_response, too_large).",
            labels=["client", "outcome"],
        )
        for client, outcomes in sorted(self._clients.items()):
            for outcome, count in sorted(outcomes.items()):
                family.add_metric([client, outcome], float(count))
        yield family


def _ready(store: WatchedObjects) -> Callable[[], float]:
    return lambda: float(store.ready)


def _objects(store: WatchedObjects) -> Callable[[], float]:
    return lambda: float(store.state().objects)


METRICS = Metrics()
