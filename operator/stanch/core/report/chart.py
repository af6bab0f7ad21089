"""Chart data for the post-incident report: the symptom series, the moments that matter, and where
their labels go.

Pure data and layout; the wiring draws it (matplotlib stays out of the core). Labels are short
(``revision 2``, ``onset``) and numbered; the full text of each marker is in the legend under the
chart, so a label never has to be cut to fit and two close markers never print over each other:
:func:`layout_labels` stacks them in rows and proves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from stanch.core.models import Incident, TimelineEntry, TimelineKind
from stanch.core.report.blame import blamed_entries

CHART_SIGNALS = ("error_ratio", "latency_p99", "throughput")
MARKER_KINDS = frozenset(
    {TimelineKind.DEPLOY, TimelineKind.CONFIG_CHANGE, TimelineKind.MITIGATION, TimelineKind.ONSET}
)
LEGEND_WIDTH = 110
LABEL_ROWS = 4
LABEL_GAP = 0.01
"""Space between two labels in a row, as a fraction of the axes' width."""


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
    """Short: ``revision 2``, ``onset``, ``Rollback``."""
    detail: str = ""
    """The timeline's full line, for the legend."""
    blamed: bool = False
    """The change the top hypothesis accuses."""


@dataclass(frozen=True)
class ChartData:
    """What to plot: one series per symptom signal (first = main axis) and vertical markers."""

    title: str
    series: list[ChartSeries] = field(default_factory=list)
    markers: list[ChartMarker] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)

    def span(self) -> tuple[datetime, datetime] | None:
        """The time axis: every point and every marker on it."""
        times = [t for s in self.series for t, _ in s.points] + [m.time for m in self.markers]
        return (min(times), max(times)) if times else None

    def legend(self) -> list[str]:
        """One line per marker, numbered like its label: the timeline's full line."""
        lines = []
        for i, m in enumerate(self.markers, 1):
            text = m.detail or m.label
            # "onset: ...", "mitigation x: ..." name their kind already; "revision 2: ..." does not.
            kind = "" if text.lower().startswith(m.kind.value.lower()) else f"{m.kind.value}: "
            blamed = "BLAMED " if m.blamed else ""
            lines.append(_clip(f"{i}  {m.time.strftime('%H:%M:%SZ')}  {blamed}{kind}{text}", LEGEND_WIDTH))
        return lines


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def short_label(entry: TimelineEntry) -> str:
    if entry.kind is TimelineKind.ONSET:
        return "onset"
    if entry.kind is TimelineKind.MITIGATION:
        # "mitigation NAME: Rollback by alice (Succeeded)": the action is what the reader scans for.
        rest = entry.summary.split(": ", 1)[-1]
        return rest.split(" ", 1)[0]
    if entry.kind is TimelineKind.DEPLOY and "revision" in entry.details:
        return f"revision {entry.details['revision']}"
    return entry.summary.split(": ", 1)[0]


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
    top = status.hypotheses[0] if status.hypotheses else None
    blamed = {id(e) for e in blamed_entries(top, status.timeline)} if top is not None else set()
    markers = [
        ChartMarker(
            e.time,
            e.kind,
            ("blamed: " if id(e) in blamed else "") + short_label(e),
            e.summary,
            id(e) in blamed,
        )
        for e in status.timeline
        if e.kind in MARKER_KINDS
    ]
    return ChartData(title, series, markers)


@dataclass(frozen=True)
class PlacedLabel:
    """A marker's label: its text, the row above the chart, and the horizontal extent it covers
    (fractions of the axes' width; the text starts at ``left`` and ends at ``right``)."""

    marker: int
    text: str
    row: int
    left: float
    right: float
    anchor: float
    """Where the text is anchored: ``left`` for left-aligned text, ``right`` for right-aligned."""
    align: str


def _fraction(time: datetime, start: datetime, end: datetime) -> float:
    span = (end - start).total_seconds()
    if span <= 0:
        return 0.5
    return min(1.0, max(0.0, (time - start).total_seconds() / span))


def _extents(x: float, width: float) -> list[tuple[float, float, float, str]]:
    """Where a label of ``width`` can go beside its marker at ``x``: starting at it, ending at it,
    or, near an edge, pushed inside the axes."""
    options = []
    if x + width <= 1.0:
        options.append((x, x + width, x, "left"))
    if x - width >= 0.0:
        options.append((x - width, x, x, "right"))
    if not options:
        left = min(max(0.0, x - width / 2), 1.0 - width)
        options.append((left, left + width, left, "left"))
    return options


def layout_labels(
    markers: Sequence[ChartMarker],
    start: datetime,
    end: datetime,
    *,
    char_width: float,
    rows: int = LABEL_ROWS,
    gap: float = LABEL_GAP,
) -> list[PlacedLabel]:
    """Rows and extents for the markers' labels, ``"N label"``, so that no two labels in a row
    overlap and none leaves the axes. A label that finds no room in ``rows`` rows shrinks to its
    number; one that still finds none is left out (its line and its legend entry remain)."""
    used: list[list[tuple[float, float]]] = [[] for _ in range(rows)]
    placed = []
    order = sorted(range(len(markers)), key=lambda i: (not markers[i].blamed, markers[i].time, i))
    for i in order:
        marker = markers[i]
        x = _fraction(marker.time, start, end)
        max_chars = max(1, int(1.0 / char_width))
        for text in (f"{i + 1} {marker.label}"[:max_chars], str(i + 1)):
            width = len(text) * char_width
            spot = next(
                (
                    (row, option)
                    for row in range(rows)
                    for option in _extents(x, width)
                    if all(option[1] + gap <= lo or option[0] >= hi + gap for lo, hi in used[row])
                ),
                None,
            )
            if spot is not None:
                row, (left, right, anchor, align) = spot
                used[row].append((left, right))
                placed.append(PlacedLabel(i, text, row, left, right, anchor, align))
                break
    return sorted(placed, key=lambda p: p.marker)
