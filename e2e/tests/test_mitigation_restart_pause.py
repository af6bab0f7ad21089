"""Restart and pause against the real API server and controllers, each compared with what the built
kubectl does to an identical Deployment: `kubectl rollout restart` (the template annotation, a new
ReplicaSet, every pod replaced; a paused Deployment refused) and `kubectl rollout pause/resume` (a
rollout in progress stops and goes on; deleting the Mitigation mid-bake resumes it)."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    effects_applied,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_error_ratio,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods, rollout_complete
from stanch.core.models import LOCK_ANNOTATION
from stanch.core.plans import RESTARTED_AT

SERVER_SET = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")


def _changes(before: Any, after: Any, path: str = "") -> set[str]:
    """Paths whose values differ (dicts descended, an absent map read as empty as the API server
    does, everything else compared whole)."""
    if isinstance(before, dict) or isinstance(after, dict):
        before, after = before or {}, after or {}
    if isinstance(before, dict) and isinstance(after, dict):
        out: set[str] = set()
        for key in set(before) | set(after):
            out |= _changes(before.get(key), after.get(key), f"{path}.{key}")
        return out
    return set() if before == after else {path}


def _spec_changes(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return _changes(before["spec"], after["spec"], "spec")


def _twin(name: str, **kw: Any) -> dict[str, Any]:
    """The same Deployment under another name (its own labels, so the two never share pods)."""
    return deployment(name, **kw)


def _shape(timestamp: str) -> str:
    return re.sub(r"\d", "d", timestamp)


@pytest.mark.local_world("ready-pods", "simulator")
def test_restart_is_kubectl_rollout_restart_and_replaces_every_pod(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=3), _twin("twin", replicas=3), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 3, 60, "3 ready pods")
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "twin")) == 3, 60, "3 ready twin pods")
    wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    web_before, twin_before = (
        kube.get("deployment", "web", namespace),
        kube.get("deployment", "twin", namespace),
    )
    pods_before = {p["metadata"]["uid"] for p in ready_pods(kube, namespace, "web")}
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("bounce", "web", {"restart": {}}), namespace=namespace)
        st = wait_phase(kube, namespace, "bounce", {"Succeeded"}, 120)
    finally:
        shutdown(operator, kube, namespace)
    kube.run("rollout", "restart", "deployment/twin", "-n", namespace)
    web_after, twin_after = (
        kube.get("deployment", "web", namespace),
        kube.get("deployment", "twin", namespace),
    )

    # The same change as kubectl's: one template annotation, nothing else in the spec.
    assert _spec_changes(web_before, web_after) == _spec_changes(twin_before, twin_after)
    assert _spec_changes(web_before, web_after) == {f"spec.template.metadata.annotations.{RESTARTED_AT}"}
    ours = web_after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    theirs = twin_after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert _shape(ours) == _shape(theirs), (ours, theirs)  # RFC 3339, seconds, UTC
    assert ours == st["snapshot"]["takenAt"]  # deterministic: a re-run writes the same value
    # Deployment metadata as kubectl leaves it (no lock left behind), one new revision each.
    assert LOCK_ANNOTATION not in (web_after["metadata"].get("annotations") or {})
    revision = "deployment.kubernetes.io/revision"
    assert (
        int(web_after["metadata"]["annotations"][revision])
        == int(web_before["metadata"]["annotations"][revision]) + 1
    )
    # A real rolling restart: every pod replaced, from a new ReplicaSet.
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 90, "the restart rolled out")
    pods_after = {p["metadata"]["uid"] for p in ready_pods(kube, namespace, "web")}
    assert len(pods_after) == 3
    assert not pods_before & pods_after
    assert effects_applied(operator, "Apply") == 1
    assert st["verdict"]["result"] == "Healthy", st["verdict"]


def test_restart_of_a_paused_deployment_is_refused_like_kubectl(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    paused = copy.deepcopy(deployment("web", replicas=1))
    paused["spec"]["paused"] = True
    twin = _twin("twin", replicas=1)
    twin["spec"]["paused"] = True
    kube.apply(paused, twin, namespace=namespace)
    refused = kube.ok("rollout", "restart", "deployment/twin", "-n", namespace)
    assert not refused, "kubectl refuses to restart a paused Deployment"
    before = kube.get("deployment", "web", namespace)
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("bounce", "web", {"restart": {}}), namespace=namespace)
        st = wait_phase(kube, namespace, "bounce", {"Failed"}, 60)
    finally:
        shutdown(operator, kube, namespace)
    assert "paused" in st["message"]
    assert "resume" in st["message"]
    after = kube.get("deployment", "web", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


def _slow(name: str, image: str) -> dict[str, Any]:
    """A Deployment whose rollouts take a while: one pod at a time, each 15 s before it counts."""
    d = deployment(name, replicas=4, image=image)
    d["spec"]["minReadySeconds"] = 15
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    return d


def _progress(kube: Kube, namespace: str, name: str) -> tuple[int, str | None]:
    d = kube.get("deployment", name, namespace)
    progressing = next(
        (c for c in d["status"].get("conditions") or [] if c["type"] == "Progressing"), {"reason": None}
    )
    return int(d["status"].get("updatedReplicas", 0)), progressing["reason"]


@pytest.mark.local_world("ready-pods", "simulator")
def test_pause_stops_a_rollout_in_progress_like_kubectl_and_resume_lets_it_finish(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(
        _slow("web", f"registry.example/{namespace}/web:1"),
        _slow("twin", f"registry.example/{namespace}/twin:1"),
        namespace=namespace,
    )
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 120, "web rolled out")
    kube.wait_for(lambda: rollout_complete(kube, namespace, "twin"), 120, "twin rolled out")
    wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    # A new version starts rolling out, slowly.
    kube.apply(
        _slow("web", f"registry.example/{namespace}/web:2"),
        _slow("twin", f"registry.example/{namespace}/twin:2"),
        namespace=namespace,
    )
    twin_before = kube.get("deployment", "twin", namespace)
    kube.run("rollout", "pause", "deployment/twin", "-n", namespace)
    twin_paused = kube.get("deployment", "twin", namespace)
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        web_before = kube.get("deployment", "web", namespace)
        kube.apply(mitigation("hold-it", "web", {"pause": {}}), namespace=namespace)
        st = wait_phase(kube, namespace, "hold-it", {"Succeeded"}, 90)
        web_paused = kube.get("deployment", "web", namespace)
        # The controller sees it: the rollout is paused and stops where it was.
        kube.wait_for(
            lambda: _progress(kube, namespace, "web")[1] == "DeploymentPaused", 30, "DeploymentPaused"
        )
        stopped_at = _progress(kube, namespace, "web")[0]
        assert stopped_at < 4, "the rollout was still in progress when paused"
        time.sleep(20)  # longer than one pod's minReadySeconds: an unpaused rollout would move on
        assert _progress(kube, namespace, "web")[0] == stopped_at

        kube.apply(mitigation("go-on", "web", {"pause": {"resume": True}}), namespace=namespace)
        resumed = wait_phase(kube, namespace, "go-on", {"Succeeded"}, 90)
        web_resumed = kube.get("deployment", "web", namespace)
    finally:
        shutdown(operator, kube, namespace)
    kube.run("rollout", "resume", "deployment/twin", "-n", namespace)
    twin_resumed = kube.get("deployment", "twin", namespace)

    assert _spec_changes(web_before, web_paused) == _spec_changes(twin_before, twin_paused) == {"spec.paused"}
    assert web_paused["spec"]["paused"] is True
    assert bool(web_resumed["spec"].get("paused")) is bool(twin_resumed["spec"].get("paused")) is False
    assert _spec_changes(web_before, web_resumed) == _spec_changes(twin_before, twin_resumed)
    assert st["verdict"]["result"] == "Healthy", st["verdict"]
    assert resumed["verdict"]["result"] == "Healthy", resumed["verdict"]
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 150, "the resumed rollout finished")


@pytest.mark.local_world("ready-pods", "simulator")
def test_deleting_a_pause_mid_bake_reverts_it_and_the_rollout_goes_on(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(_slow("web", f"registry.example/{namespace}/web:1"), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 120, "web rolled out")
    wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    kube.apply(_slow("web", f"registry.example/{namespace}/web:2"), namespace=namespace)
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        long_bake = {**FAST_GUARD, "bakeTime": "10m"}
        kube.apply(mitigation("hold-it", "web", {"pause": {}}, long_bake), namespace=namespace)
        st = wait_phase(kube, namespace, "hold-it", {"Baking"}, 90)
        assert kube.get("deployment", "web", namespace)["spec"]["paused"] is True
        kube.run("delete", "mitigation", "hold-it", "-n", namespace, "--timeout=60s")
        events = [
            e["reason"]
            for e in kube.events(namespace)
            if e["involvedObject"].get("kind") == "Mitigation"
            and e["involvedObject"].get("name") == "hold-it"
        ]
    finally:
        shutdown(operator, kube, namespace)
    assert "Reverted" in events, events
    assert "Applied" in audit_events(st)
    web = kube.get("deployment", "web", namespace)
    assert not web["spec"].get("paused")
    assert LOCK_ANNOTATION not in (web["metadata"].get("annotations") or {})
    assert effects_applied(operator, "Apply") == 1
    assert effects_applied(operator, "Revert") == 1
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 150, "the rollout went on to the end")
