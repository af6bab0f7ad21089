"""The collector's part of per-pod outliers and failing dependencies, with stand-in clients: per-pod
series become a spread over the target's current pods at the latest moment, and error lines naming a
Service lead to one LIST of Deployments/StatefulSets and the matched Deployment's ReplicaSets —
and to none when no line names a Service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from stanch.adapters.evidence import EvidenceRequest, collect
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient, Series
from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES

NOW = datetime(2025, 3, 1, 12, 10, tzinfo=UTC)
NS = "shop"
PODS = [f"checkout-abc-p{i}" for i in range(4)]


def _pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"app": "checkout", "pod-template-hash": "abc"},
            "ownerReferences": [
                {"uid": "rs", "controller": True, "kind": "ReplicaSet", "name": "checkout-abc"}
            ],
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "restartCount": 7 if name.endswith("p3") else 0}],
        },
    }


def world(log_line: str) -> dict[str, list[dict[str, Any]]]:
    template = {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app"}]}}
    return {
        "Deployment": [
            {
                "metadata": {
                    "name": "checkout",
                    "uid": "d",
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                },
                "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "template": template},
            },
            {
                "metadata": {
                    "name": "ledger",
                    "uid": "led",
                    "annotations": {"deployment.kubernetes.io/revision": "3"},
                },
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "ledger"}},
                    "template": {"metadata": {"labels": {"app": "ledger"}}},
                },
                "status": {"readyReplicas": 0},
            },
        ],
        "ReplicaSet": [
            {
                "metadata": {
                    "name": "checkout-abc",
                    "uid": "rs",
                    "labels": {"app": "checkout", "pod-template-hash": "abc"},
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [{"uid": "d", "controller": True}],
                },
                "spec": {"template": template},
            },
            *(
                {
                    "metadata": {
                        "name": f"ledger-{n}",
                        "creationTimestamp": (NOW - timedelta(minutes=30 - n)).isoformat(),
                        "annotations": {"deployment.kubernetes.io/revision": str(n)},
                        "ownerReferences": [{"uid": "led", "controller": True}],
                    }
                }
                for n in (2, 3)
            ),
        ],
        "Pod": [_pod(p) for p in PODS],
        "Service": [
            {
                "metadata": {"name": "ledger", "namespace": NS},
                "spec": {"clusterIP": "10.96.0.42", "selector": {"app": "ledger"}},
            }
        ],
        "EndpointSlice": [
            {
                "metadata": {"name": "ledger-1", "labels": {"kubernetes.io/service-name": "ledger"}},
                "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": False}}],
            }
        ],
        "_log": [{"line": log_line}],
    }


class FakeKube:
    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.calls: list[str] = []

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return next((o for o in self.objects.get(kind, []) if o["metadata"]["name"] == name), None)

    async def list(self, kind: str, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        self.calls.append(f"{kind} {kw.get('label_selector') or ''}".strip())
        return list(self.objects.get(kind, []))

    async def logs(self, pod: str, namespace: str, **_: Any) -> str:
        line = self.objects["_log"][0]["line"]
        return "".join(f"2025-03-01T12:09:{s:02d}Z {line}\n" for s in range(20))


class FakePrometheus:
    """Overall series flat; per-pod CPU with one pod pinned at its limit; one stale pod series."""

    async def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        times = []
        t = start
        while t <= end:
            times.append(t)
            t += step
        if "sum by (pod)" in query and "container_cpu_usage_seconds_total" in query:
            out = [Series({"pod": p}, [(x, 0.99 if p.endswith("p0") else 0.2) for x in times]) for p in PODS]
            out.append(Series({"pod": "checkout-old-gone"}, [(start, 1.0)]))  # a pod no longer there
            return out
        if "by (pod)" in query or "by (le, pod)" in query:
            return []
        return [Series({}, [(x, 0.1) for x in times])]


def request() -> EvidenceRequest:
    return EvidenceRequest(
        namespace=NS, name="checkout", now=NOW, reference=NOW, lookback=timedelta(minutes=10)
    )


async def run(line: str) -> tuple[Any, FakeKube]:
    kube = FakeKube(world(line))
    templates = {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}
    got = await collect(
        cast(KubeClient, kube), cast(PrometheusClient, FakePrometheus()), request(), templates
    )
    return got, kube


async def test_per_pod_series_become_a_spread_of_the_current_pods() -> None:
    got, _ = await run("INFO all good")
    spreads = {s.signal: s for s in got.evidence.pod_spreads}
    cpu = spreads["cpu_vs_limit"]
    assert cpu.pods == 4  # the gone pod's stale series is not one of them
    assert cpu.highest[0].pod == "checkout-abc-p0"
    assert cpu.highest[0].value == 0.99
    assert cpu.highest[0].revision == "1"
    assert cpu.siblings_median == 0.2
    restarts = spreads["restarts"]
    assert restarts.highest[0].pod == "checkout-abc-p3"
    assert restarts.highest[0].value == 7
    # Per-pod answers never crowd the per-revision/per-node summaries.
    assert not any(m.scope.startswith("pod") for m in got.evidence.metrics)


async def test_a_cluster_ip_in_the_logs_leads_to_the_service_and_its_deployment() -> None:
    got, kube = await run("ERROR dial tcp 10.96.0.42:5432: connect: connection refused")
    (dep,) = got.evidence.dependencies
    assert dep.service is not None
    assert dep.service.name == "ledger"
    assert dep.workload is not None
    assert dep.workload.name == "ledger"
    assert (dep.endpoints_ready, dep.endpoints_total) == (0, 1)
    assert (dep.revision, dep.previous_revision) == (3, 2)
    assert dep.count == sum(1 for line in got.log_lines if "refused" in line.message)
    assert dep.count > 0
    assert "Deployment" in kube.calls
    assert "StatefulSet" in kube.calls
    assert "ReplicaSet app=ledger" in kube.calls
    assert not any(p.collector == "dependencies" for p in got.partial)


async def test_no_service_named_means_no_extra_lists() -> None:
    got, kube = await run("ERROR dial tcp 203.0.113.5:443: i/o timeout")
    (dep,) = got.evidence.dependencies
    assert dep.external
    assert "Deployment" not in kube.calls
    assert "StatefulSet" not in kube.calls


class MeshPrometheus(FakePrometheus):
    """Answers the ``dependency_errors`` template with one series per destination Service."""

    async def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        if "istio_requests_total" in query:
            return [
                Series({"destination_service": "ledger.shop.svc.cluster.local"}, [(start, 0.0), (end, 9.0)]),
                Series({"destination_service": "quiet.shop.svc.cluster.local"}, [(start, 0.0), (end, 0.0)]),
            ]
        return await super().query_range(query, start, end, step)


async def test_a_dependency_metric_names_the_service_without_any_log_line() -> None:
    kube = FakeKube(world("INFO all good"))
    templates = {
        **DEFAULT_SIGNAL_TEMPLATES,
        "dependency_errors": (
            'sum by (destination_service) (rate(istio_requests_total{source_workload="{{workload}}"}[5m]))'
        ),
    }
    prometheus = cast(PrometheusClient, MeshPrometheus())
    got = await collect(cast(KubeClient, kube), prometheus, request(), templates)
    (dep,) = got.evidence.dependencies
    assert dep.service is not None
    assert dep.service.name == "ledger"
    assert dep.workload is not None
    assert dep.workload.name == "ledger"
    assert dep.errors_per_second == 9.0
    assert dep.count == 0
    # Read on its own, never as an overall signal with "more than one series".
    assert not any(m.signal == "dependency_errors" for m in got.evidence.metrics)
    assert not any("dependency_errors" in p.collector for p in got.partial)
