"""Readable diffs for plans (what changes) and drift (what someone else changed).

Both land in the Mitigation's status and Events, so both sides are redacted first
(:func:`stanch.core.redaction.redact`); a secret-looking value that differs is reported by name
only, as a ``~`` line.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from stanch.core.plans.jsonpatch import prune_empty
from stanch.core.redaction import redact, secret_changes

DIFF_MAX = 8000


def _dump(value: Any) -> list[str]:
    return json.dumps(prune_empty(value), indent=1, sort_keys=True, default=str).splitlines()


def unified_diff(expected: Any, live: Any, label: str) -> str:
    lines = difflib.unified_diff(
        _dump(redact(expected)),
        _dump(redact(live)),
        fromfile=f"{label} (as Stanch left it)",
        tofile=f"{label} (live)",
        lineterm="",
        n=2,
    )
    hidden = [f"~ {line}" for line in secret_changes(expected, live)]
    text = "\n".join([*lines, *hidden])
    return text if len(text) <= DIFF_MAX else text[:DIFF_MAX] + "\n... (truncated)"


def diff_lines(before: Any, after: Any, label: str) -> list[str]:
    return [line for line in unified_diff(before, after, label).splitlines() if line[:1] in "+-~"][:20]
