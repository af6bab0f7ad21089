"""Scripted pod lifecycles produce the status fields and Events a real kubelet would."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.kube import Kube, deployment

pytestmark = pytest.mark.local_world("lifecycle-stages")

LC = "sim.stanch.dev/lifecycle"


def container_statuses(kube: Kube, ns: str, app: str) -> list[dict[str, Any]]:
    return [
        cs for p in kube.items("pods", ns, f"app={app}") for cs in p["status"].get("containerStatuses", [])
    ]


def reasons(kube: Kube, ns: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in kube.events(ns):
        out.setdefault(e["reason"], []).append(e)
    return out


def test_crash_loop_has_rising_restarts_backoff_and_last_state(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("crasher", replicas=1, annotations={LC: "crashloop"}), namespace=namespace)
    statuses = kube.wait_for(
        lambda: [cs for cs in container_statuses(kube, namespace, "crasher") if cs["restartCount"] >= 2],
        60,
        "restartCount >= 2",
    )
    cs = statuses[0]
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    kube.wait_for(
        lambda: any(
            s.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            for s in container_statuses(kube, namespace, "crasher")
        ),
        30,
        "waiting reason CrashLoopBackOff",
    )
    backoff = kube.wait_for(lambda: reasons(kube, namespace).get("BackOff"), 30, "BackOff events")
    assert backoff[0]["type"] == "Warning"
    assert backoff[0]["involvedObject"]["kind"] == "Pod"
    pod = kube.items("pods", namespace, "app=crasher")[0]
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"


def test_oom_killed_containers(kube: Kube, namespace: str) -> None:
    kube.apply(
        deployment("leaky", replicas=1, annotations={LC: "oom"}, memory_limit="64Mi"), namespace=namespace
    )
    statuses = kube.wait_for(
        lambda: [
            cs
            for cs in container_statuses(kube, namespace, "leaky")
            if cs.get("lastState", {}).get("terminated", {}).get("reason") == "OOMKilled"
        ],
        60,
        "lastState.terminated.reason OOMKilled",
    )
    assert statuses[0]["lastState"]["terminated"]["exitCode"] == 137
    assert statuses[0]["restartCount"] >= 1


def test_image_pull_failure(kube: Kube, namespace: str) -> None:
    kube.apply(
        deployment(
            "typo", replicas=1, image="registry.example/app:does-not-exist", annotations={LC: "imagepull"}
        ),
        namespace=namespace,
    )
    seen = set()

    def both_reasons() -> bool:
        for cs in container_statuses(kube, namespace, "typo"):
            seen.add(cs.get("state", {}).get("waiting", {}).get("reason"))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    kube.wait_for(both_reasons, 60, "ErrImagePull and ImagePullBackOff", interval=0.3)
    pod = kube.items("pods", namespace, "app=typo")[0]
    assert pod["status"]["phase"] == "Pending"
    ev = reasons(kube, namespace)
    assert any("Failed to pull image" in e["message"] for e in ev.get("Failed", []))
    assert ev.get("BackOff")


def test_running_but_never_ready(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("sulky", replicas=2, annotations={LC: "notready"}), namespace=namespace)
    unhealthy = kube.wait_for(lambda: reasons(kube, namespace).get("Unhealthy"), 60, "Unhealthy events")
    assert unhealthy[0]["message"].startswith("Readiness probe failed")
    for pod in kube.items("pods", namespace, "app=sulky"):
        assert pod["status"]["phase"] == "Running"
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
    d = kube.get("deployment", "sulky", namespace)
    assert d["status"].get("availableReplicas", 0) == 0
