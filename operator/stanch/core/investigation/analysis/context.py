"""What every hypothesis rule gets to look at: the evidence plus the scope and correlations already
worked out, with the lookups rules share (revisions, per-revision and per-node health)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stanch.core.investigation.analysis.comparison import Comparison
from stanch.core.investigation.analysis.correlation import Correlated
from stanch.core.investigation.analysis.onset import floor_for
from stanch.core.investigation.analysis.scope import Onset
from stanch.core.investigation.analysis.series import ERROR_RATIO, ScopedValue, by_scope
from stanch.core.investigation.analysis.symptom import Symptom
from stanch.core.models import (
    Evidence,
    ImpactSummary,
    IncidentSpec,
    PodGroup,
    RolloutRevision,
    SliState,
    SuggestedMitigation,
    TimelineKind,
    Trend,
)

LINE_MAX = 512
FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "Error",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "OOMKilled",
        "StartError",
    }
)
"""Pod reasons that say the containers of a revision cannot run at all."""


def clip(text: str, limit: int = LINE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


@dataclass(frozen=True)
class RevisionComparison:
    """Per-revision error ratios: which revisions are worse than the healthiest one still serving
    (``bad``), and which are clearly above the error ratio before the onset (``elevated``)."""

    values: Mapping[str, ScopedValue]
    best: float | None
    bad: frozenset[str]
    elevated: frozenset[str] = frozenset()
    baseline: float | None = None
    """Overall error ratio before the onset, the reference of ``elevated``."""

    def indistinguishable(self, revision: str) -> bool:
        """The revision's pods do no worse than the others (the data to tell exists)."""
        value = self.values.get(revision)
        if value is None or value.current is None or self.best is None or len(self.serving) < 2:
            return False
        return revision not in self.bad

    @property
    def serving(self) -> dict[str, ScopedValue]:
        """Revisions whose pods still report (a completed rollout leaves only the new one)."""
        return {k: v for k, v in self.values.items() if v.current is not None}

    @property
    def retired(self) -> dict[str, ScopedValue]:
        """Revisions whose series stopped but who have a value from while they served."""
        return {k: v for k, v in self.values.items() if v.current is None and v.before is not None}


def clearly_above(value: float, reference: float) -> bool:
    """``value`` exceeds ``reference`` by at least the error-ratio effect floor."""
    return value - reference >= floor_for(ERROR_RATIO).of(reference)


def compare_revisions(evidence: Evidence, baseline: float | None = None) -> RevisionComparison:
    values = by_scope(evidence, ERROR_RATIO, "revision")
    elevated = frozenset(
        k
        for k, v in values.items()
        if v.current is not None and baseline is not None and clearly_above(v.current, baseline)
    )
    currents = [v.current for v in values.values() if v.current is not None]
    if len(currents) < 2:
        return RevisionComparison(values, None, frozenset(), elevated, baseline)
    best = min(currents)
    bad = frozenset(k for k, v in values.items() if v.current is not None and clearly_above(v.current, best))
    return RevisionComparison(values, best, bad, elevated, baseline)


@dataclass(frozen=True)
class RuleContext:
    """Inputs of every rule. Rules read it; none of them changes it."""

    spec: IncidentSpec
    evidence: Evidence
    now: datetime
    onset: Onset
    trend: Trend
    impact: ImpactSummary
    correlated: list[Correlated]
    lookback: timedelta
    metrics_available: bool
    logs_available: bool
    target_missing: bool
    partial: frozenset[str] = frozenset()
    revisions: RevisionComparison = field(default_factory=lambda: RevisionComparison({}, None, frozenset()))
    """Error ratio per revision (kept for the rules that read only errors; see ``by_revision``)."""
    symptom: Symptom = field(default_factory=lambda: Symptom(SliState.UNKNOWN))
    """Whether the SLIs are anomalous at all, and which."""
    by_revision: Comparison = field(default_factory=lambda: Comparison("revision"))
    """Every SLI per revision, at the same time."""
    by_node: Comparison = field(default_factory=lambda: Comparison("node"))
    """Every SLI per node, at the same time."""

    @property
    def rollouts(self) -> list[RolloutRevision]:
        """Retained revisions, newest first."""
        return sorted(self.evidence.rollouts, key=lambda r: -r.revision)

    @property
    def current_revision(self) -> RolloutRevision | None:
        current = [r for r in self.rollouts if r.current]
        return current[0] if current else (self.rollouts[0] if self.rollouts else None)

    def previous_revision(self, revision: int) -> RolloutRevision | None:
        """The newest retained revision older than ``revision``: what a rollback returns to."""
        return next((r for r in self.rollouts if r.revision < revision), None)

    def pod_group(self, revision: int) -> PodGroup | None:
        return next((g for g in self.evidence.pod_health.by_revision if g.key == str(revision)), None)

    def deploy_of(self, revision: int) -> Correlated | None:
        return next(
            (
                c
                for c in self.correlated
                if c.change.kind is TimelineKind.DEPLOY
                and c.change.revision is not None
                and c.change.revision.revision == revision
            ),
            None,
        )

    def causal_changes(self, kind: TimelineKind | None = None) -> list[Correlated]:
        """Changes that could have caused the onset (before it, within the lookback)."""
        return [c for c in self.correlated if c.possible_cause and (kind is None or c.change.kind is kind)]

    def suggest(self, summary: str, **action: Any) -> SuggestedMitigation:
        """A suggested mitigation on the Incident's target, e.g. ``suggest("…", rollback={...})``."""
        return SuggestedMitigation.model_validate(
            {"target": self.spec.target, "summary": clip(summary), **action}
        )
