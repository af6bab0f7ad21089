"""No secret value in anything Stanch writes, and an exact revert all the same, on a real cluster.

The Deployment carries literal secret-looking env (``DB_PASSWORD``, ``API_TOKEN``). A rollback to a
bad revision makes errors worse and is reverted: the Deployment's template comes back exactly,
values included (restored from the pre-change ReplicaSet, as ``status.snapshot`` keeps none), while
the Mitigation's status, its Events and the operator's log never contain a value.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
    allow_all_policy,
    deployment_state,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_error_ratio,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

BAD = {"sim.stanch.dev/error-ratio": "0.4"}


def _paths_of(value: Any, needles: tuple[str, ...], path: str = "") -> list[str]:
    """Where in a JSON document any of ``needles`` occurs (for a failure message that says where)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths_of(v, needles, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths_of(v, needles, f"{path}[{i}]")]
    return [path] if isinstance(value, str) and any(n in value for n in needles) else []


def test_a_reverted_rollback_restores_secret_env_exactly_and_writes_no_value(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    old, new, token = (f"s3cr3t-{secrets.token_hex(8)}" for _ in range(3))
    for version, env, pod_annotations in (
        ("1.0", {"DB_PASSWORD": old, "MODE": "a"}, BAD),
        ("1.1", {"DB_PASSWORD": new, "API_TOKEN": token, "MODE": "b"}, {}),
    ):
        kube.apply(
            deployment(
                "api",
                replicas=2,
                image=f"registry.example/api:{version}",
                env=env,
                annotations=pod_annotations,
            ),
            namespace=namespace,
        )

        def rolled_out(v: str = version) -> bool:
            pods = ready_pods(kube, namespace, "api")
            return len(pods) == 2 and all(p["spec"]["containers"][0]["image"].endswith(v) for p in pods)

        kube.wait_for(rolled_out, 90, f"api {version} rolled out")
    wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v < 0.05, 60, "a healthy baseline")
    settle()
    before = deployment_state(kube, namespace, "api")
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    seen: list[str] = []
    leaked: list[str] = []
    try:
        kube.apply(mitigation("undo", "api", {"rollback": {}}), namespace=namespace)

        def finished() -> bool:
            obj = kube.get("mitigation", "undo", namespace=namespace)
            seen.append(json.dumps(obj))
            leaked.extend(_paths_of(obj, (old, new, token)))
            return (obj.get("status") or {}).get("phase") in {
                "Reverted",
                "Succeeded",
                "Failed",
                "NeedsAttention",
            }

        kube.wait_for(finished, 150, "the rollback to end", interval=1)
        st = wait_phase(kube, namespace, "undo", {"Reverted"}, 5)
    finally:
        shutdown(operator, kube, namespace)
    assert st["verdict"]["result"] == "Worse", st["verdict"]
    after = deployment_state(kube, namespace, "api")
    assert after["spec"]["template"] == before["spec"]["template"], "the revert restores the template exactly"
    env = {e["name"]: e.get("value") for e in after["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"DB_PASSWORD": new, "API_TOKEN": token, "MODE": "b"}

    snapshot_env = st["snapshot"]["target"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"] for e in snapshot_env} == {"DB_PASSWORD", "API_TOKEN", "MODE"}, "names stay"
    assert {e["name"]: e["value"] for e in snapshot_env}["MODE"] == "b"
    events = [
        e
        for e in kube.events(namespace)
        if e["involvedObject"].get("kind") == "Mitigation" and e["involvedObject"].get("name") == "undo"
    ]
    logs = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "operator").rglob("*") if p.is_file())
    written = {"status": "\n".join(seen), "events": json.dumps(events), "operator log": logs}
    leaks = [
        (where, value) for where, text in written.items() for value in (old, new, token) if value in text
    ]
    assert not leaks, (leaks, sorted(set(leaked)))
    assert seen, "the Mitigation was read while it ran"
