"""The operator's monitoring (manifests/monitoring/, and the chart's metrics.* values): the alert
rules pass `promtool check rules` and fire, under `promtool test rules`, on the series the operator
exports and only then; the dashboard's queries parse; every series either names is one the operator
exports. e2e/tests/test_install.py runs the dashboard's queries against the local Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml
from e2e.cluster.config import helm as helm_path
from e2e.install import (
    alerts,
    dashboard_queries,
    differences,
    render_chart,
    render_kustomize,
    rule_groups,
    substituted,
)
from prometheus_client import generate_latest

from stanch.adapters.prometheus import PrometheusClient, PrometheusError
from stanch.core.settings import PrometheusConnection
from stanch.wiring.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"
# Grafana's variables, as Grafana substitutes them before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$job": "stanch-metrics",
    "$__rate_interval": "2m",
    "$__range": "6h",
    "$__interval": "1m",
}


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("no promtool: `make cluster-deps` installs Debian's prometheus package, which ships it")
    return found


@pytest.fixture
def helm() -> str:
    built = helm_path()
    if not built.exists():
        pytest.skip("no helm: run `make cluster-binaries`")
    return str(built)


def promtool_run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- the rules ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    out = promtool_run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_refuses_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    # The check above can fail: a rule that does not parse is refused.
    groups = rule_groups()
    groups[0]["rules"][0]["expr"] = "sum by (job (up)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    assert promtool_run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path).returncode != 0


def test_every_alert_says_what_and_how_bad() -> None:
    for name, rule in alerts().items():
        assert name.startswith("Stanch"), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert 'job="stanch-metrics"' in rule["expr"], f"{name} must select the operator's job"


def series(name: str, **labels: str) -> str:
    """A series of the operator's job in promtool's notation."""
    pairs = ", ".join(f'{k}="{v}"' for k, v in {"job": "stanch-metrics", **labels}.items())
    return f"{name}{{{pairs}}}"


# Each case: the series (promtool's input notation, one sample a minute), when to evaluate, and the
# alerts (name and labels) that must be firing then: exactly these, no others.
HEALTHY = {
    series("up", instance="a"): "1+0x60",
    series("up", instance="b"): "1+0x60",
    series("stanch_handler_invocations_total", handler="incident-open"): "0+10x60",
    series("stanch_handler_errors_total", handler="incident-open", error="KubeError"): "0+0x60",
    series("stanch_prometheus_requests_total", client="mitigation", outcome="ok"): "0+30x60",
    series("stanch_prometheus_requests_total", client="mitigation", outcome="bad_query"): "0+30x60",
    series("stanch_mitigation_phase_transitions_total", phase="Succeeded", action="rollback"): "0+0x60",
    series("stanch_evidence_cache_ready", kind="Pod", scope="*"): "1+0x60",
    series("stanch_alertmanager_notifications_total", outcome="Created"): "0+1x60",
}
CASES: list[tuple[str, dict[str, str], str, list[tuple[str, dict[str, str]]]]] = [
    ("healthy", HEALTHY, "60m", []),
    (
        "every replica down",
        {series("up", instance="a"): "0+0x60"},
        "10m",
        [
            ("StanchOperatorDown", {"severity": "critical"}),
            ("StanchReplicaDown", {"severity": "warning", "job": "stanch-metrics", "instance": "a"}),
        ],
    ),
    (
        "no target at all",
        {'up{job="other"}': "1+0x60"},
        "10m",
        [("StanchOperatorDown", {"severity": "critical"})],
    ),
    (
        "one replica down",
        {**HEALTHY, series("up", instance="b"): "1 1 0+0x60"},
        "30m",
        [
            ("StanchReplicaDown", {"severity": "warning", "job": "stanch-metrics", "instance": "b"}),
        ],
    ),
    (
        "handler failing",
        {
            **HEALTHY,
            series("stanch_handler_errors_total", handler="incident-open", error="KubeError"): "0+5x60",
        },
        "30m",
        [
            (
                "StanchHandlerErrors",
                {"severity": "warning", "job": "stanch-metrics", "handler": "incident-open"},
            )
        ],
    ),
    (
        "prometheus unreachable",
        {
            **HEALTHY,
            series("stanch_prometheus_requests_total", client="mitigation", outcome="unreachable"): "0+90x60",
        },
        "30m",
        [
            (
                "StanchPrometheusUnreachable",
                {"severity": "critical", "job": "stanch-metrics", "client": "mitigation"},
            )
        ],
    ),
    (
        "a mitigation failed",
        {
            **HEALTHY,
            series(
                "stanch_mitigation_failures_total", reason="BaselineNoData", phase="Failed"
            ): "0 0 0 1+0x60",
        },
        "5m",
        [
            (
                "StanchMitigationFailed",
                {
                    "severity": "warning",
                    "job": "stanch-metrics",
                    "reason": "BaselineNoData",
                    "phase": "Failed",
                },
            )
        ],
    ),
    (
        "the failure is old news",
        {
            **HEALTHY,
            series(
                "stanch_mitigation_failures_total", reason="BaselineNoData", phase="Failed"
            ): "0 0 0 1+0x60",
        },
        "40m",
        [],
    ),
    (
        "needs attention",
        {
            **HEALTHY,
            series(
                "stanch_mitigation_phase_transitions_total", phase="NeedsAttention", action="scale"
            ): "0 0 1+0x60",
        },
        "5m",
        [
            (
                "StanchMitigationNeedsAttention",
                {"severity": "warning", "job": "stanch-metrics", "action": "scale"},
            )
        ],
    ),
    (
        "reverting again and again",
        {
            **HEALTHY,
            series("stanch_mitigation_phase_transitions_total", phase="Reverted", action="scale"): "0+1x60",
        },
        "30m",
        [("StanchMitigationsReverting", {"severity": "warning", "job": "stanch-metrics", "action": "scale"})],
    ),
    (
        "passes failing",
        {
            **HEALTHY,
            series("stanch_mitigation_pass_errors_total", error="KeyError", transient="false"): "0+1x60",
        },
        "30m",
        [
            (
                "StanchMitigationPassesFailing",
                {"severity": "warning", "job": "stanch-metrics", "error": "KeyError"},
            )
        ],
    ),
    (
        "api server out",
        {
            **HEALTHY,
            series("stanch_mitigation_pass_errors_total", error="KubeError", transient="true"): "0+3x60",
        },
        "30m",
        [("StanchKubernetesAPIUnavailable", {"severity": "warning", "job": "stanch-metrics"})],
    ),
    (
        "cache outgrown",
        {
            **HEALTHY,
            series("stanch_evidence_cache_ready", kind="Pod", scope="*"): "0+0x60",
        },
        "30m",
        [
            (
                "StanchEvidenceCacheNotReady",
                {"severity": "info", "job": "stanch-metrics", "kind": "Pod", "scope": "*"},
            )
        ],
    ),
    (
        "alertmanager refused",
        {
            **HEALTHY,
            series("stanch_alertmanager_notifications_total", outcome="Unauthorized"): "0+2x60",
        },
        "30m",
        [
            (
                "StanchAlertmanagerNotificationsRefused",
                {
                    "severity": "warning",
                    "job": "stanch-metrics",
                    "outcome": "Unauthorized",
                },
            )
        ],
    ),
]


def test_alerts_fire_on_the_operators_series_and_only_then(promtool: str, tmp_path: Path) -> None:
    # promtool compares annotations too; they are template text checked by `check rules` above,
    # so the rules under test here are the same rules without them.
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = []
    for name, series, at, expected in CASES:
        firing: dict[str, list[dict[str, Any]]] = {a: [] for a in alerts()}
        for alert, labels in expected:
            firing[alert].append({"exp_labels": {"alertname": alert, **labels}})
        tests.append(
            {
                "name": name,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert, "exp_alerts": exp} for alert, exp in firing.items()
                ],
            }
        )
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": tests}))
    out = promtool_run(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


# --- the dashboard ------------------------------------------------------------------------------


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    queries = [
        (title, substituted(expr)) for title, expr in dashboard_queries() if not title.startswith("variable")
    ]
    assert len(queries) >= 14
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    (tmp_path / "dashboard-rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    out = promtool_run(promtool, "check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_selects_the_job_variable_everywhere() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "stanch-operator"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "job"]
    for title, expr in dashboard_queries():
        if not title.startswith("variable"):
            assert 'job="$job"' in expr, title
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["description"].strip(), panel["title"]


# --- the series they use are the operator's -----------------------------------------------------


def exported_series() -> set[str]:
    """Series names the operator's registry exports (counters with _total, info with _info)."""
    metrics = Metrics()
    metrics.observe_prometheus("mitigation", {"ok": 1})
    names = set()
    for family in metrics.registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def series_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(stanch_[a-z_]+)\b", expr))


def test_every_series_the_rules_and_dashboard_use_is_exported() -> None:
    exported = exported_series()
    used = {s for rule in alerts().values() for s in series_in(rule["expr"])}
    used |= {s for _, expr in dashboard_queries() for s in series_in(expr)}
    assert used, "the check saw no series"
    assert not used - exported, f"not exported by the operator: {sorted(used - exported)}"
    # And the other way: every series the operator exports is on the dashboard.
    on_dashboard = {s for _, expr in dashboard_queries() for s in series_in(expr)}
    assert not exported - on_dashboard, f"exported but on no panel: {sorted(exported - on_dashboard)}"


async def test_prometheus_requests_are_counted_by_outcome() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}}),
            httpx.Response(401, json={"status": "error"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return next(answers)
        except StopIteration:
            raise httpx.ConnectError("connection refused", request=request) from None

    client = PrometheusClient.connect(
        PrometheusConnection(url="http://prometheus.test:9090"), transport=httpx.MockTransport(handler)
    )
    metrics = Metrics()
    metrics.observe_prometheus("investigation", client.outcomes)
    await client.query("up")
    for _ in range(2):
        with pytest.raises(PrometheusError):
            await client.query("up")
    await client.close()
    body = generate_latest(metrics.registry).decode()
    assert 'stanch_prometheus_requests_total{client="investigation",outcome="ok"} 1.0' in body
    assert 'stanch_prometheus_requests_total{client="investigation",outcome="unauthorized"} 1.0' in body
    assert 'stanch_prometheus_requests_total{client="investigation",outcome="unreachable"} 1.0' in body


# --- the chart and the kustomize monitoring -----------------------------------------------------

MONITORING_VALUES = {
    "namespace": {"create": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}


def test_chart_monitoring_renders_what_kustomize_monitoring_does(
    helm: str, kubectl: str, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    relative = Path("../" * len(overlay.parts[1:]))
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [
                    str(relative / REPO.relative_to("/") / p) for p in ("manifests", "manifests/monitoring")
                ]
            }
        )
    )
    base = render_kustomize(kubectl, overlay)
    assert {"ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in base}
    problems = differences(base, render_chart(helm, MONITORING_VALUES))
    assert not problems, "\n".join(problems)


def test_chart_rules_follow_the_scrape_job(helm: str) -> None:
    def rule_exprs(values: dict[str, Any], namespace: str = "stanch-system") -> list[str]:
        objects = render_chart(helm, values, namespace=namespace)
        (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
        return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]

    pod_monitor = {"metrics": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
    exprs = rule_exprs(pod_monitor, namespace="ops")
    assert all('job="ops/stanch"' in e and 'job="stanch-metrics"' not in e for e in exprs)
    explicit = {"metrics": {"prometheusRule": {"enabled": True, "job": "kubernetes-pods"}}}
    assert all('job="kubernetes-pods"' in e for e in rule_exprs(explicit))
    team = {"metrics": {"prometheusRule": {"enabled": True, "additionalLabels": {"team": "platform"}}}}
    (rule,) = [o for o in render_chart(helm, team) if o["kind"] == "PrometheusRule"]
    assert all(
        r["labels"]["team"] == "platform" and r["labels"]["severity"]
        for r in rule["spec"]["groups"][0]["rules"]
    )


def test_dashboard_configmap_carries_the_dashboard(helm: str) -> None:
    values = {"metrics": {"dashboard": {"enabled": True, "namespace": "grafana"}}}
    (config,) = [
        o
        for o in render_chart(helm, values)
        if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]
    ]
    assert config["metadata"]["namespace"] == "grafana"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["stanch.json"]) == json.loads(DASHBOARD.read_text())
