"""`stanch recording-rules` on the real Prometheus: it loads the rules, and the templates reading
the recorded series answer what the raw templates answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cluster import WorldInfo
from e2e.cluster.prometheus import load_rules
from e2e.kube import Kube, deployment
from e2e.tests.test_workloads import rollout_complete
from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, render, with_rate_window
from stanch.core.recording import names, recorded_templates, recording_rules

pytestmark = [
    pytest.mark.local_world("ready-pods", "simulator", "prometheus-process"),
    pytest.mark.serial("world-processes"),
]

WINDOW = "10s"


def _query(world: WorldInfo, promql: str, at: float) -> dict[str, float]:
    reply = httpx.get(
        f"{world.prometheus_url}/api/v1/query", params={"query": promql, "time": at}, timeout=10
    )
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    assert body["status"] == "success", body
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
        for r in body["data"]["result"]
    }


def _close(raw: float, recorded: float, rel: float, floor: float) -> bool:
    return abs(raw - recorded) <= max(rel * abs(raw), floor)


def test_recorded_templates_answer_like_the_raw_ones(world: WorldInfo, kube: Kube, namespace: str) -> None:
    rules_name = f"test-{namespace}"
    # Evaluated every second, like the world's scrapes: the recorded answer lags the raw by ≤ 1 s.
    load_rules(Path(world.state_dir), world.prometheus_url, rules_name, recording_rules(WINDOW, "1s"))
    try:
        bad = deployment("cart", replicas=3, annotations={"sim.stanch.dev/error-ratio": "0.3"})
        kube.apply(bad, namespace=namespace)
        kube.wait_for(lambda: rollout_complete(kube, namespace, "cart"), 60, "the rollout")
        requests = names(WINDOW)["requests"]
        kube.wait_for(
            lambda: _query(world, f'{requests}{{namespace="{namespace}"}}', time.time()),
            30,
            "recorded series for the namespace (Prometheus loaded the rules)",
        )
        time.sleep(12)  # a full rate window of recorded and raw data
        raw = with_rate_window({**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}, WINDOW)
        recorded = recorded_templates(WINDOW)
        values = {"namespace": namespace, "workload": "cart"}
        at = time.time() - 2
        compared = []
        for name in sorted(recorded):
            got = _query(world, render(name, recorded[name], values), at)
            want = _query(world, render(name, raw[name], values), at)
            assert set(got) == set(want), (name, got, want)
            for key, value in want.items():
                # Latency quantiles interpolate inside a bucket; the recorded rate of a bucket is
                # a second younger than the raw one, which may move p99 within that bucket.
                rel = 0.3 if name.startswith("latency") else 0.15
                assert _close(value, got[key], rel, 0.03), (name, key, value, got[key])
            if want:
                compared.append(name)
        # The signals the investigation and the guard lean on all had data to compare.
        assert {"error_ratio", "latency_p99", "throughput", "error_ratio_by_revision"} <= set(compared)
    finally:
        load_rules(Path(world.state_dir), world.prometheus_url, rules_name, None)
