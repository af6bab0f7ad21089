"""Suggested alerts: a PrometheusRule for the symptom that fired, built from the signal templates
(placeholders filled with escaped values, never string-pasted), with a threshold between the normal
level and the incident's peak."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, TemplateError, render
from stanch.core.models import Incident, Severity

ERROR_RATIO_MIN = 0.01
"""Never suggest paging below 1 % errors: such an alert fires on noise and gets silenced."""
LATENCY_MIN = 0.1


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def _error_threshold(before: float | None, peak: float | None) -> float:
    threshold = max(ERROR_RATIO_MIN, 2 * (before or 0.0) + 0.005)
    if peak is not None and threshold >= peak:
        threshold = max(ERROR_RATIO_MIN / 2, peak / 2)
    return round(threshold, 4)


def _latency_threshold(before: float | None, peak: float | None) -> float:
    threshold = max(LATENCY_MIN, 1.5 * (before or 0.0))
    if peak is not None and threshold >= peak:
        threshold = max(LATENCY_MIN / 2, (peak + (before or 0.0)) / 2)
    return round(threshold, 3)


def _symptoms(incident: Incident) -> list[tuple[str, float]]:
    """(signal, threshold) for each symptom that moved; the error ratio when nothing is known."""
    impact = incident.status.scope.impact if incident.status and incident.status.scope else None
    out = []
    if impact is not None:
        before, peak = impact.error_ratio_before, impact.error_ratio_peak
        if peak is not None and peak > (before or 0.0):
            out.append(("error_ratio", _error_threshold(before, peak)))
        lat_before, lat_peak = impact.latency_before_seconds, impact.latency_peak_seconds
        if lat_peak is not None and lat_peak > 1.25 * (lat_before or 0.0):
            out.append(("latency_p99", _latency_threshold(lat_before, lat_peak)))
    return out or [("error_ratio", ERROR_RATIO_MIN * 2)]


def suggested_alerts(
    incident: Incident, templates: Mapping[str, str] = DEFAULT_SIGNAL_TEMPLATES
) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` PrometheusRule alerting on the symptom(s) of this incident."""
    target = incident.spec.target
    namespace = target.namespace or incident.metadata.namespace or "default"
    values = {"namespace": namespace, "workload": target.name}
    urgent = incident.spec.severity in (Severity.SEV1, Severity.SEV2)
    rules = []
    for signal, threshold in _symptoms(incident):
        template = templates.get(signal)
        if template is None:
            continue
        try:
            query = render(signal, template, values)
        except TemplateError:
            continue  # a template needing a pod or node cannot describe the whole workload
        rules.append(
            {
                "alert": f"{_camel(target.name)}{_camel(signal)}High",
                "expr": f"({query}) > {threshold:g}",
                "for": "2m" if urgent else "5m",
                "labels": {"severity": "critical" if urgent else "warning"},
                "annotations": {
                    "summary": f"{signal} of {namespace}/{target.name} above {threshold:g}",
                    "description": (
                        f"Suggested by Stanch after incident {incident.metadata.name or ''}: "
                        f"{incident.spec.summary or signal + ' rose'}"
                    ),
                },
            }
        )
    name = f"stanch-{target.name}-symptoms"[:253]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "stanch"},
        },
        "spec": {"groups": [{"name": f"stanch.{target.name}", "rules": rules}]},
    }
