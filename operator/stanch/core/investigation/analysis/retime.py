"""A kept diagnosis told against the onset the Incident states.

While a Mitigation stands, the hypotheses are kept as they were ranked before it acted
(``kept_diagnosis``), but the onset may since have been refined from a guess (the report or creation
time) to the change point found later (``kept_onset``). The kept text was measured from the guess:
"the errors began 25s after it", "no change point in the error/latency signal". Left alone, the
Incident would say "Onset: ChangePoint" above a hypothesis that says there is none, and time the
same deploy two ways. Only the timing is re-told here; what the rules concluded stays as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stanch.core.investigation.analysis.context import pct
from stanch.core.investigation.analysis.correlation import Correlated, describe_offset
from stanch.core.investigation.analysis.ranking import NO_CHANGE_POINT
from stanch.core.investigation.analysis.scope import Onset
from stanch.core.models import Hypothesis, OnsetSource

# The one number the rules state "before the onset" (rules/deploys.py); it moves with the onset.
_BASELINE = re.compile(r"the error ratio was \S+ before the onset")

_GUESSES = {
    OnsetSource.STARTED_AT: "the reported start",
    OnsetSource.CREATION_TIME: "the Incident's creation",
}


def _replacements(kept: Onset, onset: Onset, correlated: Sequence[Correlated]) -> list[tuple[str, str]]:
    out = []
    for c in correlated:
        before, after = kept.time - c.change.time, onset.time - c.change.time
        if before.days < 0 or after.days < 0:
            continue  # a change after either onset is worded differently; it is not re-told
        old, new = describe_offset(before), describe_offset(after)
        if old != new:
            out.append((f"{old} after {c.change.label}", f"{new} after {c.change.label}"))
    return out


def _statement(text: str, kept: Onset, onset: Onset, correlated: Sequence[Correlated]) -> str:
    """``<change> ... the errors began 25s after it ...``: the change is the statement's subject."""
    for c in correlated:
        label = c.change.label
        if not text.startswith((label + " ", label + ":")):
            continue
        before, after = kept.time - c.change.time, onset.time - c.change.time
        if before.days < 0 or after.days < 0:
            return text
        return text.replace(
            f"began {describe_offset(before)} after it", f"began {describe_offset(after)} after it"
        )
    return text


def retimed(
    hypotheses: Sequence[Hypothesis],
    kept: Onset,
    onset: Onset,
    correlated: Sequence[Correlated],
    baseline: float | None = None,
) -> list[Hypothesis]:
    """``hypotheses`` (ranked against ``kept``) with their timing told against ``onset``;
    ``baseline`` is the error ratio before ``onset`` (the Impact's), restated where they quote one."""
    if kept.time == onset.time and kept.source is onset.source:
        return list(hypotheses)
    swaps = _replacements(kept, onset, correlated)

    def line(text: str) -> str:
        for old, new in swaps:
            text = text.replace(old, new)
        if baseline is not None:
            text = _BASELINE.sub(f"the error ratio was {pct(baseline)} before the onset", text)
        return text

    found = onset.source is OnsetSource.CHANGE_POINT and kept.source is not OnsetSource.CHANGE_POINT
    guess = _GUESSES.get(kept.source, "a guess")
    note = (
        f"ranked before the change point was found (the onset was then {guess});"
        " the timings here are measured from the change point"
    )
    out = []
    for h in hypotheses:
        contradicting = [line(c) for c in h.contradicting]
        if found:
            contradicting = [note if c == NO_CHANGE_POINT else c for c in contradicting]
        out.append(
            h.model_copy(
                update={
                    "statement": _statement(h.statement, kept, onset, correlated),
                    "supporting": [line(s) for s in h.supporting],
                    "contradicting": contradicting,
                }
            )
        )
    return out
