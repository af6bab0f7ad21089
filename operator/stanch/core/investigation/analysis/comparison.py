"""Every SLI per revision and per node, compared at the same time.

Pods of revision A against pods of revision B over the same recent window — not revision B now
against revision A before, which anything else that changed in between confounds. A group is
*worse* when it is clearly worse than the best group still serving on any SLI: errors, latency,
saturation, or its pods' readiness, restarts and failures. Groups are *alike* when none is worse
and they are all bad together: then whatever differs between them (the revision, the node) is not
what fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stanch.core.investigation.analysis.onset import EffectFloor
from stanch.core.investigation.analysis.series import CPU, ERROR_RATIO, LATENCY, MEMORY, ScopedValue, by_scope
from stanch.core.investigation.gathering import UNSCHEDULED
from stanch.core.models import Evidence, PodGroup

SIGNALS = (ERROR_RATIO, LATENCY, CPU, MEMORY)
GROUP_FLOORS: Mapping[str, EffectFloor] = {
    ERROR_RATIO: EffectFloor(absolute=0.005, relative=0.5),
    # A group's p99 comes from fewer requests than the whole's and is noisier: a group is slower only
    # when it is at least half again as slow.
    LATENCY: EffectFloor(absolute=0.05, relative=0.5),
    CPU: EffectFloor(absolute=0.15, relative=0.3),
    MEMORY: EffectFloor(absolute=0.15, relative=0.3),
}
NAMES = {ERROR_RATIO: "error ratio", LATENCY: "p99 latency", CPU: "CPU/limit", MEMORY: "memory/limit"}
HEALTH = "pods"
UNREADY_MARGIN = 0.25
"""Share of not-ready pods one group must have above another to be worse by readiness."""
RESTART_MARGIN = 1.0
"""Restarts per pod one group must have above another to be worse by restarts."""
FAILING = frozenset(
    {
        "CrashLoopBackOff",
        "Error",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "OOMKilled",
        "StartError",
        "Unschedulable",
    }
)


def fmt(signal: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if signal == ERROR_RATIO:
        return f"{value * 100:.1f}%"
    if signal == LATENCY:
        return f"{value:.3g}s"
    if signal in (CPU, MEMORY):
        return f"{value * 100:.0f}%"
    return f"{value:.3g}"


def clearly_worse(signal: str, value: float, reference: float) -> bool:
    floor = GROUP_FLOORS.get(signal, GROUP_FLOORS[ERROR_RATIO])
    return value - reference >= floor.of(reference)


@dataclass(frozen=True)
class SignalComparison:
    """One signal across the groups of one dimension, at the same time (their latest samples)."""

    signal: str
    dimension: str
    values: Mapping[str, ScopedValue]

    @property
    def serving(self) -> dict[str, float]:
        return {k: v.current for k, v in self.values.items() if v.current is not None}

    @property
    def best(self) -> tuple[str, float] | None:
        serving = self.serving
        if len(serving) < 2:
            return None
        return min(serving.items(), key=lambda kv: (kv[1], kv[0]))

    @property
    def worse(self) -> frozenset[str]:
        best = self.best
        if best is None:
            return frozenset()
        return frozenset(k for k, v in self.serving.items() if clearly_worse(self.signal, v, best[1]))

    def line(self, key: str) -> str:
        """``pods of revision 7: p99 latency 1.2s, against 0.12s for revision 6 at the same time``."""
        serving = self.serving
        others = ", ".join(
            f"{fmt(self.signal, v)} for {self.dimension} {k}" for k, v in serving.items() if k != key
        )
        return (
            f"pods of {self.dimension} {key}: {NAMES.get(self.signal, self.signal)} "
            f"{fmt(self.signal, serving.get(key))}, against {others} at the same time"
        )


def _rate(g: PodGroup, value: float) -> float:
    return value / g.total if g.total else 0.0


def _failing(g: PodGroup) -> int:
    return sum(r.count for r in g.reasons if r.reason in FAILING)


@dataclass(frozen=True)
class HealthComparison:
    """Readiness, restarts and failing pods of the groups of one dimension, now."""

    dimension: str
    groups: Sequence[PodGroup]

    def worse(self) -> dict[str, str]:
        """Groups worse than every other group with pods, with the sentence saying how."""
        present = [g for g in self.groups if g.total]
        if len(present) < 2:
            return {}
        out: dict[str, str] = {}
        for g in present:
            others = [o for o in present if o.key != g.key]
            unready = _rate(g, g.total - g.ready)
            restarts = _rate(g, g.restarts)
            if _failing(g) and not any(_failing(o) for o in others):
                reasons = ", ".join(f"{r.reason}x{r.count}" for r in g.reasons if r.reason in FAILING)
                out[g.key] = (
                    f"{self.dimension} {g.key}: {g.ready}/{g.total} pods ready, {reasons}; others have none"
                )
            elif all(unready - _rate(o, o.total - o.ready) >= UNREADY_MARGIN for o in others):
                out[g.key] = (
                    f"{self.dimension} {g.key}: {g.ready}/{g.total} pods ready, against "
                    + ", ".join(f"{o.ready}/{o.total} for {self.dimension} {o.key}" for o in others)
                )
            elif all(restarts - _rate(o, o.restarts) >= RESTART_MARGIN for o in others):
                out[g.key] = (
                    f"{self.dimension} {g.key}: {restarts:.1f} restarts per pod, against "
                    + ", ".join(f"{_rate(o, o.restarts):.1f} for {self.dimension} {o.key}" for o in others)
                )
        return out


@dataclass(frozen=True)
class Comparison:
    """Every SLI of one dimension (``revision`` or ``node``)."""

    dimension: str
    signals: Mapping[str, SignalComparison] = field(default_factory=dict)
    health: HealthComparison | None = None

    def serving(self) -> set[str]:
        """Groups with a current sample on some signal, or with pods."""
        keys = {k for c in self.signals.values() for k in c.serving}
        if self.health is not None:
            keys |= {g.key for g in self.health.groups if g.total}
        return keys

    def worse(self, key: str) -> list[str]:
        """How ``key``'s pods are worse than the others' at the same time, one line per SLI."""
        lines = [c.line(key) for c in self.signals.values() if key in c.worse]
        if self.health is not None and key in (worse := self.health.worse()):
            lines.append(worse[key])
        return lines

    def compared(self, key: str) -> list[str]:
        """The signals on which ``key`` was compared with another serving group."""
        return [s for s, c in self.signals.items() if c.best is not None and key in c.serving]

    def no_worse(self, key: str, signals: Sequence[str] | None = None) -> list[str]:
        """Lines for the signals where ``key`` was compared and is no worse (empty when it was not
        compared at all, or is worse on any SLI)."""
        if self.worse(key):
            return []
        wanted = [s for s in self.compared(key) if signals is None or s in signals]
        return [self.signals[s].line(key) for s in wanted]

    def worse_groups(self) -> set[str]:
        keys = {k for c in self.signals.values() for k in c.worse}
        if self.health is not None:
            keys |= set(self.health.worse())
        return keys


def compare(evidence: Evidence, dimension: str) -> Comparison:
    """Every SLI of ``dimension`` (any breakdown the evidence has, e.g. ``revision``, ``node``), with
    pod health where the evidence groups pods that way."""
    signals = {}
    for signal in SIGNALS:
        values = by_scope(evidence, signal, dimension)
        if values:
            signals[signal] = SignalComparison(signal, dimension, values)
    groups: list[PodGroup] = []
    if dimension == "revision":
        groups = list(evidence.pod_health.by_revision)
    elif dimension == "node":  # Pending pods are grouped under a placeholder, not a node
        groups = [g for g in evidence.pod_health.by_node if g.key != UNSCHEDULED]
    return Comparison(dimension, signals, HealthComparison(dimension, groups))
