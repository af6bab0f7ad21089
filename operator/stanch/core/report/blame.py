"""Which change a hypothesis blames, and where that change sits on the Incident's timeline.

Hypotheses are text (the rules' statements); the change they accuse is their subject, named the way
the correlation names changes: ``revision 7 (...) ...`` for a deploy, ``ConfigMap/flags: ...`` for a
configuration change. The report uses this to mark the accused change on the chart and the tests
use it to check that every accused change is on the timeline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stanch.core.models import Hypothesis, HypothesisCategory, TimelineEntry, TimelineKind

_REVISION = re.compile(r"^revision (\d+)\b")
_OBJECT = re.compile(r"^([A-Z][A-Za-z]+/[a-z0-9][-a-z0-9.]*)\b")
_NOT_BLAMED = ("is unlikely to be the cause",)


@dataclass(frozen=True)
class Blamed:
    kind: TimelineKind
    key: str
    """The revision number of a deploy, ``Kind/name`` of a configuration object."""

    def matches(self, entry: TimelineEntry) -> bool:
        if entry.kind is not self.kind:
            return False
        if self.kind is TimelineKind.DEPLOY:
            return entry.details.get("revision") == self.key
        return entry.object is not None and f"{entry.object.kind}/{entry.object.name}" == self.key


def blamed_change(h: Hypothesis) -> Blamed | None:
    """The change ``h`` accuses, if it accuses one."""
    if any(phrase in h.statement for phrase in _NOT_BLAMED):
        return None
    if h.category is HypothesisCategory.RECENT_DEPLOY:
        found = _REVISION.match(h.statement)
        return Blamed(TimelineKind.DEPLOY, found.group(1)) if found else None
    if h.category is HypothesisCategory.CONFIG_CHANGE:
        found = _OBJECT.match(h.statement)
        return Blamed(TimelineKind.CONFIG_CHANGE, found.group(1)) if found else None
    return None


def blamed_entries(h: Hypothesis, timeline: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    blamed = blamed_change(h)
    return [] if blamed is None else [e for e in timeline if blamed.matches(e)]
