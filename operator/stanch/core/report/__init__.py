"""Post-incident reporting from an Incident's status: the Markdown document, suggested alerts as a
PrometheusRule, and the data for the chart (drawn by the wiring, not here)."""

from stanch.core.report.alerts import suggested_alerts
from stanch.core.report.chart import (
    ChartData,
    ChartMarker,
    ChartSeries,
    PlacedLabel,
    chart_series,
    layout_labels,
)
from stanch.core.report.markdown import follow_ups, render_markdown

__all__ = [
    "ChartData",
    "ChartMarker",
    "ChartSeries",
    "PlacedLabel",
    "chart_series",
    "follow_ups",
    "layout_labels",
    "render_markdown",
    "suggested_alerts",
]
