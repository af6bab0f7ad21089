"""The first handlers: acknowledge Incidents and Mitigations so `kubectl get` shows they were seen.

Honest on purpose: `Accepted` means "the operator saw this generation", nothing more. The
investigation (issue 4) and the mitigation machine replace these with real work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf

import stanch
from stanch.core.conditions import set_condition
from stanch.wiring.logs import bind_object
from stanch.wiring.metrics import Metrics

# Mitigations are driven by handlers/mitigation.py, which writes their status itself.
PLURALS = {"Incident": "incidents"}
ACCEPTED = "Accepted"


def accept_patch(body: kopf.Body | dict[str, Any], patch: kopf.Patch | dict[str, Any], now: datetime) -> None:
    """Write observedGeneration and the Accepted condition into `patch.status`."""
    generation = body.get("metadata", {}).get("generation")
    status = body.get("status") or {}
    kind = body.get("kind", "object")
    patch.setdefault("status", {})
    patch["status"]["observedGeneration"] = generation
    patch["status"]["conditions"] = set_condition(
        status.get("conditions"),
        type_=ACCEPTED,
        status="True",
        reason="Observed",
        message=f"Stanch {stanch.__version__} observed generation {generation} of this {kind}.",
        observed_generation=generation,
        now=now,
    )


def make_handler(handler_id: str, clock: Callable[[], datetime]) -> Callable[..., Any]:
    # Returning None matters: Kopf stores a handler's return value under status.<id>, which the
    # schema would prune and the next diff would see as a change.
    async def handler(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        accept_patch(body, patch, clock())
        bind_object(body).info("accepted", handler=handler_id)

    return handler


def _now() -> datetime:
    return datetime.now(UTC)


def register(registry: kopf.OperatorRegistry, metrics: Metrics, clock: Callable[[], datetime] = _now) -> None:
    for kind, plural in PLURALS.items():
        prefix = kind.lower()
        causes = (
            (f"{prefix}-accept", kopf.on.create),
            (f"{prefix}-accept-on-resume", kopf.on.resume),
            (f"{prefix}-accept-on-update", kopf.on.update),
        )
        for handler_id, decorator in causes:
            fn = metrics.instrument(handler_id)(make_handler(handler_id, clock))
            decorator(stanch.GROUP, stanch.VERSION, plural, id=handler_id, registry=registry)(fn)
