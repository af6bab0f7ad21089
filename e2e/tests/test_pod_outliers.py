"""One pod throttled at its CPU limit while its siblings are fine, on the real Prometheus: the per-pod
breakdown singles it out and the suggestion restarts that pod — no workload-wide "out of CPU", no
scale-up.

Only the real world shows this end to end: the per-pod PromQL (usage over the limit, by pod) against
cAdvisor- and kube-state-metrics-shaped series, the collector keeping the latest moment of each pod,
and the operator's verdict. The pod turns hot on its own after a healthy start (the simulator's
``cpu-hot-ordinal``), with no deploy at the onset.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.test_investigation import (  # noqa: F401 - fixtures used by name
    incident,
    investigation_env,
    stanch_op,
    wait_for_hypotheses,
)
from e2e.tests.test_workloads import rollout_complete

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

HOT_AFTER_SECONDS = 20


def test_one_throttled_pod_is_restarted_by_name_not_scaled_out(
    kube: Kube,
    namespace: str,
    stanch_op: OperatorProcess,  # noqa: F811
) -> None:
    hot = {"sim.stanch.dev/cpu-hot-ordinal": "0", "sim.stanch.dev/cpu-hot-after": f"{HOT_AFTER_SECONDS}s"}
    kube.apply(deployment("checkout", replicas=4, annotations=hot), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "checkout"), 60, "rollout of checkout")
    pods = {p["metadata"]["name"] for p in kube.items("pods", namespace, "app=checkout")}
    # The pod turns hot, then a full 15s rate window of it.
    time.sleep(HOT_AFTER_SECONDS + 20)
    kube.apply(incident("slow-checkout", "checkout"), namespace=namespace)

    def singled_out(status: dict[str, Any]) -> bool:
        return bool(status["hypotheses"][0]["category"] == "PodOutlier")

    status = wait_for_hypotheses(kube, namespace, "slow-checkout", singled_out, "a PodOutlier", timeout=60)
    top = status["hypotheses"][0]
    restart = top["suggestedMitigation"]["restart"]
    assert len(restart["pods"]) == 1, top
    (pod,) = restart["pods"]
    assert pod in pods
    cpu = next(s for s in status["evidence"]["podSpreads"] if s["signal"] == "cpu_vs_limit")
    assert cpu["pods"] == 4
    assert cpu["highest"][0]["pod"] == pod
    assert cpu["highest"][0]["value"] >= 0.9
    assert cpu["siblingsMedian"] < 0.5
    for h in status["hypotheses"]:
        suggestion = h.get("suggestedMitigation") or {}
        assert "scale" not in suggestion, h
        assert "running out of CPU" not in h["statement"], h
