"""Two replicas under Kopf peering against one namespace: exactly one acts; SIGKILLed mid-bake, the
other resumes when the dead one's peering record expires and finishes the Mitigation, each write
applied once across both processes.

The peering CRDs are manifests/peering-crds.yaml, applied as an admin would (the same content from
every worker: a harness write); the KopfPeering object is the test namespace's own, created by the
first replica at start (``stanch-peering-object``), as it is in a real install.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.operator_process import REPO, OperatorProcess
from e2e.shared import GUARD
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

PEERING = "stanch"
# The shipped default (--peering-lifetime): the handover measured here is the one a user gets.
LIFETIME = 30.0
# Kopf starts a replica with mandatory peering paused and logs this when it finds no live peer of
# higher (or equal) priority: the replica that logs it acts. A standby logs nothing until then.
RESUMED = "Resuming operations after the pause"


@pytest.fixture(scope="session")
def peering_crds(kube: Kube) -> None:
    with GUARD.harness():
        kube.run(
            "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "manifests/peering-crds.yaml")
        )
    kube.run(
        "wait",
        "--for",
        "condition=established",
        "crd/kopfpeerings.kopf.dev",
        "crd/clusterkopfpeerings.kopf.dev",
        "--timeout=60s",
    )


def replica(world: WorldInfo, namespace: str, log_dir: Path) -> OperatorProcess:
    operator = fast_operator(world, namespace, log_dir)
    # After the --standalone that OperatorProcess passes: the last one wins.
    operator.extra_args += ["--no-standalone", "--peering", PEERING]
    return operator


def records(operator: OperatorProcess, event: str) -> list[dict[str, Any]]:
    """Log records whose message is ``event`` or (Kopf's, which end in details) starts with it."""
    return [r for r in operator.log_records() if str(r.get("event", "")).startswith(event)]


def acted(operator: OperatorProcess) -> list[dict[str, Any]]:
    """What shows a replica doing the Mitigation's work: its audit entries and its writes."""
    return [r for r in operator.log_records() if r.get("event") in {"mitigation audit", "mitigation effect"}]


def applied_by_step(*operators: OperatorProcess) -> Counter[str]:
    return Counter(
        str(r.get("step"))
        for op in operators
        for r in op.log_records()
        if r.get("event") == "mitigation effect" and r.get("outcome") == "Applied"
    )


def peer_records(kube: Kube, namespace: str, count: int) -> dict[str, Any]:
    """The peering object's records (identity -> priority, lifetime, lastseen) once there are
    ``count`` of them; empty (falsy) until then."""
    peering = (
        kube.get("kopfpeering", PEERING, namespace)
        if kube.ok("get", "kopfpeering", PEERING, "-n", namespace)
        else {}
    )
    found: dict[str, Any] = peering.get("status") or {}
    return found if len(found) == count else {}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Polls every 0.2 s; returns the monotonic time ``check`` first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"not {what} after {timeout}s")


def test_two_replicas_one_acts_and_the_other_finishes_after_a_kill_mid_bake(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, peering_crds: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    first = replica(world, namespace, tmp_path / "first")
    second = replica(world, namespace, tmp_path / "second")
    first.start()
    second.start()
    try:
        # The first replica created the namespace's KopfPeering (the second found it there) and
        # acts; the second started later, has a lower derived priority, and stays paused.
        wait_until(lambda: bool(records(first, RESUMED)), 30, "first replica acting")
        peers = kube.wait_for(lambda: peer_records(kube, namespace, 2), 30, "both replicas recorded")
        (start_1,), (start_2,) = records(first, "starting"), records(second, "starting")
        assert start_1["priority"] > start_2["priority"], (start_1, start_2)
        assert sorted(p["priority"] for p in peers.values()) == sorted(
            [start_1["priority"], start_2["priority"]]
        )

        guard = {**FAST_GUARD, "bakeTime": "30s"}
        generation_before = deployment_state(kube, namespace, "web")["metadata"]["generation"]
        kube.apply(mitigation("double", "web", {"scale": {"factor": 2}}, guard), namespace=namespace)
        wait_phase(kube, namespace, "double", {"Baking"}, 120)
        assert acted(first), "the active replica left no trace of acting"
        assert not acted(second), f"the paused replica acted: {acted(second)}"
        assert not records(second, RESUMED)
        time.sleep(3)  # well inside the bake: at least one check has run

        first.kill()
        killed = time.monotonic()
        resumed = wait_until(lambda: bool(records(second, RESUMED)), LIFETIME + 15, "second replica resumed")
        st = wait_phase(kube, namespace, "double", {"Succeeded"}, 120)
        succeeded = time.monotonic()
        # The dead replica's expired record was cleaned away; the survivor's is the only one.
        peers_after = kube.wait_for(lambda: peer_records(kube, namespace, 1), 30, "the dead record gone")
    finally:
        first.kill()
        shutdown(second, kube, namespace)

    handover = resumed - killed
    print(
        f"handover: SIGKILL -> standby resumed {handover:.1f}s (lifetime {LIFETIME:g}s),"
        f" -> Succeeded {succeeded - killed:.1f}s"
    )
    assert handover <= LIFETIME + 5
    assert [p["priority"] for p in peers_after.values()] == [start_2["priority"]]
    assert acted(second), "the standby never took over"

    # Exactly one write of each step across both processes: the lock and the scale by the first,
    # the unlock by the second; the replicas doubled once.
    steps = applied_by_step(first, second)
    assert steps["Apply"] == 1, steps
    assert all(count == 1 for count in steps.values()), steps
    assert applied_by_step(second)["Apply"] == 0
    dep = deployment_state(kube, namespace, "web")
    assert dep["spec"]["replicas"] == 4
    # A Deployment's generation counts changes to its spec and annotations: one per write that
    # landed (lock annotation, scale, unlock), so no write landed twice unlogged either.
    assert dep["metadata"]["generation"] == generation_before + sum(steps.values()) == generation_before + 3
    assert audit_events(st).count("Applied") == 1, audit_events(st)
