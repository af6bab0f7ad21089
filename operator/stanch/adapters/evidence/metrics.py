"""Signal queries over the investigation window: overall and broken down by revision, node and pod
(per pod only the latest few samples: the pods are compared with each other now).

Queries are rendered from named templates with escaped label values (``stanch.core.investigation.signals``);
failures come back as typed problems so that a Prometheus outage reads as "no data", never as
"healthy".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.adapters.prometheus import PrometheusClient, PrometheusError, Series
from stanch.core.investigation.breakdowns import DEPENDENCY_ERRORS, DIMENSIONS, HOST, POD, breakdown_name
from stanch.core.investigation.signals import TemplateError, render

# What the evidence keeps (the chart and onset detection get at most 60 points per series): asking
# for more only multiplies Prometheus's work, which grows with series x steps.
TARGET_POINTS = 60
# Breakdowns keep no points, only before/now/peak per revision or node: a coarser step will do.
BREAKDOWN_POINTS = 20
MIN_STEP = timedelta(seconds=1)
# Per-pod breakdowns compare pods at one moment, the latest: one evaluation, not the window (at
# 1,000 pods each evaluation reads every pod's series; a window would be the refresh's heaviest query).
POD_SAMPLES = 1


@dataclass(frozen=True)
class SignalResult:
    """The raw answer for one signal and one dimension (``overall``, ``revision`` or ``node``)."""

    signal: str
    dimension: str
    series: list[Series]
    error: str | None = None


def step_for(start: datetime, end: datetime, points: int = TARGET_POINTS) -> timedelta:
    span = max((end - start).total_seconds(), 1.0)
    return max(MIN_STEP, timedelta(seconds=round(span / points) or 1))


async def query_signals(
    prometheus: PrometheusClient,
    templates: Mapping[str, str],
    signals: list[str],
    values: Mapping[str, str],
    start: datetime,
    end: datetime,
    semaphore: asyncio.Semaphore,
    seconds: float,
    budget: float,
) -> list[SignalResult]:
    """Every signal overall, plus each ``<signal>_by_<dimension>`` template that exists.

    Each query has ``seconds``; all of them together have ``budget``. Queries still queued or running
    when the budget runs out are reported as timed out, and the answers that did arrive are kept: a
    slow breakdown must not cost the overall error ratio.
    """
    steps = {"overall": step_for(start, end), "breakdown": step_for(start, end, BREAKDOWN_POINTS)}
    jobs: list[tuple[str, str, str | None]] = []
    for signal in signals:
        jobs.append((signal, "overall", templates.get(signal)))
        for dim in DIMENSIONS:
            name = breakdown_name(signal, dim)
            if name in templates:
                jobs.append((signal, dim, templates[name]))
    if DEPENDENCY_ERRORS in templates:
        jobs.append((DEPENDENCY_ERRORS, HOST, templates[DEPENDENCY_ERRORS]))

    async def one(signal: str, dimension: str, template: str | None) -> SignalResult:
        if template is None:
            return SignalResult(signal, dimension, [], f"no signal template named {signal!r}")
        name = signal if dimension in ("overall", HOST) else breakdown_name(signal, dimension)
        try:
            query = render(name, template, values)
        except TemplateError as exc:
            return SignalResult(signal, dimension, [], str(exc))
        async with semaphore:
            try:
                step = steps["overall" if dimension == "overall" else "breakdown"]
                since = max(start, end - (POD_SAMPLES - 1) * step) if dimension == POD else start
                series = await asyncio.wait_for(prometheus.query_range(query, since, end, step), seconds)
            except TimeoutError:
                return SignalResult(signal, dimension, [], f"timeout: no answer within {seconds:g}s")
            except PrometheusError as exc:
                return SignalResult(signal, dimension, [], f"{exc.kind}: {exc.message}"[:1000])
        return SignalResult(signal, dimension, series)

    tasks = [asyncio.ensure_future(one(*job)) for job in jobs]
    if not tasks:
        return []
    await asyncio.wait(tasks, timeout=budget)
    results = []
    for task, (signal, dimension, _) in zip(tasks, jobs, strict=True):
        if task.done():
            results.append(task.result())
        else:
            task.cancel()
            results.append(
                SignalResult(signal, dimension, [], f"timeout: not answered within the {budget:g}s budget")
            )
    return results
