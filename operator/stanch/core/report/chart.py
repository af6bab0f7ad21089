"""Chart data for the post-incident report: the symptom series and the moments that matter.

Pure data; the wiring draws it (matplotlib stays out of the core)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from stanch.core.models import Incident, TimelineKind

CHART_SIGNALS = ("error_ratio", "latency_p99", "throughput")
MARKER_KINDS = frozenset(
    {TimelineKind.DEPLOY, TimelineKind.CONFIG_CHANGE, TimelineKind.MITIGATION, TimelineKind.ONSET}
)


@dataclass(frozen=True)
class ChartSeries:
    signal: str
    unit: str | None
    points: list[tuple[datetime, float]]


@dataclass(frozen=True)
class ChartMarker:
    time: datetime
    kind: TimelineKind
    label: str


@dataclass(frozen=True)
class ChartData:
    """What to plot: one series per symptom signal (first = main axis) and vertical markers."""

    title: str
    series: list[ChartSeries] = field(default_factory=list)
    markers: list[ChartMarker] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def chart_series(incident: Incident) -> ChartData:
    status = incident.status
    title = f"{incident.metadata.name or 'incident'}: {incident.spec.target.display()}"
    if status is None:
        return ChartData(title)
    series = []
    if status.evidence is not None:
        for signal in CHART_SIGNALS:
            summary = next(
                (m for m in status.evidence.metrics if m.signal == signal and m.scope == "overall"), None
            )
            if summary is not None and summary.points:
                series.append(ChartSeries(signal, summary.unit, [(p.time, p.value) for p in summary.points]))
    markers = [
        ChartMarker(e.time, e.kind, e.summary if len(e.summary) <= 60 else e.summary[:59] + "...")
        for e in status.timeline
        if e.kind in MARKER_KINDS
    ]
    return ChartData(title, series, markers)
