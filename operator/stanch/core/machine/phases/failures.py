"""How a write that did not land is handled: retried with a backoff when transient, never retried when
the API server refused it, and every give-up said once with what the API server said and the fix.

The classes (see :class:`~stanch.core.machine.observations.ApplyFailed`): a *conflict* is observed
(done already, re-issue the rest, or drift); a *transient* failure waits :func:`backoff` and is
observed again; a *refusal* ends the step at once. Every re-send of a step counts one attempt of its
intent, crash resumes included, and :data:`~stanch.core.machine.reading.MAX_ATTEMPTS` bounds them: a
pass can no longer send the same refused write dozens of times.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from stanch.core.effects import WakeAt
from stanch.core.machine.observations import ApplyFailed
from stanch.core.machine.reading import MAX_ATTEMPTS
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import transition, with_condition
from stanch.core.models import Condition

RETRY_BACKOFF = timedelta(seconds=2)
"""The wait after the first transient failure of a step; doubled after each further one."""
RETRY_BACKOFF_MAX = timedelta(seconds=30)

WRITES_ACCEPTED = "WritesAccepted"
"""Condition, set False when the API server refused a write of ours (reason ``Refused``) or kept
failing it (``RetriesExhausted``); the message names the object, the API server's words and the fix."""


def backoff(attempt: int) -> timedelta:
    """How long to wait after the ``attempt``-th send of a step failed transiently."""
    return min(RETRY_BACKOFF * (1 << min(max(attempt - 1, 0), 8)), RETRY_BACKOFF_MAX)


def fix_for(code: int | None) -> str:
    """What the person reading the Event can do about a refusal with this HTTP status."""
    if code == 403:
        return (
            "grant the operator's service account this verb on this resource (RBAC), or change the "
            "admission webhook that forbids it"
        )
    if code == 422:
        return (
            "the object refuses this change (validation, an immutable field, or an admission policy "
            "denying it): change the object or the policy, or choose another action"
        )
    if code == 404:
        return "the object is gone; check who deleted it"
    if code in (0, None) or code >= 500 or code == 429:
        return "check the API server's health and the operator's connection to it"
    return "the API server rejected the request; see its message"


def describe_failure(obs: ApplyFailed) -> str:
    """The failed write, the API server's answer and the fix, for status, the condition and the Event."""
    code = f"HTTP {obs.code}: " if obs.code else ""
    return f"{code}{obs.reason}; fix: {fix_for(obs.code)}"


def refused_conditions(state: MachineState, now: datetime, reason: str, message: str) -> list[Condition]:
    return with_condition(state.status, now, WRITES_ACCEPTED, ok=False, reason=reason, message=message)


def retry_later(state: MachineState, now: datetime, obs: ApplyFailed, attempt: int) -> Transition:
    """A transient failure: look again after a backoff (the resume then sends what is still missing)."""
    wait = backoff(attempt)
    return transition(
        state,
        now=now,
        to=None,
        event="Retry",
        reason=(
            f"{obs.step} attempt {attempt} of {MAX_ATTEMPTS} failed ({obs.reason}); "
            f"trying again in {int(wait.total_seconds())}s"
        ),
        effects=(WakeAt(now + wait),),
    )
