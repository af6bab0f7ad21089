"""Plain-text layout shared by the views: kubectl's column tables and relative ages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

NONE = "<none>"


def age(then: datetime | None, now: datetime) -> str:
    """kubectl's AGE: ``45s``, ``12m``, ``3h4m``, ``2d3h``."""
    if then is None:
        return NONE
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes and hours < 8 else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours and days < 8 else f"{days}d"


def stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else NONE


def one_line(text: object, limit: int = 0) -> str:
    flat = " ".join(str(text).split())
    if limit and len(flat) > limit:
        return flat[: limit - 1] + "…"
    return flat


def table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """Columns separated by three spaces, as ``kubectl get`` prints them; the last column is not
    padded."""
    cells = [[str(c) for c in header], *[[one_line(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append((indent + "   ".join(padded)).rstrip())
    return lines


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.2f}%"


def secs(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f}s"
