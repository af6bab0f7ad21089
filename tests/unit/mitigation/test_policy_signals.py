"""A MitigationPolicy's signal templates are what the guard of the Mitigations it decides queries:
custom names and overrides of built-in names, for those Mitigations only.

Pure side: the templates the machine runs under and the query table handed to the sampler. Adapter
boundary: the PromQL string a pass of the wiring would send to Prometheus, starting from the policy
object as the API server returns it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient, Series
from stanch.core.effects import QuerySignals
from stanch.core.guard import SignalSpec
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES
from stanch.core.mitigation_context import IncidentFacts, mitigation_signals, signal_queries
from stanch.core.models import MitigationPolicySpec
from stanch.core.settings import Settings
from stanch.wiring.handlers.mitigation import Pass, Runtime
from stanch.wiring.metrics import Metrics
from stanch.wiring.mitigation_policy import PolicyContext, policy_context

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOM = 'sum(queue_depth{namespace="{{namespace}}",app="{{workload}}"})'
OVERRIDE = (
    'sum(rate(edge_5xx_total{ns="{{namespace}}",svc="{{workload}}"}[1m]))'
    ' / sum(rate(edge_total{ns="{{namespace}}",svc="{{workload}}"}[1m]))'
)
POLICY: dict[str, Any] = {
    "apiVersion": "stanch.dev/v1alpha1",
    "kind": "MitigationPolicy",
    "metadata": {"name": "p", "namespace": "shop"},
    "spec": {
        "actions": [{"action": "Scale", "tier": "Auto"}],
        "signals": [
            {"name": "queue_depth", "kind": "Saturation", "query": CUSTOM, "threshold": 500},
            {"name": "error_ratio", "kind": "ErrorRatio", "query": OVERRIDE, "threshold": 0.02},
        ],
    },
}


def _policy_templates() -> PolicyContext:
    spec = MitigationPolicySpec.model_validate(POLICY["spec"])
    return PolicyContext(templates={t.name: t for t in spec.signals})


def test_the_policys_templates_override_the_operators_name_by_name() -> None:
    signals = mitigation_signals(DEFAULT_SIGNAL_TEMPLATES, _policy_templates().templates)
    queries = signal_queries(signals)
    assert queries["queue_depth"] == CUSTOM
    assert queries["error_ratio"] == OVERRIDE
    # What the policy does not name stays the operator's.
    assert queries["latency_p99"] == DEFAULT_SIGNAL_TEMPLATES["latency_p99"]
    # The threshold the guard judges by belongs to the query that is sent (it used to be the
    # policy's threshold over the built-in query).
    assert SignalSpec.of("error_ratio", signals["error_ratio"]).threshold == 0.02
    assert SignalSpec.of("queue_depth", signals["queue_depth"]).threshold == 500


def test_without_a_policy_a_mitigation_runs_the_operators_templates() -> None:
    queries = signal_queries(mitigation_signals(DEFAULT_SIGNAL_TEMPLATES, PolicyContext().templates))
    assert queries == dict(DEFAULT_SIGNAL_TEMPLATES)


# --- the adapter boundary: what a pass sends to Prometheus ----------------------------------------


class FakeKube:
    """Answers ``get`` with the policy object; nothing else is called by these tests."""

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if (kind, name, namespace) == ("MitigationPolicy", "p", "shop"):
            return POLICY
        return None


class RecordingPrometheus(PrometheusClient):
    """Records every range query and answers each with one series of three points."""

    def __init__(self) -> None:
        super().__init__("http://prometheus.invalid")
        self.queries: list[str] = []

    async def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        self.queries.append(query)
        return [Series(labels={}, points=[(start, 0.01), (start + step, 0.01), (end, 0.01)])]


def _mitigation(policy: str | None, signals: list[str]) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Baking"}
    if policy is not None:
        status["policy"] = {"decision": "Allow", "policy": policy, "rule": "actions[Scale]"}
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": "m", "namespace": "shop", "uid": "uid-m", "generation": 1},
        "spec": {
            "target": {"name": "checkout"},
            "scale": {"replicas": 4},
            "guard": {"signals": [{"name": n} for n in signals]},
        },
        "status": status,
    }


def _rendered(name: str) -> str:
    return DEFAULT_SIGNAL_TEMPLATES[name].replace("{{namespace}}", "shop").replace("{{workload}}", "checkout")


def _sent(obj: dict[str, Any], signals: tuple[str, ...]) -> tuple[list[str], Any]:
    async def run() -> tuple[list[str], Any]:
        prometheus = RecordingPrometheus()
        kube = cast(KubeClient, FakeKube())
        runtime = Runtime(
            kube=kube,
            prometheus=prometheus,
            settings=Settings(prometheus_url="http://prometheus.invalid", all_namespaces=True),
            metrics=Metrics(),
        )
        context = await policy_context(kube, obj["status"].get("policy", {}).get("policy"))
        one = Pass(runtime, obj, IncidentFacts(), context)
        query = QuerySignals(signals, NOW - timedelta(minutes=1), NOW, 10.0, "check")
        sample = await one._query(query)
        return prometheus.queries, sample

    return asyncio.run(run())


def test_a_policys_custom_signal_and_override_are_the_queries_sent() -> None:
    obj = _mitigation("MitigationPolicy/shop/p", ["queue_depth", "error_ratio", "latency_p99"])
    queries, sample = _sent(obj, ("queue_depth", "error_ratio", "latency_p99"))
    assert queries == [
        'sum(queue_depth{namespace="shop",app="checkout"})',
        'sum(rate(edge_5xx_total{ns="shop",svc="checkout"}[1m]))'
        ' / sum(rate(edge_total{ns="shop",svc="checkout"}[1m]))',
        _rendered("latency_p99"),
    ]
    # The custom signal has data now: it used to come back "no signal template named 'queue_depth'".
    assert all(s.points and s.error is None for s in sample.series)


def test_another_mitigation_without_that_policy_keeps_the_builtin_query() -> None:
    queries, sample = _sent(_mitigation(None, ["error_ratio", "queue_depth"]), ("error_ratio", "queue_depth"))
    assert queries == [_rendered("error_ratio")]
    (_, custom) = sample.series
    assert custom.points is None
    assert custom.error == "no signal template named 'queue_depth'"
