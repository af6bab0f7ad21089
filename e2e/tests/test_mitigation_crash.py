"""The operator is SIGKILLed at each step of a mitigation, and between the two writes of one step, and
restarted: the mitigation completes exactly once (one Applied audit entry, each write accepted once:
replicas doubled once, a flag toggled and a workload restarted once)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    deployment_state,
    effects_applied,
    fast_operator,
    mitigation,
    revisions,
    settle,
    shutdown,
    status,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods
from stanch.core.plans import RESTARTED_AT
from stanch.wiring.fault_injection import CRASH_AFTER_ENV

pytestmark = pytest.mark.local_world("ready-pods", "simulator")


def _kill_when(kube: Kube, namespace: str, operator: OperatorProcess, check: str, timeout: float = 90) -> str:
    """Watch the Mitigation and SIGKILL the operator the moment its status shows ``check``; returns
    the phase the API server holds right after the kill (the race is real: the operator may get one
    more write in before the signal lands, and the test must hold either way)."""
    proc = subprocess.Popen(
        [kube.kubectl, "--kubeconfig", kube.kubeconfig, "get", "mitigation", "double", "-n", namespace,
         "-w", "-o", "json"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    decoder = json.JSONDecoder()
    buffer = ""
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            buffer += line
            try:
                obj, _ = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = ""
            st = obj.get("status") or {}
            phase, intent = st.get("phase"), st.get("intent") or {}
            if phase == check and (check != "Applying" or intent.get("step") == "Apply"):
                operator.kill()
                return str(status(kube, namespace, "double").get("phase"))
            if phase in {"Succeeded", "Reverted", "Failed", "NeedsAttention", "Rejected"}:
                raise AssertionError(f"reached {phase} before the kill point {check}: {st}")
    finally:
        proc.kill()
        proc.wait()
    raise AssertionError(f"never saw {check}")


@pytest.mark.parametrize("kill_at", ["Baseline", "Applying", "Baking"])
def test_killed_operator_resumes_and_applies_once(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path, kill_at: str
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "bakeTime": "12s"}
        kube.apply(mitigation("double", "web", {"scale": {"factor": 2}}, guard), namespace=namespace)
        phase_at_kill = _kill_when(kube, namespace, operator, kill_at)
        seen_at_kill = deployment_state(kube, namespace, "web")["spec"]["replicas"]
        time.sleep(1)
        operator.start()
        st = wait_phase(kube, namespace, "double", {"Succeeded"}, 120)
    finally:
        shutdown(operator, kube, namespace)

    dep = deployment_state(kube, namespace, "web")
    assert seen_at_kill in (2, 4)
    print(f"killed at {kill_at}: API server held phase {phase_at_kill}, replicas {seen_at_kill}")
    assert dep["spec"]["replicas"] == 4
    # Across both processes the API server accepted the scale at most once (a kill between the
    # write and its log line leaves none logged): a resumed step either saw it landed or
    # re-issued it conditionally, and the audit trail records one application.
    assert effects_applied(operator, "Apply") <= 1
    events = audit_events(st)
    assert events.count("Applied") == 1, events
    assert operator.starts == 2


def _applied_to(operator: OperatorProcess, step: str, kind: str) -> int:
    """Writes of ``step`` to an object of ``kind`` the API server accepted, across all processes."""
    return sum(
        1
        for r in operator.log_records()
        if r.get("event") == "mitigation effect"
        and r.get("step") == step
        and str(r.get("object", "")).startswith(f"{kind}/")
        and r.get("outcome") == "Applied"
    )


def test_killed_between_the_two_writes_of_a_step_finishes_it_with_each_write_once(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    """configToggle with restart is one step of two writes: the ConfigMap patch, then the
    Deployment's restart. The operator dies right after the first was accepted (the test-only crash
    point: nothing sent from outside lands between two writes milliseconds apart); the restarted one
    sees its own first write in place, sends only the restart, and bakes: no drift, no second write."""
    flags = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags"},
        "data": {"newcheckout": "true"},
    }
    kube.apply(flags, namespace=namespace)
    kube.apply(deployment("shop", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "shop")) == 2, 60, "2 ready pods")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.env = {CRASH_AFTER_ENV: "Apply:ConfigMap"}
    operator.start()
    try:
        toggle = {
            "configToggle": {"configMap": "flags", "key": "newcheckout", "value": "false", "restart": True}
        }
        kube.apply(
            mitigation("double", "shop", toggle, {**FAST_GUARD, "bakeTime": "12s"}), namespace=namespace
        )
        assert operator.proc is not None
        code = operator.proc.wait(90)
        assert code == -signal.SIGKILL, (
            f"the operator exited with {code}, not at its crash point:\n{operator.tail()}"
        )
        # Dead between the two writes: the flag is off, the Deployment not restarted, the intent open.
        at_crash = status(kube, namespace, "double")
        assert (at_crash.get("phase"), (at_crash.get("intent") or {}).get("step")) == ("Applying", "Apply")
        assert kube.get("configmap", "flags", namespace)["data"]["newcheckout"] == "false"
        template = deployment_state(kube, namespace, "shop")["spec"]["template"]
        assert RESTARTED_AT not in (template["metadata"].get("annotations") or {})
        operator.env = {}
        operator.start()
        st = wait_phase(kube, namespace, "double", {"Succeeded"}, 120)
    finally:
        shutdown(operator, kube, namespace)

    assert operator.starts == 2
    # Across both processes, each write of the step was accepted exactly once.
    assert _applied_to(operator, "Apply", "ConfigMap") == 1
    assert _applied_to(operator, "Apply", "Deployment") == 1
    events = audit_events(st)
    assert events.count("Applied") == 1, events
    assert "Drift" not in events, events
    assert not st.get("drift"), st.get("drift")
    assert kube.get("configmap", "flags", namespace)["data"]["newcheckout"] == "false"
    dep = deployment_state(kube, namespace, "shop")
    assert RESTARTED_AT in dep["spec"]["template"]["metadata"]["annotations"]
    # One restart: one new ReplicaSet revision besides the original one.
    assert revisions(kube, namespace, "shop") == [1, 2]
