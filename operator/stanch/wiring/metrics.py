"""The operator's own Prometheus metrics: is it working, is it failing, what is it doing to workloads.

A private registry rather than prometheus_client's global one, so tests can build a fresh set and
nothing imported by accident (a library registering its own collectors) leaks into our endpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Info, start_http_server

import stanch
from stanch.core.settings import HostPort

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
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


METRICS = Metrics()
