"""What one investigation found: the value the handler turns into an Incident status patch."""

from __future__ import annotations

from dataclasses import dataclass, field

from stanch.core.models import Condition, Hypothesis, Scope, TimelineEntry

EventTuple = tuple[str, str, str]
"""A Kubernetes Event to post on the Incident: ``(type, reason, message)``, type Normal or Warning."""


@dataclass(frozen=True)
class Findings:
    """Scope, timeline and ranked hypotheses, plus the conditions and Events the handler should write.

    Every field maps straight onto :class:`stanch.core.models.IncidentStatus` (``top_hypothesis`` is
    the printer column). ``events`` lists milestones only (onset found, best hypothesis changed …),
    computed against the previous status, so re-running an unchanged investigation posts nothing.
    """

    scope: Scope
    timeline: list[TimelineEntry] = field(default_factory=list)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    top_hypothesis: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    events: list[EventTuple] = field(default_factory=list)
