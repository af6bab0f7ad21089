"""Status conditions in the shape Kubernetes tooling expects (metav1.Condition), as pure functions.

Conditions are kept as plain mappings because they travel straight into a status patch; the time
comes from the caller so tests need no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

MAX_CONDITIONS = 16
MAX_MESSAGE = 1024


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with `type_` set. lastTransitionTime moves only when the status flips, which is
    what `kubectl wait` and dashboards rely on to tell "since when"."""
    if status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    previous = next((c for c in conditions or () if c.get("type") == type_), None)
    transition = (
        previous["lastTransitionTime"]
        if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
        else rfc3339(now)
    )
    updated: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    others = [dict(c) for c in conditions or () if c.get("type") != type_]
    return [*others, updated][-MAX_CONDITIONS:]
