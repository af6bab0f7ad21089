"""Per-revision and per-node variants of the signal templates, so "only the new pods" and "only one
node" are visible in the evidence.

A breakdown template is an ordinary named signal template called ``<signal>_by_<dimension>`` whose
query returns one series per value of the ``revision`` (the pods' ``pod-template-hash``) or
``node`` label. They are data like every other template: ``--signals`` may replace or add them,
and a signal without a breakdown template is simply not broken down.
"""

from __future__ import annotations

from collections.abc import Mapping

DIMENSIONS = ("revision", "node")

_HTTP = 'namespace="{{namespace}}",deployment="{{workload}}"'


def _ratio(by: str) -> str:
    return (
        f'sum by ({by}) (rate(http_requests_total{{{_HTTP},code=~"5.."}}[5m]))'
        f" / sum by ({by}) (rate(http_requests_total{{{_HTTP}}}[5m]))"
    )


def _p99(by: str) -> str:
    return (
        f"histogram_quantile(0.99, sum by (le, {by})"
        f" (rate(http_request_duration_seconds_bucket{{{_HTTP}}}[5m])))"
    )


# The breakdowns that tell causes apart: errors and latency per revision ("only the new pods", a
# slow release with no errors) and per node ("only one node"). Compared at the same time, pods of
# one revision against pods of the other, they are not confounded by anything else that changed.
# Each one is a query whose cost grows with the workload's series; add more with --signals when
# they earn their keep.
DEFAULT_BREAKDOWN_TEMPLATES: Mapping[str, str] = {
    "error_ratio_by_revision": _ratio("revision"),
    "error_ratio_by_node": _ratio("node"),
    "latency_p99_by_revision": _p99("revision"),
    "latency_p99_by_node": _p99("node"),
}

UNITS: Mapping[str, str] = {
    "error_ratio": "ratio",
    "latency_p99": "seconds",
    "throughput": "req/s",
    "cpu_vs_limit": "ratio",
    "memory_vs_limit": "ratio",
    "restarts": "restarts",
}


def breakdown_name(signal: str, dimension: str) -> str:
    return f"{signal}_by_{dimension}"


def is_breakdown(name: str) -> bool:
    return any(name.endswith(f"_by_{d}") for d in DIMENSIONS)


def overall_signals(templates: Mapping[str, str], requested: tuple[str, ...] = ()) -> list[str]:
    """The signals to investigate: the Incident's own list, else every non-breakdown template."""
    if requested:
        return list(dict.fromkeys(requested))
    return [name for name in templates if not is_breakdown(name)]
