"""`stanch report NAMESPACE/NAME`: an Incident's status as a post-incident document, a chart and
suggested alerts.

Reads the Incident and the Mitigations that name it through the Kubernetes adapter, renders with
the pure report core, and draws the chart with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from stanch.adapters.kube import KubeClient, KubeError
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES
from stanch.core.models import Incident, Mitigation
from stanch.core.report import ChartData, chart_series, layout_labels, render_markdown, suggested_alerts

EXIT_OK = 0
EXIT_FAILURE = 1


class ReportError(Exception):
    """Something the user can act on; the message is the whole explanation."""


async def read_incident(
    kube: KubeClient, namespace: str, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Incident and every Mitigation in its namespace that refers to it (by spec or status)."""
    incident = await kube.get("Incident", name, namespace)
    if incident is None:
        raise ReportError(f"Incident {namespace}/{name} not found")
    listed = {m.get("name") for m in (incident.get("status") or {}).get("mitigations") or ()}
    mitigations = [
        m
        for m in await kube.list("Mitigation", namespace)
        if ((m.get("spec") or {}).get("incidentRef") or {}).get("name") == name
        or m["metadata"]["name"] in listed
    ]
    return incident, mitigations


def parse(
    incident: dict[str, Any], mitigations: Sequence[dict[str, Any]], err: TextIO
) -> tuple[Incident, list[Mitigation]]:
    try:
        parsed = Incident.model_validate(incident)
    except ValidationError as exc:
        raise ReportError(
            f"the Incident does not match this version's schema: {exc.errors()[0]['msg']}"
        ) from None
    out = []
    for m in mitigations:
        try:
            out.append(Mitigation.model_validate(m))
        except ValidationError:
            print(
                f"warning: Mitigation {m['metadata']['name']} skipped: not readable by this version", file=err
            )
    return parsed, out


LABEL_FONT = 7
ROW_POINTS = 11
"""Height of one label row above the chart, in points (a 7 pt label and its spacing)."""


def draw_chart(data: ChartData, path: Path) -> None:
    """One panel per signal, sharing the time axis, with deploy/config/mitigation/onset markers;
    their numbered labels are laid out by :func:`layout_labels` and explained in a legend below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import ScaledTranslation

    series = [s for s in data.series if s.points] or data.series[:1]
    rows = max(len(series), 1)
    legend = data.legend()
    legend_inches = 0.16 * len(legend) + (0.3 if legend else 0.0)
    fig, axes = plt.subplots(
        rows, 1, figsize=(10, 2.6 * rows + 0.8 + legend_inches), sharex=True, squeeze=False
    )
    colours = {"Deploy": "tab:red", "ConfigChange": "tab:purple", "Mitigation": "tab:green", "Onset": "black"}
    for ax, s in zip(axes[:, 0], series, strict=False):
        if s.points:
            ax.plot([t for t, _ in s.points], [v for _, v in s.points], linewidth=1.5)
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
        ax.set_ylabel(f"{s.signal}\n({s.unit})" if s.unit else s.signal)
        ax.grid(alpha=0.3)
        for marker in data.markers:
            ax.axvline(
                marker.time,
                color=colours.get(marker.kind.value, "grey"),
                linestyle="-" if marker.blamed else "--",
                linewidth=2.2 if marker.blamed else 1,
            )
    top = axes[0, 0]
    span = data.span()
    used_rows = 0
    if span is not None and data.markers:
        start, end = span
        if start == end:
            start, end = start - timedelta(minutes=1), end + timedelta(minutes=1)
        top.set_xlim(start, end)
        fig.tight_layout()
        # Characters as a fraction of the axes' width, with room to spare: the layout must hold for
        # the widest glyphs, not the average one.
        axes_points = top.get_window_extent().width * 72 / fig.dpi
        char_width = 0.68 * LABEL_FONT / axes_points
        placed = layout_labels(data.markers, start, end, char_width=char_width)
        used_rows = max((p.row + 1 for p in placed), default=0)
        for p in placed:
            marker = data.markers[p.marker]
            offset = ScaledTranslation(0, (4 + p.row * ROW_POINTS) / 72, fig.dpi_scale_trans)
            top.text(
                p.anchor if p.align == "left" else p.right,
                1.0,
                p.text,
                transform=top.transAxes + offset,
                ha=p.align,
                va="bottom",
                fontsize=LABEL_FONT,
                color=colours.get(marker.kind.value, "grey"),
                fontweight="bold" if marker.blamed else "normal",
            )
    if not series:
        top.text(0.5, 0.5, "no signal data was recorded", transform=top.transAxes, ha="center")
    top.set_title(data.title, pad=8 + used_rows * ROW_POINTS)
    fig.autofmt_xdate()
    if legend:
        fig.text(
            0.1,
            legend_inches - 0.1,
            "\n".join(legend),
            transform=fig.dpi_scale_trans,
            fontsize=LABEL_FONT,
            va="top",
            family="monospace",
        )
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def report_command(
    namespace: str,
    name: str,
    *,
    out: Path | None,
    chart: Path | None,
    alerts: Path | None,
    templates: Mapping[str, str] | None = None,
    stdout: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    async def fetch() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with KubeClient.from_env() as kube:
            return await read_incident(kube, namespace, name)

    try:
        raw, raw_mitigations = asyncio.run(fetch())
        incident, mitigations = parse(raw, raw_mitigations, err)
    except ReportError as exc:
        print(f"stanch report: error: {exc}", file=err)
        return EXIT_FAILURE
    except KubeError as exc:
        print(f"stanch report: error: reading {namespace}/{name}: {exc}", file=err)
        return EXIT_FAILURE
    document = render_markdown(incident, mitigations, now=datetime.now(UTC))
    if out is None:
        stdout.write(document)
    else:
        out.write_text(document, encoding="utf-8")
        print(f"wrote {out}", file=err)
    if chart is not None:
        data = chart_series(incident)
        if data.empty:
            print("warning: the Incident holds no signal series; the chart says so", file=err)
        draw_chart(data, chart)
        print(f"wrote {chart}", file=err)
    if alerts is not None:
        alerts.write_text(
            yaml.safe_dump(
                suggested_alerts(incident, templates or DEFAULT_SIGNAL_TEMPLATES), sort_keys=False
            ),
            encoding="utf-8",
        )
        print(f"wrote {alerts}", file=err)
    return EXIT_OK
