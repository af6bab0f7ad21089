"""Readable diffs for plans (what changes) and drift (what someone else changed)."""

from __future__ import annotations

import difflib
import json
from typing import Any

from stanch.core.plans.jsonpatch import prune_empty

DIFF_MAX = 8000


def _dump(value: Any) -> list[str]:
    return json.dumps(prune_empty(value), indent=1, sort_keys=True, default=str).splitlines()


def unified_diff(expected: Any, live: Any, label: str) -> str:
    lines = difflib.unified_diff(
        _dump(expected),
        _dump(live),
        fromfile=f"{label} (as Stanch left it)",
        tofile=f"{label} (live)",
        lineterm="",
        n=2,
    )
    text = "\n".join(lines)
    return text if len(text) <= DIFF_MAX else text[:DIFF_MAX] + "\n... (truncated)"


def diff_lines(before: Any, after: Any, label: str) -> list[str]:
    return [line for line in unified_diff(before, after, label).splitlines() if line[:1] in "+-"][:20]
