"""Recording rules for the signal templates, and the templates that read them instead.

The default templates evaluate ``rate()`` over every pod's raw series on each query. At 1,000 pods
that is ~18,000 ``http_requests_total`` and ~40,000 histogram-bucket series per refresh, 6-9 s of
Prometheus time on the benchmark machine (docs/benchmarks.md). Recorded once per evaluation
interval, aggregated to what Stanch asks about (namespace, deployment, revision, node; per pod for
the resource signals), each query reads a handful of series instead. The rule names follow the
Prometheus convention ``level:metric:operations``.

Rules and templates come from one place so they cannot drift apart: ``stanch recording-rules``
writes both (the rules as a plain rule file or a ``PrometheusRule``), and the templates keep the
default names, so ``--signals`` with them changes nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_WINDOW = re.compile(r"\d+(ms|s|m|h)")
_HTTP_BY = "namespace, deployment, revision, node, code"
_LATENCY_BY = "namespace, deployment, revision, node, le"
# Per pod, for one pod against its siblings; kept apart so the revision/node series stay small.
_HTTP_BY_POD = "namespace, deployment, pod, code"
_LATENCY_BY_POD = "namespace, deployment, pod, le"
_SEL_HTTP = 'namespace="{{namespace}}",deployment="{{workload}}"'
_SEL_PODS = 'namespace="{{namespace}}",pod=~"{{workload}}-[a-z0-9]+-[a-z0-9]+"'


def _check(window: str, name: str) -> None:
    if not _WINDOW.fullmatch(window):
        raise ValueError(f"{name} {window!r} is not a Prometheus duration like 30s or 5m")


def names(window: str) -> dict[str, str]:
    """Recorded series by what they hold."""
    _check(window, "window")
    return {
        "requests": f"namespace_deployment_revision_node_code:http_requests:rate{window}",
        "latency": f"namespace_deployment_revision_node_le:http_request_duration_seconds_bucket:rate{window}",
        "pod_requests": f"namespace_deployment_pod_code:http_requests:rate{window}",
        "pod_latency": f"namespace_deployment_pod_le:http_request_duration_seconds_bucket:rate{window}",
        "cpu": f"namespace_pod:container_cpu_usage_seconds:rate{window}",
        "memory": "namespace_pod:container_memory_working_set_bytes:sum",
        "limits": "namespace_pod_resource:kube_pod_container_resource_limits:sum",
        "restarts": f"namespace_pod:kube_pod_container_status_restarts:increase{window}",
    }


def recording_rules(window: str = "5m", interval: str = "30s") -> dict[str, Any]:
    """A Prometheus rule file (``groups:``) recording every series the templates read."""
    _check(interval, "interval")
    n = names(window)
    rules = [
        (n["requests"], f"sum by ({_HTTP_BY}) (rate(http_requests_total[{window}]))"),
        (n["latency"], f"sum by ({_LATENCY_BY}) (rate(http_request_duration_seconds_bucket[{window}]))"),
        (n["pod_requests"], f"sum by ({_HTTP_BY_POD}) (rate(http_requests_total[{window}]))"),
        (
            n["pod_latency"],
            f"sum by ({_LATENCY_BY_POD}) (rate(http_request_duration_seconds_bucket[{window}]))",
        ),
        (
            n["cpu"],
            f'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{container!=""}}[{window}]))',
        ),
        (n["memory"], 'sum by (namespace, pod) (container_memory_working_set_bytes{container!=""})'),
        (n["limits"], "sum by (namespace, pod, resource) (kube_pod_container_resource_limits)"),
        (
            n["restarts"],
            f"sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[{window}]))",
        ),
    ]
    return {
        "groups": [
            {
                "name": "stanch.signals",
                "interval": interval,
                "rules": [{"record": record, "expr": expr} for record, expr in rules],
            }
        ]
    }


def prometheus_rule(name: str, namespace: str, window: str = "5m", interval: str = "30s") -> dict[str, Any]:
    """The same rules as a prometheus-operator ``PrometheusRule``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "stanch"}},
        "spec": recording_rules(window, interval),
    }


def recorded_templates(window: str = "5m") -> Mapping[str, str]:
    """Signal templates, under the default names, that read the recorded series."""
    n = names(window)
    req, lat = n["requests"], n["latency"]

    def ratio(by: str = "") -> str:
        group = f" by ({by})" if by else ""
        return f'sum{group} ({req}{{{_SEL_HTTP},code=~"5.."}}) / sum{group} ({req}{{{_SEL_HTTP}}})'

    def per_pod(used: str, resource: str) -> str:
        return (
            f"sum by (pod) ({used}{{{_SEL_PODS}}})"
            f' / sum by (pod) ({n["limits"]}{{{_SEL_PODS},resource="{resource}"}})'
        )

    def limit_ratio(used: str, resource: str) -> str:
        return f"max({per_pod(used, resource)})"

    pod_req = n["pod_requests"]

    return {
        "error_ratio": ratio(),
        "latency_p99": f"histogram_quantile(0.99, sum by (le) ({lat}{{{_SEL_HTTP}}}))",
        "throughput": f"sum({req}{{{_SEL_HTTP}}})",
        "cpu_vs_limit": limit_ratio(n["cpu"], "cpu"),
        "memory_vs_limit": limit_ratio(n["memory"], "memory"),
        "restarts": f"sum({n['restarts']}{{{_SEL_PODS}}})",
        "error_ratio_by_revision": ratio("revision"),
        "error_ratio_by_node": ratio("node"),
        "latency_p99_by_revision": f"histogram_quantile(0.99, sum by (le, revision) ({lat}{{{_SEL_HTTP}}}))",
        "latency_p99_by_node": f"histogram_quantile(0.99, sum by (le, node) ({lat}{{{_SEL_HTTP}}}))",
        "cpu_vs_limit_by_pod": per_pod(n["cpu"], "cpu"),
        "memory_vs_limit_by_pod": per_pod(n["memory"], "memory"),
        "error_ratio_by_pod": (
            f'sum by (pod) ({pod_req}{{{_SEL_HTTP},code=~"5.."}}) / sum by (pod) ({pod_req}{{{_SEL_HTTP}}})'
        ),
        "latency_p99_by_pod": (
            f"histogram_quantile(0.99, sum by (le, pod) ({n['pod_latency']}{{{_SEL_HTTP}}}))"
        ),
    }
