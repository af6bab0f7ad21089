"""The numbers the report prints more than once, each from one source.

The Impact table is the Incident's own ``status.scope.impact``, measured from the onset. The
overall rows of the Metrics table print the same quantities for every signal, so they take the
error ratio and latency from that impact and the other signals from the very function that
computed it (``signal_impact``), never from the collector's ``before``: that one is measured from
the Incident's start hint, which the analysis later refines into the onset.
"""

from __future__ import annotations

from datetime import datetime

from stanch.core.investigation.analysis.scope import SignalImpact, signal_impact
from stanch.core.investigation.analysis.series import ERROR_RATIO, LATENCY
from stanch.core.models import Evidence, Incident, MetricSummary, OnsetSource, Scope

ONSET_METHOD = {
    OnsetSource.CHANGE_POINT: "a change point in the error/latency signal",
    OnsetSource.STARTED_AT: "the reported start; no change point in the error/latency signal",
    OnsetSource.CREATION_TIME: (
        "the Incident's creation; no change point in the error/latency signal and no reported start"
    ),
}
"""How the report names each way the onset was found; used wherever it states the method."""


def start_hint(incident: Incident) -> datetime | None:
    """The moment the collector measured ``before``/``peak`` from: ``startedAt``, else creation."""
    return incident.spec.started_at or incident.metadata.creation_timestamp


def overall_numbers(evidence: Evidence, summary: MetricSummary, scope: Scope | None) -> SignalImpact:
    """Before the onset, now, and the peak since the onset for one overall series."""
    if scope is None or scope.onset is None:
        return SignalImpact(summary.before, summary.now, summary.peak)
    impact = scope.impact
    if summary.signal == ERROR_RATIO:
        return SignalImpact(impact.error_ratio_before, impact.error_ratio_now, impact.error_ratio_peak)
    if summary.signal == LATENCY:
        return SignalImpact(
            impact.latency_before_seconds, impact.latency_now_seconds, impact.latency_peak_seconds
        )
    return signal_impact(evidence, summary.signal, scope.onset)
