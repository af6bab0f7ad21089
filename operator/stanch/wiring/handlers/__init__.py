"""Kopf handlers. Registered into an explicit registry by `build_registry()`, never at import time,
so importing this package has no effect on any operator and tests get a fresh registry each time."""

from __future__ import annotations

import kopf

from stanch.wiring import alerts
from stanch.wiring.handlers import incident, mitigation, peering, policy, startup
from stanch.wiring.metrics import Metrics


def build_registry(metrics: Metrics) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    startup.register(registry)
    peering.register(registry)
    incident.register(registry, metrics)
    mitigation.register(registry, metrics)
    policy.register(registry, metrics)
    alerts.register(registry, metrics)
    return registry


__all__ = ["build_registry"]
