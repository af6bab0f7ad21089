"""Sample named signal templates from Prometheus for the guard: baselines and per-interval checks.

Each signal is rendered from its template with escaped label values, queried over a window, and
returned as the series of values it produced — or as *no data* with the reason. Missing data never
turns into a zero: an empty result, a failing Prometheus, a template with no value for one of its
placeholders, all come back as ``points=None`` with an error the guard can put in status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.adapters.prometheus import PrometheusClient, PrometheusError
from stanch.core.investigation.signals import TemplateError, render


@dataclass(frozen=True)
class SignalSamples:
    """One signal over one window. ``points is None`` means no data; ``error`` says why."""

    signal: str
    points: tuple[float, ...] | None
    error: str | None = None
    query: str | None = None
    """The rendered PromQL, for the audit trail and debugging."""


class SignalSampler:
    """Queries signal templates by name. ``templates`` maps a signal name to its PromQL template."""

    def __init__(self, prometheus: PrometheusClient, templates: Mapping[str, str]) -> None:
        self._prometheus = prometheus
        self._templates = dict(templates)

    async def sample(
        self,
        signals: Sequence[str],
        *,
        values: Mapping[str, str],
        start: datetime,
        end: datetime,
        step_seconds: float,
        templates: Mapping[str, str] | None = None,
    ) -> tuple[SignalSamples, ...]:
        """Every signal in ``signals``, queried concurrently over ``[start, end]``, in the given order.
        ``templates`` (e.g. a policy's) take precedence over the sampler's own."""
        step = timedelta(seconds=max(step_seconds, 1.0))
        table = {**self._templates, **(templates or {})}
        results = await asyncio.gather(
            *(self._one(table, name, values, start, end, step) for name in signals)
        )
        return tuple(results)

    async def _one(
        self,
        table: Mapping[str, str],
        name: str,
        values: Mapping[str, str],
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> SignalSamples:
        template = table.get(name)
        if template is None:
            return SignalSamples(name, None, f"no signal template named {name!r}")
        try:
            query = render(name, template, values)
        except TemplateError as exc:
            return SignalSamples(name, None, str(exc))
        try:
            series = await self._prometheus.query_range(query, start, end, step)
        except PrometheusError as exc:
            return SignalSamples(name, None, f"prometheus {exc.kind}: {exc.message}"[:1000], query)
        if not series or all(not s.points for s in series):
            return SignalSamples(name, None, "the query returned no data in the window", query)
        if len(series) > 1:
            # A guard signal must be one number per instant; several series means the template
            # does not aggregate, and picking one would be a guess.
            return SignalSamples(
                name, None, f"the query returned {len(series)} series; a guard signal must return one", query
            )
        return SignalSamples(name, tuple(v for _, v in series[0].points), None, query)
