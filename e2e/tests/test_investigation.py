"""Investigations against the real local world: the operator process, real rollouts, real metrics.

Each scenario builds a healthy baseline first (so there is a "before" in Prometheus), then breaks the
workload the way production breaks, files an Incident and waits for the operator's verdict. Signal
templates use a 15s rate window (``--signals``) so a scenario fits in about a minute; the default
templates' 5m windows would need a 5-minute baseline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.shared import GUARD, world_keys_touch
from e2e.tests.test_workloads import ready_pods, rollout_complete
from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, with_rate_window

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

BASELINE_SECONDS = 25
WINDOW = "15s"


@pytest.fixture
def investigation_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Short signal windows and a fast refresh for the operator started by the ``operator`` fixture."""
    templates = {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}
    signals = tmp_path / "signals.yaml"
    signals.write_text(yaml.safe_dump(with_rate_window(templates, WINDOW)))
    monkeypatch.setenv("STANCH_SIGNALS_FILE", str(signals))
    monkeypatch.setenv("STANCH_INVESTIGATION_INTERVAL", "3s")


@pytest.fixture
def stanch_op(investigation_env: None, operator: OperatorProcess) -> OperatorProcess:
    return operator


@pytest.fixture
def world_keys(world: WorldInfo) -> Iterator[dict[str, str | None]]:
    """World keys a test sets; removed again afterwards so other tests see the default world."""
    keys: dict[str, str | None] = {}
    yield keys
    if keys and world.simulator_url:
        httpx.patch(f"{world.simulator_url}/world", json=dict.fromkeys(keys), timeout=10, trust_env=False)


def patch_world(world: WorldInfo, keys: dict[str, str | None], values: dict[str, str]) -> None:
    assert world.simulator_url, "the local world runs the simulator"
    GUARD.allow(world_keys_touch(values), f"simulator world keys {sorted(values)}")
    keys.update(values)
    resp = httpx.patch(f"{world.simulator_url}/world", json=values, timeout=10, trust_env=False)
    resp.raise_for_status()


def incident(name: str, target: str, lookback: str = "3m", started_at: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"target": {"kind": "Deployment", "name": target}, "lookback": lookback}
    if started_at:
        spec["startedAt"] = started_at
    return {"apiVersion": "stanch.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


def status_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("incident", name, namespace).get("status") or {}
    return status


def wait_for_hypotheses(
    kube: Kube, namespace: str, name: str, check: Any, what: str, timeout: float = 40
) -> dict[str, Any]:
    """Poll until the status has hypotheses and ``check(status)`` holds; fails with the last status."""
    last: dict[str, Any] = {}

    def ready() -> bool:
        nonlocal last
        last = status_of(kube, namespace, name)
        return bool(last.get("hypotheses")) and bool(check(last))

    try:
        kube.wait_for(ready, timeout, what, interval=1.0)
    except AssertionError as exc:
        brief = {k: last.get(k) for k in ("topHypothesis", "hypotheses", "conditions", "scope")}
        raise AssertionError(f"{exc}\nlast status: {json.dumps(brief, indent=1)[:6000]}") from None
    return last


def baseline(kube: Kube, namespace: str, manifest: dict[str, Any]) -> None:
    kube.apply(manifest, namespace=namespace)
    name = manifest["metadata"]["name"]
    kube.wait_for(lambda: rollout_complete(kube, namespace, name), 60, f"rollout of {name}")
    time.sleep(BASELINE_SECONDS)


def top(status: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = status["hypotheses"][0]
    return first


def test_bad_rollout_is_blamed_on_the_new_revision(
    kube: Kube, namespace: str, stanch_op: OperatorProcess
) -> None:
    baseline(kube, namespace, deployment("checkout", replicas=3, image="registry.example/checkout:1.4.2"))
    bad = deployment(
        "checkout",
        replicas=3,
        image="registry.example/checkout:1.5.0",
        annotations={"sim.stanch.dev/error-ratio": "0.4"},
    )
    kube.apply(bad, namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "checkout"), 60, "rollout of revision 2")
    time.sleep(10)  # let the new pods' errors reach Prometheus
    kube.apply(incident("checkout-5xx", "checkout"), namespace=namespace)

    status = wait_for_hypotheses(
        kube,
        namespace,
        "checkout-5xx",
        lambda s: top(s)["category"] == "RecentDeploy",
        "the deploy to be the top hypothesis",
    )
    best = top(status)
    assert "revision 2" in best["statement"], best
    assert "registry.example/checkout:1.4.2 → registry.example/checkout:1.5.0" in best["statement"], best
    assert best["confidence"] >= 50, best
    assert best["suggestedMitigation"]["rollback"] is not None, best
    assert status["topHypothesis"].startswith("RecentDeploy"), status["topHypothesis"]
    rollouts = status["evidence"]["rollouts"]
    assert [r["revision"] for r in rollouts] == [2, 1]
    assert any("image app: registry.example/checkout:1.4.2" in c for c in rollouts[0]["changes"])
    scopes = {(m["signal"], m["scope"]) for m in status["evidence"]["metrics"]}
    assert ("error_ratio", "overall") in scopes
    assert ("error_ratio", "revision:2") in scopes
    assert status["evidence"]["logSignatures"], "the new pods' errors are in their logs"
    assert status["phase"] == "Investigating"
    reasons = {e["reason"] for e in kube.events(namespace) if e["involvedObject"]["kind"] == "Incident"}
    assert {"InvestigationStarted", "HypothesisChanged"} <= reasons


def test_crash_looping_revision(kube: Kube, namespace: str, stanch_op: OperatorProcess) -> None:
    baseline(kube, namespace, deployment("orders", replicas=3, image="registry.example/orders:2.0"))
    broken = deployment(
        "orders",
        replicas=3,
        image="registry.example/orders:2.1",
        annotations={"sim.stanch.dev/lifecycle": "crashloop"},
    )
    kube.apply(broken, namespace=namespace)

    def crash_looping() -> bool:
        pods = kube.items("pods", namespace, "app=orders")
        return any(
            (cs.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            or cs.get("restartCount", 0) > 0
            for p in pods
            for cs in p["status"].get("containerStatuses", [])
        )

    kube.wait_for(crash_looping, 60, "a crash-looping pod of revision 2")
    kube.apply(incident("orders-down", "orders"), namespace=namespace)
    status = wait_for_hypotheses(
        kube,
        namespace,
        "orders-down",
        lambda s: top(s)["category"] == "RecentDeploy" and "revision 2" in top(s)["statement"],
        "the crash-looping revision to be the top hypothesis",
    )
    health = status["evidence"]["podHealth"]
    rev2 = next(g for g in health["byRevision"] if g["key"] == "2")
    assert rev2["ready"] < rev2["total"], rev2
    assert rev2["restarts"] > 0 or rev2["reasons"], rev2
    rev1 = next(g for g in health["byRevision"] if g["key"] == "1")
    assert rev1["ready"] == rev1["total"], "the old revision keeps serving while the new one crashes"
    assert top(status)["suggestedMitigation"]["rollback"] is not None


def test_config_map_change_without_a_new_revision(
    kube: Kube, namespace: str, stanch_op: OperatorProcess
) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "pricing-flags"},
            "data": {"new-pricing": "false"},
        },
        namespace=namespace,
    )
    manifest = deployment(
        "pricing",
        replicas=3,
        annotations={
            "sim.stanch.dev/config-map": "pricing-flags",
            "sim.stanch.dev/flag.new-pricing": "error-ratio=0.5",
        },
    )
    # The app reads its flags from the mounted ConfigMap, as production apps do.
    spec = manifest["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "flags", "configMap": {"name": "pricing-flags"}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "flags", "mountPath": "/etc/flags"}]
    baseline(kube, namespace, manifest)
    kube.run(
        "patch",
        "configmap",
        "pricing-flags",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"data":{"new-pricing":"true"}}',
    )
    time.sleep(10)
    kube.apply(incident("pricing-5xx", "pricing"), namespace=namespace)
    status = wait_for_hypotheses(
        kube,
        namespace,
        "pricing-5xx",
        lambda s: top(s)["category"] == "ConfigChange",
        "the ConfigMap change to be the top hypothesis",
    )
    assert "pricing-flags" in top(status)["statement"], top(status)
    assert [r["revision"] for r in status["evidence"]["rollouts"]] == [1], "no new revision"
    change = next(c for c in status["evidence"]["configChanges"] if c["object"]["name"] == "pricing-flags")
    assert change["referenced"] is True
    assert "new-pricing" in change["summary"], "the flipped key is named"


def test_traffic_surge_without_a_change_points_at_load(
    world: WorldInfo,
    kube: Kube,
    namespace: str,
    stanch_op: OperatorProcess,
    world_keys: dict[str, str | None],
) -> None:
    baseline(
        kube, namespace, deployment("search", replicas=2, annotations={"sim.stanch.dev/capacity-rps": "60"})
    )
    surge = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    patch_world(world, world_keys, {f"traffic.{namespace}.search": "400"})
    time.sleep(12)
    # The alert says when it started; the deploy that created the workload is older than the
    # lookback, as it is for a service that has been running for days.
    kube.apply(incident("search-503", "search", lookback="18s", started_at=surge), namespace=namespace)
    status = wait_for_hypotheses(
        kube,
        namespace,
        "search-503",
        lambda s: top(s)["category"] in ("TrafficChange", "Capacity"),
        "load or capacity to be the top hypothesis",
    )
    assert [r["revision"] for r in status["evidence"]["rollouts"]] == [1], "nothing was deployed"
    categories = [h["category"] for h in status["hypotheses"]]
    assert "RecentDeploy" not in categories[:1], categories
    throughput = next(
        m for m in status["evidence"]["metrics"] if m["signal"] == "throughput" and m["scope"] == "overall"
    )
    assert throughput["now"] > 2 * throughput["before"], throughput


def assert_no_confident_cause(status: dict[str, Any]) -> None:
    confident = [h for h in status["hypotheses"] if h["confidence"] >= 50]
    assert not confident, status["hypotheses"]
    best = top(status)
    assert best["category"] in ("Unknown", "Transient") or best["confidence"] < 50, best


def test_healthy_workload_has_no_confident_cause(
    kube: Kube, namespace: str, stanch_op: OperatorProcess
) -> None:
    baseline(kube, namespace, deployment("catalog", replicas=2))
    time.sleep(15)  # past the rate window's warm-up: the lookback sees a steady, healthy workload
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    kube.apply(
        incident("catalog-false-alarm", "catalog", lookback="20s", started_at=now), namespace=namespace
    )
    wait_for_hypotheses(
        kube, namespace, "catalog-false-alarm", lambda s: s.get("evidence"), "an investigation"
    )
    time.sleep(4)  # a later refresh: the verdict must not turn confident as more data arrives
    status = status_of(kube, namespace, "catalog-false-alarm")
    assert_no_confident_cause(status)
    assert status["evidence"]["podHealth"]["ready"] == 2
    # The operator (evidence cache on by default) read the pods and Events from memory.
    investigated = [
        json.loads(line)
        for line in stanch_op.log_file.read_text().splitlines()
        if '"investigated"' in line and line.startswith("{")
    ]
    assert investigated, stanch_op.tail()
    assert investigated[-1]["from_memory"] == ["pods", "events"], investigated[-1]


def test_fresh_healthy_deploy_is_not_blamed(kube: Kube, namespace: str, stanch_op: OperatorProcess) -> None:
    baseline(kube, namespace, deployment("catalog", replicas=2))
    kube.apply(incident("catalog-false-alarm", "catalog"), namespace=namespace)
    wait_for_hypotheses(
        kube, namespace, "catalog-false-alarm", lambda s: s.get("evidence"), "an investigation"
    )
    time.sleep(4)
    assert_no_confident_cause(status_of(kube, namespace, "catalog-false-alarm"))


def test_resolved_incident_stops_refreshing_and_keeps_the_record(
    kube: Kube, namespace: str, stanch_op: OperatorProcess
) -> None:
    kube.apply(deployment("cart", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "cart")) == 2, 60, "2 ready pods")
    kube.apply(incident("cart-slow", "cart"), namespace=namespace)
    wait_for_hypotheses(kube, namespace, "cart-slow", lambda s: True, "an investigation")
    kube.run(
        "patch", "incident", "cart-slow", "-n", namespace, "--type=merge", "-p", '{"spec":{"resolved":true}}'
    )
    kube.wait_for(lambda: status_of(kube, namespace, "cart-slow").get("phase") == "Resolved", 20, "Resolved")
    refreshed = status_of(kube, namespace, "cart-slow")["lastRefreshed"]
    time.sleep(8)  # more than two refresh intervals
    after = status_of(kube, namespace, "cart-slow")
    assert after["lastRefreshed"] == refreshed
    assert after["hypotheses"], "the record is kept"
    assert any(c["type"] == "Resolved" and c["status"] == "True" for c in after["conditions"])


def test_report_renders_a_document_chart_and_alerts(
    world: WorldInfo, kube: Kube, namespace: str, stanch_op: OperatorProcess, tmp_path: Path
) -> None:
    baseline(kube, namespace, deployment("payments", replicas=2, image="registry.example/payments:3.0"))
    kube.apply(
        deployment(
            "payments",
            replicas=2,
            image="registry.example/payments:3.1",
            annotations={"sim.stanch.dev/error-ratio": "0.5"},
        ),
        namespace=namespace,
    )
    kube.wait_for(lambda: rollout_complete(kube, namespace, "payments"), 60, "rollout of revision 2")
    time.sleep(8)
    kube.apply(incident("payments-5xx", "payments"), namespace=namespace)
    wait_for_hypotheses(kube, namespace, "payments-5xx", lambda s: s.get("evidence"), "an investigation")

    out, chart, alerts = tmp_path / "report.md", tmp_path / "chart.png", tmp_path / "alerts.yaml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stanch",
            "report",
            f"{namespace}/payments-5xx",
            "--out",
            str(out),
            "--chart",
            str(chart),
            "--alerts",
            str(alerts),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KUBECONFIG": world.kubeconfig, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    document = out.read_text()
    assert "payments-5xx" in document
    assert "revision 2" in document
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 5_000, "a chart with a drawn series, not an empty canvas"
    rule = yaml.safe_load(alerts.read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"][0]["rules"], rule
