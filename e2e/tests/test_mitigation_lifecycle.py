"""Lifecycle around the guard: manual approval (a MitigationApproval), deleting a Mitigation mid-bake
reverts first (finalizer), and a temporary mitigation linked to an Incident shows up in the Incident's
status and is undone when the Incident is resolved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, approve, deployment
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods
from stanch.core.models import LOCK_ANNOTATION

pytestmark = pytest.mark.local_world("ready-pods", "simulator")


def _policy(namespace: str, tier: str) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": "scale", "namespace": namespace},
        "spec": {"actions": [{"action": "Scale", "tier": tier, "limits": {"maxReplicas": 10}}]},
    }


def _web(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    settle()


def test_manual_approval_then_delete_mid_bake_reverts_first(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    _web(kube, namespace)
    kube.apply(_policy(namespace, "Manual"), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "bakeTime": "90s"}
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}, guard), namespace=namespace)
        wait_phase(kube, namespace, "grow", {"AwaitingApproval"}, 60)
        time.sleep(3)
        assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 2, "nothing before approval"
        approve(kube, namespace, "grow", "alice")
        st = wait_phase(kube, namespace, "grow", {"Baking"}, 60)
        assert "Approved" in audit_events(st)
        assert any(a.get("actor") == "alice" for a in st["audit"]), st["audit"]
        assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 3

        kube.run("delete", "mitigation", "grow", "-n", namespace, "--wait=false")
        kube.wait_for(lambda: not kube.ok("get", "mitigation", "grow", "-n", namespace), 60, "finalizer done")
    finally:
        shutdown(operator, kube, namespace)
    dep = deployment_state(kube, namespace, "web")
    assert dep["spec"]["replicas"] == 2, "reverted before the Mitigation went away"
    assert LOCK_ANNOTATION not in (dep["metadata"].get("annotations") or {})
    reasons = [e.get("reason") for e in kube.events(namespace) if e["involvedObject"].get("name") == "grow"]
    assert "Reverted" in reasons, reasons


def test_temporary_mitigation_is_linked_and_undone_when_the_incident_resolves(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    _web(kube, namespace)
    kube.apply(_policy(namespace, "Auto"), namespace=namespace)
    incident = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "web-slow"},
        "spec": {"target": {"name": "web"}, "summary": "web is slow"},
    }
    kube.apply(incident, namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        temp = mitigation(
            "surge", "web", {"scale": {"replicas": 4}}, incidentRef={"name": "web-slow"}, temporary=True
        )
        kube.apply(temp, namespace=namespace)
        wait_phase(kube, namespace, "surge", {"Succeeded"}, 90)
        assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 4

        def linked() -> dict[str, Any] | None:
            inc = kube.get("incident", "web-slow", namespace)
            entries = [m for m in (inc.get("status") or {}).get("mitigations") or [] if m["name"] == "surge"]
            return entries[0] if entries and entries[0].get("phase") == "Succeeded" else None

        entry = kube.wait_for(linked, 30, "the Incident lists the mitigation")
        assert entry["action"] == "Scale"
        assert entry["verdict"] == "Healthy"

        kube.run(
            "patch",
            "incident",
            "web-slow",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"spec":{"resolved":true}}',
        )
        st = wait_phase(kube, namespace, "surge", {"Reverted"}, 90, leaving="Succeeded")
    finally:
        shutdown(operator, kube, namespace)
    assert any(a["event"] == "Reverting" and "incident resolved" in a["reason"] for a in st["audit"]), st[
        "audit"
    ]
    assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 2
    inc = kube.get("incident", "web-slow", namespace)
    entry = next(m for m in inc["status"]["mitigations"] if m["name"] == "surge")
    assert entry["phase"] == "Reverted"
