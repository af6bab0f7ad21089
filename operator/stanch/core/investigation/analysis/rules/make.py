"""Building hypotheses: clipped evidence lines and bounded confidence, so no rule trips the model's
limits in production."""

from __future__ import annotations

from collections.abc import Iterable

from stanch.core.investigation.analysis.context import clip
from stanch.core.models import Hypothesis, HypothesisCategory, SuggestedMitigation

CONFIDENCE_MAX = 95
"""Evidence from a cluster is circumstantial: no rule claims certainty."""


def hypothesis(
    category: HypothesisCategory,
    statement: str,
    confidence: float,
    supporting: Iterable[str] = (),
    contradicting: Iterable[str] = (),
    suggestion: SuggestedMitigation | None = None,
) -> Hypothesis:
    return Hypothesis(
        category=category,
        statement=clip(statement),
        confidence=max(0, min(CONFIDENCE_MAX, round(confidence))),
        supporting=[clip(s) for s in supporting if s],
        contradicting=[clip(s) for s in contradicting if s],
        suggested_mitigation=suggestion,
    )
