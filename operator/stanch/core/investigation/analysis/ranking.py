"""Ranking: run the rules, merge what they agree on, lower confidence for what we could not see,
and fall back to an honest Unknown when nothing fits."""

from __future__ import annotations

import json
from collections.abc import Sequence

from stanch.core.investigation.analysis.context import RuleContext, clip
from stanch.core.investigation.analysis.rules import RULES, Rule
from stanch.core.investigation.analysis.rules.make import CONFIDENCE_MAX, hypothesis
from stanch.core.models import Hypothesis, HypothesisCategory, OnsetSource, SliState, TimelineKind

HYPOTHESES_MAX = 8
CORROBORATION_BONUS = 5
"""Added per additional rule reaching the same conclusion (same cause, same mitigation)."""
CONFIDENT = 50
"""Below this, no hypothesis is presented as the cause and Unknown is listed."""
NO_METRICS_CAP = 60
TARGET_MISSING_CAP = 30
TOP_MAX = 128
NO_CHANGE_POINT = (
    "no change point in the error/latency signal: timing compared with the reported start instead"
)
NO_ANOMALY_CONFIDENCE = 45
""""Nothing is wrong" is not a cause: it stays below :data:`CONFIDENT`, so nothing is presented as
the cause and no mitigation follows from it."""
_ORDER = {c: i for i, c in enumerate(HypothesisCategory)}


def _key(h: Hypothesis) -> str:
    if h.suggested_mitigation is not None:
        return f"{h.category}|{json.dumps(h.suggested_mitigation.to_dict(), sort_keys=True)}"
    return f"{h.category}|{h.statement}"


def _unique(lines: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def merge(hypotheses: Sequence[Hypothesis]) -> list[Hypothesis]:
    """One hypothesis per (category, suggested action): the strongest statement, the union of
    evidence, and a small bonus for independent rules agreeing."""
    groups: dict[str, list[Hypothesis]] = {}
    for h in hypotheses:
        groups.setdefault(_key(h), []).append(h)
    out = []
    for group in groups.values():
        group.sort(key=lambda h: -h.confidence)
        best = group[0]
        confidence = min(CONFIDENCE_MAX, best.confidence + CORROBORATION_BONUS * (len(group) - 1))
        out.append(
            best.model_copy(
                update={
                    "confidence": confidence,
                    "supporting": _unique([s for h in group for s in h.supporting])[:10],
                    "contradicting": _unique([s for h in group for s in h.contradicting])[:10],
                }
            )
        )
    return out


def limitations(ctx: RuleContext) -> tuple[float, int, list[str]]:
    """What the investigation could not see: a confidence factor, a cap, and the lines saying why."""
    factor, cap, lines = 1.0, CONFIDENCE_MAX, []
    if ctx.target_missing:
        cap = min(cap, TARGET_MISSING_CAP)
        lines.append("the target workload no longer exists: evidence is stale or missing")
    if not ctx.metrics_available:
        factor *= 0.8
        cap = min(cap, NO_METRICS_CAP)
        lines.append("no error/latency metrics: onset, impact and per-revision comparison are unknown")
    elif ctx.onset.source is not OnsetSource.CHANGE_POINT:
        factor *= 0.9
        lines.append(NO_CHANGE_POINT)
    if ctx.partial:
        factor *= 0.9
        lines.append(f"evidence incomplete: {', '.join(sorted(ctx.partial))} could not be collected")
    return factor, cap, lines


def _limited(h: Hypothesis, factor: float, cap: int, lines: list[str]) -> Hypothesis:
    if not lines:
        return h
    return h.model_copy(
        update={
            "confidence": max(0, min(cap, round(h.confidence * factor))),
            "contradicting": _unique([*h.contradicting, *lines])[:10],
        }
    )


def unknown(ctx: RuleContext, lines: list[str]) -> Hypothesis:
    considered = (
        "; ".join(c.sentence() for c in ctx.correlated[:2] if c.possible_cause)
        or "no deploy or configuration change before the onset"
    )
    return hypothesis(
        HypothesisCategory.UNKNOWN,
        "no known pattern fits the evidence: investigate by hand (logs, dependencies, recent changes "
        "outside the cluster)",
        15 if ctx.metrics_available else 10,
        supporting=[considered],
        contradicting=lines,
    )


def no_anomaly(ctx: RuleContext) -> Hypothesis:
    """The verdict when every required SLI was seen and is normal: what was looked at, and the
    recent changes cleared because there is no symptom for them to have caused."""
    symptom = ctx.symptom
    cleared = [
        f"{c.change.describe()} ({c.change.time.isoformat()}): no symptom followed it"
        for c in ctx.correlated
        if c.change.kind in (TimelineKind.DEPLOY, TimelineKind.CONFIG_CHANGE) and not c.change.with_workload
    ][:3]
    return hypothesis(
        HypothesisCategory.NO_ANOMALY,
        f"no anomaly in {ctx.spec.target.name}'s SLIs: errors, latency and availability are at their "
        "baseline; nothing to blame and nothing to mitigate",
        NO_ANOMALY_CONFIDENCE,
        supporting=[f"{c.sli}: {c.detail}" for c in symptom.checks] + cleared,
        contradicting=[f"the Incident reports a problem: {ctx.spec.summary}"] if ctx.spec.summary else [],
    )


def rank(ctx: RuleContext, rules: Sequence[Rule] = RULES) -> list[Hypothesis]:
    """Hypotheses from every rule, merged, limited by what was missing, best first; Unknown is
    added whenever no hypothesis reaches :data:`CONFIDENT`. With no anomaly in the SLIs no rule is
    asked: there is no symptom to explain, so no change is blamed and nothing is suggested."""
    if ctx.symptom.state is SliState.NORMAL:
        return [no_anomaly(ctx)]
    found = [h for rule in rules if (h := rule(ctx)) is not None]
    factor, cap, lines = limitations(ctx)
    ranked = [_limited(h, factor, cap, lines) for h in merge(found)]
    if not any(h.confidence >= CONFIDENT for h in ranked):
        ranked.append(unknown(ctx, lines))
    ranked.sort(key=lambda h: (-h.confidence, _ORDER[h.category], h.statement))
    return ranked[:HYPOTHESES_MAX]


def top_text(hypotheses: Sequence[Hypothesis]) -> str | None:
    """``RecentDeploy 85%: revision 3 (…)`` for the printer column."""
    if not hypotheses:
        return None
    top = hypotheses[0]
    return clip(f"{top.category.value} {top.confidence}%: {top.statement}", TOP_MAX)
