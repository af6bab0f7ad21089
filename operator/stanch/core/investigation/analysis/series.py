"""Finding signal series in the evidence, and the small robust statistics the analysis needs."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from stanch.core.models import Evidence, MetricPoint, MetricSummary

ERROR_RATIO = "error_ratio"
LATENCY = "latency_p99"
THROUGHPUT = "throughput"
MEMORY = "memory_vs_limit"
CPU = "cpu_vs_limit"

OVERALL = "overall"
# The evidence model documents ``revision:<n>``/``node:<name>``; ``=`` is accepted too so a scope
# written like a label matcher is not silently ignored.
_SCOPE = re.compile(r"^(revision|node)[:=](.+)$")


def parse_scope(scope: str) -> tuple[str, str] | None:
    """``("revision", "7")`` for ``revision:7``; ``None`` for ``overall`` or anything unknown."""
    match = _SCOPE.match(scope.strip())
    return (match.group(1), match.group(2).strip()) if match else None


def overall(evidence: Evidence, signal: str) -> MetricSummary | None:
    """The overall summary of a signal, if collected."""
    return next((m for m in evidence.metrics if m.signal == signal and m.scope == OVERALL), None)


def points_of(evidence: Evidence, signal: str) -> list[MetricPoint]:
    """The overall series of a signal, oldest first, without non-finite samples."""
    summary = overall(evidence, signal)
    if summary is None:
        return []
    return sorted((p for p in summary.points if math.isfinite(p.value)), key=lambda p: p.time)


@dataclass(frozen=True)
class ScopedValue:
    """A signal's value for one revision or node."""

    key: str
    before: float | None
    now: float | None
    peak: float | None

    @property
    def current(self) -> float | None:
        """The latest value; ``None`` once the group's pods are gone (its old numbers say nothing
        about how it would do now, so it must not be compared with groups still serving)."""
        return self.now


def by_scope(evidence: Evidence, signal: str, kind: str) -> dict[str, ScopedValue]:
    """Per-revision (``kind="revision"``) or per-node values of a signal; failed queries skipped."""
    out: dict[str, ScopedValue] = {}
    for m in evidence.metrics:
        parsed = parse_scope(m.scope)
        if m.signal != signal or parsed is None or parsed[0] != kind or m.error:
            continue
        if m.now is None and m.before is None:
            continue
        # A group whose series stopped (a scaled-down revision) is kept with ``now=None``: its
        # ``before`` still says how it did while it served.
        out[parsed[1]] = ScopedValue(parsed[1], m.before, m.now, m.peak)
    return out


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def noise_sigma(values: Sequence[float]) -> float:
    """Noise level sigma from successive differences.

    Differences cancel steps and slow trends, so a real change does not inflate its own noise
    estimate and then hide behind it. Two estimates, the larger wins: the median absolute deviation
    (robust to a few jumps) and the root mean square with the largest 10 % of deviations trimmed —
    the MAD alone collapses to zero on clipped or quantised series (an error ratio that is mostly
    exactly 0) and would make every burst look significant.
    """
    if len(values) < 3:
        return 0.0
    diffs = [b - a for a, b in itertools.pairwise(values)]
    centre = median(diffs)
    deviations = sorted(abs(d - centre) for d in diffs)
    mad = median(deviations) / 0.6745
    kept = deviations[: max(1, len(deviations) - max(1, len(deviations) // 10))]
    trimmed = math.sqrt(sum(d * d for d in kept) / len(kept))
    return max(mad, trimmed) / math.sqrt(2)


def slope(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope per sample and its standard error (``inf`` when undefined)."""
    n = len(values)
    if n < 3:
        return 0.0, math.inf
    xbar = (n - 1) / 2
    ybar = mean(values)
    sxx = sum((i - xbar) ** 2 for i in range(n))
    b = sum((i - xbar) * (y - ybar) for i, y in enumerate(values)) / sxx
    resid = sum((y - ybar - b * (i - xbar)) ** 2 for i, y in enumerate(values))
    return b, math.sqrt(resid / (n - 2) / sxx)
