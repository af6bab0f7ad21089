"""Per-pod evidence: each pod's value of a signal beside its siblings' at the same moment.

The overall resource signals take the worst pod (``max by pod``), so one pod pinned at its CPU limit
reads exactly like a workload that is out of CPU. The per-pod breakdown tells them apart. The status
cannot hold a thousand pods' values, so each signal is kept as a spread: the median over all pods,
the median and median absolute deviation of the siblings of the highest pod, and the few highest
pods. Deciding which pod is an outlier is the analysis's job (``rules/outliers.py``).

Pure and linear in the number of pods (one sort per signal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.core.investigation.gathering import is_terminating, pod_revision, restarts_of
from stanch.core.models import PodSpread, PodValue

HIGHEST = 5
RESTARTS = "restarts"


@dataclass(frozen=True)
class PodPlace:
    """Where a pod sits: its revision and node, for the evidence lines."""

    revision: str | None
    node: str | None


def places(pods: Iterable[Mapping[str, Any]], by_hash: Mapping[str, int]) -> dict[str, PodPlace]:
    """Pod name → revision and node, for the target's pods that are not terminating."""
    out: dict[str, PodPlace] = {}
    for pod in pods:
        if is_terminating(pod):
            continue
        name = (pod.get("metadata") or {}).get("name")
        if name:
            node = (pod.get("spec") or {}).get("nodeName") or None
            out[str(name)] = PodPlace(pod_revision(pod, by_hash), node)
    return out


def _median(ordered: Sequence[float]) -> float:
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(
    signal: str,
    values: Mapping[str, float],
    *,
    unit: str | None = None,
    at: datetime | None = None,
    where: Mapping[str, PodPlace] | None = None,
) -> PodSpread | None:
    """The spread of ``values`` (pod → value); None without a finite value. Pods not in ``where``
    (when given) are left out: a series of a pod that is gone or terminating says nothing now."""
    clean = {pod: v for pod, v in values.items() if math.isfinite(v) and (where is None or pod in where)}
    if not clean:
        return None
    ranked = sorted(clean.items(), key=lambda kv: (-kv[1], kv[0]))
    ordered = sorted(clean.values())
    siblings = sorted(v for _, v in ranked[1:])
    siblings_median = _median(siblings) if siblings else None
    siblings_mad = (
        _median(sorted(abs(v - siblings_median) for v in siblings)) if siblings_median is not None else None
    )
    place = where or {}
    return PodSpread(
        signal=signal,
        unit=unit,
        at=at,
        pods=len(clean),
        median=_median(ordered),
        siblings_median=siblings_median,
        siblings_mad=siblings_mad,
        highest=[
            PodValue(
                pod=pod,
                value=value,
                revision=place[pod].revision if pod in place else None,
                node=place[pod].node if pod in place else None,
            )
            for pod, value in ranked[:HIGHEST]
        ],
    )


def restart_spread(pods: Iterable[Mapping[str, Any]], by_hash: Mapping[str, int]) -> PodSpread | None:
    """Container restarts per pod, from the pods themselves (no metrics needed)."""
    listed = [p for p in pods if not is_terminating(p) and (p.get("metadata") or {}).get("name")]
    values = {str(p["metadata"]["name"]): float(restarts_of(p)) for p in listed}
    return spread(RESTARTS, values, unit="restarts", where=places(listed, by_hash))


def latest_values(
    series: Iterable[tuple[str, Sequence[tuple[datetime, float]]]], fresh_after: datetime
) -> tuple[dict[str, float], datetime | None]:
    """Each pod's latest finite sample, for pods whose series is still fresh, and the time they share
    (the newest sample time): the values compared are those of one moment, not each pod's own."""
    out: dict[str, float] = {}
    newest: datetime | None = None
    for pod, points in series:
        clean = [(t, v) for t, v in points if math.isfinite(v)]
        if not pod or not clean:
            continue
        moment, value = clean[-1]
        if moment < fresh_after:
            continue
        out[pod] = max(out.get(pod, -math.inf), value)
        newest = moment if newest is None or moment > newest else newest
    return out, newest
