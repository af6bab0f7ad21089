"""Helpers for the real-cluster mitigation tests: manifests, waits, signals and world knobs.

Guards in these tests are short (interval 3 s, bake 18 s, baseline 20 s) and the operator runs
with signal templates over 10 s rate windows, so a regression shows within a couple of scrapes.
The baseline is long enough (about 20 one-second points) for the guard's rank test to be able to
reject at its alpha with the 3 points of one check; shorter baselines cannot show a regression.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from e2e.cluster import WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube
from e2e.operator_process import OperatorProcess

_HTTP = 'namespace="{{namespace}}",deployment="{{workload}}"'
FAST_SIGNALS = {
    "error_ratio": (
        f'sum(rate(http_requests_total{{{_HTTP},code=~"5.."}}[10s]))'
        f" / sum(rate(http_requests_total{{{_HTTP}}}[10s]))"
    ),
    "latency_p99": (
        f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{_HTTP}}}[10s])))"
    ),
}
FAST_GUARD: dict[str, Any] = {
    "signals": [{"name": "error_ratio"}],
    "baselineWindow": "20s",
    "bakeTime": "18s",
    "interval": "3s",
    "failureLimit": 2,
}
ALL_ACTIONS = ("Rollback", "Scale", "Restart", "Canary", "ConfigToggle", "Pause")


def fast_operator(
    world: WorldInfo, namespace: str, log_dir: Path, prometheus_url: str | None = None
) -> OperatorProcess:
    """`stanch run` for one namespace with the fast signal templates (not started)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    signals = log_dir / "signals.yaml"
    signals.write_text(yaml.safe_dump(FAST_SIGNALS))
    return OperatorProcess(
        operator_kubeconfig(world),
        prometheus_url or world.prometheus_url,
        [namespace],
        log_dir,
        extra_args=["--signals", str(signals)],
    )


def allow_all_policy(
    namespace: str,
    *,
    evacuate_nodes: str | None = None,
    canary_images: tuple[str, ...] | None = None,
    config_maps: tuple[dict[str, Any], ...] = ({"name": "flags", "keys": ["newcheckout"]},),
) -> dict[str, Any]:
    """A policy allowing every action automatically, within stated limits: Evacuate only with
    ``evacuate_nodes`` (a name pattern: a policy must name the nodes it may drain), canaries only of
    ``canary_images`` (default: the test registry's images for this namespace) and toggles only of
    ``config_maps`` (default: the ``flags`` ConfigMap's ``newcheckout`` key)."""
    images = list(canary_images) if canary_images is not None else [f"registry.example/{namespace}/*"]
    limits: dict[str, dict[str, Any]] = {
        "Canary": {"canaryImages": images},
        "ConfigToggle": {"configMaps": list(config_maps)},
    }
    rules: list[dict[str, Any]] = [
        {"action": a, "tier": "Auto", **({"limits": limits[a]} if a in limits else {})} for a in ALL_ACTIONS
    ]
    if evacuate_nodes is not None:
        rules.append(
            {"action": "Evacuate", "tier": "Auto", "limits": {"evacuateNodes": {"names": [evacuate_nodes]}}}
        )
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": "allow-all", "namespace": namespace},
        "spec": {"actions": rules},
    }


def mitigation(
    name: str, target: str, action: dict[str, Any], guard: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": name},
        "spec": {"target": {"name": target}, **action, "guard": guard or FAST_GUARD, **spec},
    }


def settle(seconds: float = 22) -> None:
    """Let Prometheus collect a full baseline window of a freshly started workload."""
    time.sleep(seconds)


def status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get("mitigation", name, namespace)
    result: dict[str, Any] = obj.get("status") or {}
    return result


def wait_phase(
    kube: Kube, namespace: str, name: str, phases: set[str], timeout: float, *, leaving: str | None = None
) -> dict[str, Any]:
    """Wait for one of ``phases``; fails early (with the status) when another terminal phase is
    reached, except ``leaving``, the terminal phase the Mitigation is expected to move on from."""
    terminal = {"Rejected", "Succeeded", "Reverted", "Failed", "NeedsAttention"} - {leaving}
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status(kube, namespace, name)
        phase = last.get("phase")
        if phase in phases:
            return last
        if phase in terminal:
            raise AssertionError(
                f"{name} ended {phase}, wanted {phases}:\n{json.dumps(last, indent=1)[:6000]}"
            )
        time.sleep(0.5)
    raise AssertionError(f"{name} not in {phases} after {timeout}s:\n{json.dumps(last, indent=1)[:6000]}")


def audit_events(st: dict[str, Any]) -> list[str]:
    return [str(a.get("event")) for a in st.get("audit") or []]


def error_ratio(prometheus_url: str, namespace: str, workload: str, window: str = "10s") -> float | None:
    sel = f'namespace="{namespace}",deployment="{workload}"'
    query = (
        f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[{window}]))'
        f" / sum(rate(http_requests_total{{{sel}}}[{window}]))"
    )
    resp = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5, trust_env=False)
    result = resp.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_error_ratio(
    prometheus_url: str,
    namespace: str,
    workload: str,
    check: Callable[[float], bool],
    timeout: float,
    what: str,
) -> float:
    def ok() -> list[float]:
        # A list, so that a healthy 0.0 counts as found.
        value = error_ratio(prometheus_url, namespace, workload)
        return [value] if value is not None and check(value) else []

    found: list[float] = Kube.wait_for(ok, timeout, what)
    return found[0]


@contextmanager
def world_keys(kube: Kube, keys: dict[str, str]) -> Iterator[None]:
    """Set simulator world keys for the duration of a test, then put back what was there."""
    before = kube.get("configmap", "world", "stanch-sim").get("data") or {}
    patch = {"data": keys}
    kube.run("patch", "configmap", "world", "-n", "stanch-sim", "--type", "merge", "-p", json.dumps(patch))
    try:
        yield
    finally:
        # null deletes a key in a merge patch.
        restore = {"data": {k: before.get(k) for k in keys}}
        kube.ok(
            "patch", "configmap", "world", "-n", "stanch-sim", "--type", "merge", "-p", json.dumps(restore)
        )


def deployment_state(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kube.get("deployment", name, namespace)
    return result


def revisions(kube: Kube, namespace: str, app: str) -> list[int]:
    """The ReplicaSet revisions of a Deployment, sorted."""
    rss = kube.items("replicasets", namespace, selector=f"app={app}")
    return sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for rs in rss)


def effects_applied(operator: OperatorProcess, step: str) -> int:
    """How many mutations of ``step`` the operator's processes (all runs) got accepted."""
    return sum(
        1
        for r in operator.log_records()
        if r.get("event") == "mitigation effect" and r.get("step") == step and r.get("outcome") == "Applied"
    )


def shutdown(operator: OperatorProcess, kube: Kube, namespace: str) -> None:
    """Delete the test's Mitigations while the operator can still release their finalizers, then
    stop it; otherwise the namespace would hang in Terminating on our finalizer."""
    try:
        if operator.proc is not None and operator.proc.poll() is None:
            kube.ok("delete", "mitigations", "--all", "-n", namespace, "--timeout=60s")
    finally:
        operator.stop()
