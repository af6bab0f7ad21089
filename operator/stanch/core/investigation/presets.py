"""Signal template presets: the same signals (error ratio, latency, throughput, CPU, memory,
restarts) read from the metrics a real cluster has, chosen with ``--signal-preset``.

The default templates (``signals.DEFAULT_SIGNAL_TEMPLATES``) read the labels the local world's
simulator exports (``deployment=``); a cluster with kube-state-metrics and cAdvisor, a service mesh
or an ingress controller names its series and labels differently. A preset is a function of the
workload label (``--workload-label``), the label of the request metrics that holds the workload's
name, because that label depends on how the cluster's Prometheus relabels pods. Every preset's
output goes through the same template check as ``--signals`` (``validate_templates``), and
``--signals FILE`` still overrides single templates on top of a preset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, validate_templates

DEFAULT_PRESET = "simulator"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_NS = 'namespace="{{namespace}}"'
# kube-state-metrics knows which ReplicaSet owns a pod, and a Deployment's ReplicaSets are named
# `<deployment>-<pod-template-hash>`: joining on it is exact where a pod-name pattern only guesses,
# and the hash it captures is the `revision` the breakdowns are keyed by.
_OWNER = f'kube_pod_owner{{{_NS},owner_kind="ReplicaSet",owner_name=~"{{{{workload}}}}-[a-z0-9]+"}}'
_OWNED = f"max by (namespace, pod) ({_OWNER})"
_OWNED_BY_REVISION = (
    "max by (namespace, pod, revision) "
    f'(label_replace({_OWNER}, "revision", "$1", "owner_name", ".*-([a-z0-9]+)"))'
)


def _joined(selector: str, *, owned: str = _OWNED) -> str:
    """``selector`` (a series selector or expression with a ``pod`` label) kept to the workload's
    pods; joined to :data:`_OWNED_BY_REVISION`, each series also gets the pod's ``revision``."""
    carried = "revision" if owned is _OWNED_BY_REVISION else ""
    return f"({selector} * on (namespace, pod) group_left({carried}) {owned})"


def _resource_templates() -> dict[str, str]:
    """CPU, memory and restarts from cAdvisor and kube-state-metrics, the same on every real cluster."""
    cpu = _joined(f'rate(container_cpu_usage_seconds_total{{{_NS},container!=""}}[5m])')
    mem = _joined(f'container_memory_working_set_bytes{{{_NS},container!=""}}')
    cpu_limit = _joined(f'kube_pod_container_resource_limits{{{_NS},resource="cpu"}}')
    mem_limit = _joined(f'kube_pod_container_resource_limits{{{_NS},resource="memory"}}')
    restarts = _joined(f"increase(kube_pod_container_status_restarts_total{{{_NS}}}[5m])")
    return {
        # The worst pod matters, not the average: one pod pinned at its limit is throttled alone.
        "cpu_vs_limit": f"max(sum by (pod) {cpu} / sum by (pod) {cpu_limit})",
        "memory_vs_limit": f"max(sum by (pod) {mem} / sum by (pod) {mem_limit})",
        "restarts": f"sum({restarts})",
    }


@dataclass(frozen=True)
class _Http:
    """How a preset reads requests: metric names, the selector, and how a 5xx is recognised."""

    requests: str
    buckets: str
    selector: str
    failed: str
    latency_scale: str = ""  # "/ 1000" for millisecond histograms


def _http_templates(http: _Http) -> dict[str, str]:
    sel, failed = http.selector, http.failed
    total = f"sum(rate({http.requests}{{{sel}}}[5m]))"
    return {
        "error_ratio": f"sum(rate({http.requests}{{{sel},{failed}}}[5m])) / {total}",
        "latency_p99": (
            f"histogram_quantile(0.99, sum by (le) (rate({http.buckets}{{{sel}}}[5m]))){http.latency_scale}"
        ),
        "throughput": total,
    }


def _simulator(label: str | None) -> dict[str, str]:
    # Today's defaults, with the workload label swapped: signals.py stays their one source. The
    # breakdowns are added only when relabelled: unchanged, the collector already adds them.
    if label is None or label == "deployment":
        return dict(DEFAULT_SIGNAL_TEMPLATES)
    own = 'deployment="{{workload}}"'
    return {
        name: query.replace(own, f'{label}="{{{{workload}}}}"')
        for name, query in {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}.items()
    }


def _kube_state_metrics(label: str | None) -> dict[str, str]:
    """Application request metrics (``http_requests_total``, ``http_request_duration_seconds``, the
    Prometheus client libraries' names) kept to the workload's pods by owner, or by ``label``."""
    out = _resource_templates()
    if label is not None:
        sel = f'{_NS},{label}="{{{{workload}}}}"'
        out |= _http_templates(
            _Http("http_requests_total", "http_request_duration_seconds_bucket", sel, 'code=~"5.."')
        )
        return out

    def rate(metric: str, extra: str = "", owned: str = _OWNED) -> str:
        return _joined(f"rate({metric}{{{_NS}{extra}}}[5m])", owned=owned)

    requests, errors = rate("http_requests_total"), rate("http_requests_total", ',code=~"5.."')
    buckets = rate("http_request_duration_seconds_bucket")
    by_rev = _OWNED_BY_REVISION
    five_xx = ',code=~"5.."'
    out |= {
        "error_ratio": f"sum({errors}) / sum({requests})",
        "latency_p99": f"histogram_quantile(0.99, sum by (le) ({buckets}))",
        "throughput": f"sum({requests})",
        "error_ratio_by_revision": (
            f"sum by (revision) ({rate('http_requests_total', five_xx, by_rev)})"
            f" / sum by (revision) ({rate('http_requests_total', owned=by_rev)})"
        ),
        "latency_p99_by_revision": (
            "histogram_quantile(0.99, sum by (le, revision)"
            f" ({rate('http_request_duration_seconds_bucket', owned=by_rev)}))"
        ),
    }
    return out


def _istio(label: str | None) -> dict[str, str]:
    # Reported by the receiving sidecar: the workload's own view of what it served.
    sel = (
        'reporter="destination",destination_workload_namespace="{{namespace}}",'
        f'{label or "destination_workload"}="{{{{workload}}}}"'
    )
    http = _Http(
        "istio_requests_total",
        "istio_request_duration_milliseconds_bucket",
        sel,
        'response_code=~"5.."',
        " / 1000",
    )
    return _resource_templates() | _http_templates(http)


def _linkerd(label: str | None) -> dict[str, str]:
    sel = f'direction="inbound",{_NS},{label or "deployment"}="{{{{workload}}}}"'
    http = _Http("response_total", "response_latency_ms_bucket", sel, 'classification="failure"', " / 1000")
    out = _resource_templates() | _http_templates(http)
    # Linkerd's request counter is request_total; response_total (above) carries the classification.
    out["throughput"] = f"sum(rate(request_total{{{sel}}}[5m]))"
    # linkerd-viz's scrape config copies pod labels, pod_template_hash among them: the revision.
    out["error_ratio_by_revision"] = (
        "label_replace("
        f'sum by (pod_template_hash) (rate(response_total{{{sel},classification="failure"}}[5m]))'
        f" / sum by (pod_template_hash) (rate(response_total{{{sel}}}[5m])),"
        ' "revision", "$1", "pod_template_hash", "(.+)")'
    )
    return out


def _ingress_nginx(label: str | None) -> dict[str, str]:
    # Scraped through a ServiceMonitor, the controller's own `namespace` label (the Ingress's) is
    # renamed exported_namespace; the backend is named by its Service.
    sel = f'exported_namespace="{{{{namespace}}}}",{label or "service"}="{{{{workload}}}}"'
    http = _Http(
        "nginx_ingress_controller_requests",
        "nginx_ingress_controller_request_duration_seconds_bucket",
        sel,
        'status=~"5.."',
    )
    return _resource_templates() | _http_templates(http)


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    default_label: str | None
    build: Callable[[str | None], dict[str, str]]


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "simulator",
            "the local world's simulator (http_* with a deployment label)",
            "deployment",
            _simulator,
        ),
        Preset(
            "kube-state-metrics",
            "cAdvisor and kube-state-metrics, application http_* metrics joined to pods by owner",
            None,
            _kube_state_metrics,
        ),
        Preset("istio", "Istio standard metrics (istio_requests_total)", "destination_workload", _istio),
        Preset("linkerd", "Linkerd proxy metrics (response_total, via linkerd-viz)", "deployment", _linkerd),
        Preset("ingress-nginx", "ingress-nginx controller metrics", "service", _ingress_nginx),
    )
}


class PresetError(ValueError):
    """An unknown preset or an unusable workload label; the message says what would work."""


def preset_templates(name: str, workload_label: str | None = None) -> dict[str, str]:
    """The preset's templates (overall signals and breakdowns), checked like any ``--signals`` file."""
    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise PresetError(f"{name!r} is not a signal preset; use one of {', '.join(PRESETS)}")
    label = workload_label.strip() if workload_label is not None and workload_label.strip() else None
    if label is not None and not LABEL_NAME.match(label):
        raise PresetError(
            f"{workload_label!r} is not a Prometheus label name; use letters, digits and _, e.g. app"
        )
    templates = preset.build(label)
    validate_templates(templates)
    return templates
