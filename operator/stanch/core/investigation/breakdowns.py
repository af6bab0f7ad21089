"""Per-revision, per-node and per-pod variants of the signal templates, so "only the new pods",
"only one node" and "only one pod" are visible in the evidence.

A breakdown template is an ordinary named signal template called ``<signal>_by_<dimension>`` whose
query returns one series per value of the ``revision`` (the pods' ``pod-template-hash``), ``node``
or ``pod`` label. Per-pod answers are not kept pod by pod: they become a spread (median, siblings,
the highest pods; ``stanch.core.investigation.per_pod``). They are data like every other template:
``--signals`` may replace or add them, and a signal without a breakdown template is simply not
broken down.
"""

from __future__ import annotations

from collections.abc import Mapping

DIMENSIONS = ("revision", "node", "pod")
POD = "pod"

_HTTP = 'namespace="{{namespace}}",deployment="{{workload}}"'
_PODS = 'namespace="{{namespace}}",pod=~"{{workload}}-[a-z0-9]+-[a-z0-9]+"'


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
    # Per pod, read at the latest moments only (a few samples): one pod against its siblings.
    "cpu_vs_limit_by_pod": (
        f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{_PODS},container!=""}}[5m]))'
        f' / sum by (pod) (kube_pod_container_resource_limits{{{_PODS},resource="cpu"}})'
    ),
    "memory_vs_limit_by_pod": (
        f'sum by (pod) (container_memory_working_set_bytes{{{_PODS},container!=""}})'
        f' / sum by (pod) (kube_pod_container_resource_limits{{{_PODS},resource="memory"}})'
    ),
    "error_ratio_by_pod": _ratio("pod"),
    "latency_p99_by_pod": _p99("pod"),
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


DEPENDENCY_ERRORS = "dependency_errors"
"""An optional template (no default: client metrics differ by library and mesh): the errors per
second the target's pods get from each host they call, one series per host. The host is read from
the first of :data:`HOST_LABELS` a series has, e.g. with Istio
``sum by (destination_service) (rate(istio_requests_total{reporter="source",
source_workload="{{workload}}",source_workload_namespace="{{namespace}}",response_code=~"5.."}[5m]))``."""
HOST = "host"
HOST_LABELS = (
    "host",
    "upstream",
    "destination_service",
    "destination_service_name",
    "server_address",
    "net_peer_name",
    "peer_service",
    "target_host",
)


def overall_signals(templates: Mapping[str, str], requested: tuple[str, ...] = ()) -> list[str]:
    """The signals to investigate: the Incident's own list, else every non-breakdown template (the
    per-host dependency template is read on its own)."""
    if requested:
        return list(dict.fromkeys(requested))
    return [name for name in templates if not is_breakdown(name) and name != DEPENDENCY_ERRORS]
