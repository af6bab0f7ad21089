"""Transient rule: a short blip that went away by itself needs no action."""

from __future__ import annotations

from datetime import timedelta

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.correlation import describe_offset
from stanch.core.investigation.analysis.onset import floor_for
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.analysis.scope import recovered_at
from stanch.core.investigation.analysis.series import points_of
from stanch.core.models import Hypothesis, HypothesisCategory, Trend

SHORT = timedelta(minutes=10)
"""A disturbance shorter than this, gone by itself, is a blip."""


def transient_blip(ctx: RuleContext) -> Hypothesis | None:
    shift, signal = ctx.onset.shift, ctx.onset.signal
    if shift is None or signal is None or ctx.trend is not Trend.RECOVERED:
        return None
    back = recovered_at(points_of(ctx.evidence, signal), shift, floor_for(signal))
    if back is None:
        return None
    duration = back - shift.start_time
    health = ctx.evidence.pod_health
    supporting = [f"{signal} returned to its baseline {describe_offset(duration)} after the onset"]
    contradicting = []
    confidence = 70.0 if duration <= SHORT else 45.0
    if duration > SHORT:
        contradicting.append(f"the disturbance lasted {describe_offset(duration)}, longer than a blip")
    if health.total and health.ready < health.total:
        confidence -= 25
        contradicting.append(f"{health.total - health.ready} pod(s) are still not ready")
    else:
        supporting.append("all pods are ready now")
    causes = ctx.causal_changes()
    if causes:
        confidence -= 15
        contradicting.append(f"a change preceded it: {causes[0].sentence()}")
    return hypothesis(
        HypothesisCategory.TRANSIENT,
        f"a {describe_offset(duration)} blip that recovered by itself; no action needed unless it recurs",
        confidence,
        supporting,
        contradicting,
    )
