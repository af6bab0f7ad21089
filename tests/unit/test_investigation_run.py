"""One investigation end to end with stand-in clients: failures become partial evidence and honest
conditions, never a crash and never a confident answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from stanch.adapters.evidence import CollectorLimits
from stanch.adapters.kube import KubeClient, KubeError
from stanch.adapters.prometheus import PrometheusClient, PrometheusError, Series
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES
from stanch.wiring.investigation import Investigator

NOW = datetime(2025, 3, 1, 12, 10, tzinfo=UTC)


class FakeKube:
    def __init__(
        self, objects: dict[str, list[dict[str, Any]]], forbidden: frozenset[str] = frozenset()
    ) -> None:
        self.objects = objects
        self.forbidden = forbidden
        self.calls: list[str] = []

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.calls.append(f"get {kind}")
        return next((o for o in self.objects.get(kind, []) if o["metadata"]["name"] == name), None)

    async def list(self, kind: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        self.calls.append(f"list {kind}")
        if kind in self.forbidden:
            raise KubeError(403, "Forbidden", f"{kind} is forbidden")
        return list(self.objects.get(kind, []))

    async def logs(self, pod: str, namespace: str, **_: Any) -> str:
        self.calls.append("logs")
        return "2025-03-01T12:09:00Z ERROR upstream payment-gw timeout after 3012ms\n"


class FakePrometheus:
    def __init__(self, down: bool) -> None:
        self.down = down

    async def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        if self.down:
            raise PrometheusError("unreachable", "connection refused")
        points = [(start + timedelta(seconds=30 * i), 0.0) for i in range(10)]
        return [Series({}, points)]


def incident() -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": "checkout-5xx",
            "generation": 2,
            "creationTimestamp": "2025-03-01T12:05:00Z",
        },
        "spec": {"target": {"kind": "Deployment", "name": "checkout"}, "lookback": "10m"},
    }


def deployment_world() -> dict[str, list[dict[str, Any]]]:
    labels = {"app": "checkout", "pod-template-hash": "abc"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "c:1"}]}}
    return {
        "Deployment": [
            {
                "metadata": {
                    "name": "checkout",
                    "uid": "d",
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                },
                "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "template": template},
            }
        ],
        "ReplicaSet": [
            {
                "metadata": {
                    "name": "checkout-abc",
                    "uid": "rs",
                    "labels": labels,
                    "creationTimestamp": "2025-02-01T00:00:00Z",
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [
                        {"uid": "d", "controller": True, "kind": "Deployment", "name": "checkout"}
                    ],
                },
                "spec": {"template": template},
            }
        ],
        "Pod": [
            {
                "metadata": {
                    "name": "checkout-abc-x",
                    "labels": labels,
                    "ownerReferences": [
                        {"uid": "rs", "controller": True, "kind": "ReplicaSet", "name": "checkout-abc"}
                    ],
                },
                "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        ],
    }


def investigator(kube: FakeKube, prometheus: FakePrometheus) -> Investigator:
    return Investigator(
        cast(KubeClient, kube),
        cast(PrometheusClient, prometheus),
        DEFAULT_SIGNAL_TEMPLATES,
        clock=lambda: NOW,
    )


def condition(outcome: Any, type_: str) -> Any:
    return next(c for c in outcome.status.conditions if c.type == type_)


async def test_prometheus_down_and_forbidden_lists_are_partial_not_fatal() -> None:
    kube = FakeKube(deployment_world(), forbidden=frozenset({"HorizontalPodAutoscaler"}))
    outcome = await investigator(kube, FakePrometheus(down=True)).run(incident())
    partial = {p.collector: p.reason for p in outcome.collected.partial}
    assert "hpas" in partial
    assert "RBAC" in partial["hpas"]
    assert "metrics:error_ratio" in partial
    assert condition(outcome, "NoMetrics").status.value == "True"
    assert condition(outcome, "PartialEvidence").status.value == "True"
    # How far confidence drops is the analysis core's rule; what this layer owes it is the facts.
    for h in outcome.status.hypotheses:
        assert any("metrics" in line for line in h.contradicting), h
    overall = (
        next(m for m in outcome.status.evidence.metrics if m.signal == "error_ratio")
        if outcome.status.evidence
        else None
    )
    assert overall is not None
    assert overall.now is None, "no data is never a zero"
    assert overall.error is not None
    assert outcome.status.evidence is not None
    assert outcome.status.evidence.pod_health.total == 1
    assert outcome.status.evidence.log_signatures, "the sampled log's error is a signature"
    assert outcome.patch is not None, "a first investigation is always written"
    assert kube.calls.count("get Deployment") == 1


async def test_vanished_workload_says_so() -> None:
    outcome = await investigator(FakeKube({}), FakePrometheus(down=False)).run(incident())
    assert condition(outcome, "TargetMissing").status.value == "True"
    assert any(p.collector == "deployment" for p in outcome.collected.partial)
    assert all(h.confidence < 50 for h in outcome.status.hypotheses), outcome.status.hypotheses
    assert outcome.status.target == "Deployment/shop/checkout"


class SlowBreakdowns(FakePrometheus):
    """Answers overall queries at once and never answers a breakdown (``sum by``)."""

    async def query_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        if "sum by (revision)" in query or "sum by (node)" in query or "sum by (le, revision)" in query:
            await asyncio.sleep(60)
        return await super().query_range(query, start, end, step)


async def test_queries_past_the_budget_are_timeouts_and_the_rest_is_kept() -> None:
    limits = CollectorLimits(prometheus_budget=0.3)
    inv = Investigator(
        cast(KubeClient, FakeKube(deployment_world())),
        cast(PrometheusClient, SlowBreakdowns(down=False)),
        DEFAULT_SIGNAL_TEMPLATES,
        limits=limits,
        clock=lambda: NOW,
    )
    outcome = await inv.run(incident())
    partial = {p.collector: p.reason for p in outcome.collected.partial}
    assert "budget" in partial["metrics:error_ratio_by_revision"]
    assert "metrics:error_ratio" not in partial
    assert outcome.status.evidence is not None
    overall = next(m for m in outcome.status.evidence.metrics if m.signal == "error_ratio")
    assert overall.now == 0.0, "the overall answer arrived in time and is kept"


class Remembered:
    """Pods and Events a watch cache holds; None for a namespace it cannot vouch for."""

    def __init__(self, pods: list[dict[str, Any]] | None, events: list[dict[str, Any]] | None) -> None:
        self._pods, self._events = pods, events
        self.asked: list[str] = []

    def pods(self, namespace: str) -> list[dict[str, Any]] | None:
        self.asked.append(f"pods {namespace}")
        return self._pods

    def events(self, namespace: str) -> list[dict[str, Any]] | None:
        self.asked.append(f"events {namespace}")
        return self._events


def warning(name: str, kind: str, involved: str, reason: str = "BackOff") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": name},
        "type": "Warning",
        "reason": reason,
        "message": f"{reason} on {involved}",
        "involvedObject": {"kind": kind, "name": involved},
        "count": 3,
        "firstTimestamp": "2025-03-01T12:06:00Z",
        "lastTimestamp": "2025-03-01T12:09:00Z",
    }


async def test_remembered_pods_and_events_replace_their_lists_with_the_same_evidence() -> None:
    world = deployment_world()
    stranger = {
        "metadata": {"name": "cart-1", "labels": {"app": "cart"}, "ownerReferences": []},
        "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
        "status": {"phase": "Running"},
    }
    events = [
        warning("e1", "Pod", "checkout-abc-x"),
        warning("e2", "Deployment", "checkout", reason="ProgressDeadlineExceeded"),
    ]
    listed = FakeKube({**world, "Event": events})
    by_list = await investigator(listed, FakePrometheus(down=False)).run(incident())

    remembered = FakeKube(world)
    memory = Remembered([*world["Pod"], stranger], events)
    inv = investigator(remembered, FakePrometheus(down=False))
    inv.memory = memory
    by_memory = await inv.run(incident())

    assert "list Pod" in listed.calls
    assert "list Event" in listed.calls
    assert "list Pod" not in remembered.calls
    assert "list Event" not in remembered.calls
    assert memory.asked == ["pods shop", "events shop"]
    assert by_memory.collected.from_memory == ("pods", "events")
    assert by_list.collected.from_memory == ()
    assert by_memory.status.evidence == by_list.status.evidence
    assert by_memory.status.evidence is not None
    assert by_memory.status.evidence.pod_health.total == 1, "the other app's pod is not the target's"
    reasons = {e.reason for e in by_memory.status.evidence.events_by_reason}
    assert reasons == {"BackOff", "ProgressDeadlineExceeded"}


async def test_a_cache_that_cannot_vouch_means_listing_as_before() -> None:
    kube = FakeKube(deployment_world())
    inv = investigator(kube, FakePrometheus(down=False))
    inv.memory = Remembered(None, None)
    outcome = await inv.run(incident())
    assert "list Pod" in kube.calls
    assert kube.calls.count("list Event") == 3
    assert outcome.collected.from_memory == ()
    assert outcome.status.evidence is not None
    assert outcome.status.evidence.pod_health.total == 1
