"""Evacuate against the real API server and scheduler (kwok nodes): the node is cordoned with Stanch's
mark, the workload's pods leave it through the Eviction API and are rescheduled elsewhere; a
PodDisruptionBudget that allows no disruption is respected (nothing deleted around it), reported in
status and in one Event, and when it never relents the cordon is undone — only because it was ours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import (
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
from e2e.tests.test_workloads import ready_pods
from stanch.core.plans import CORDONED_BY

pytestmark = [pytest.mark.local_world("ready-pods", "kwok-nodes", "simulator"), pytest.mark.serial("nodes")]


def _node_of_most_pods(kube: Kube, namespace: str, app: str) -> str:
    nodes: list[str] = [p["spec"]["nodeName"] for p in ready_pods(kube, namespace, app)]
    return max(sorted(set(nodes)), key=nodes.count)


def _pods_on(kube: Kube, namespace: str, app: str, node: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in kube.items("pods", namespace, f"app={app}")
        if p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp")
    )


@contextmanager
def _uncordon_ours_afterwards(kube: Kube, node: str, mark: str) -> Iterator[None]:
    """The cluster is shared: never leave a node cordoned by a test, but only undo our own cordon."""
    try:
        yield
    finally:
        obj = kube.get("node", node)
        if (obj["metadata"].get("annotations") or {}).get(CORDONED_BY) == mark:
            key = CORDONED_BY.replace("/", "~1")
            patch = [
                {"op": "test", "path": f"/metadata/annotations/{key}", "value": mark},
                {"op": "remove", "path": "/spec/unschedulable"},
                {"op": "remove", "path": f"/metadata/annotations/{key}"},
            ]
            kube.ok("patch", "node", node, "--type", "json", "-p", json.dumps(patch))


def _events(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e for e in kube.events(namespace) if e["involvedObject"].get("name") == name and e["reason"] == reason
    ]


def test_evacuate_evicts_the_pods_off_the_node_and_cordons_it(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=4), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 4, 60, "4 ready pods")
    wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    node = _node_of_most_pods(kube, namespace, "web")
    before = _pods_on(kube, namespace, "web", node)
    assert before
    kube.apply(allow_all_policy(namespace, evacuate_nodes="kwok-node-*"), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    with _uncordon_ours_afterwards(kube, node, f"{namespace}/move"):
        try:
            kube.apply(mitigation("move", "web", {"evacuate": {"node": node}}), namespace=namespace)
            st = wait_phase(kube, namespace, "move", {"Succeeded"}, 120)
            obj = kube.get("node", node)
        finally:
            shutdown(operator, kube, namespace)
        assert obj["spec"].get("unschedulable") is True
        assert obj["metadata"]["annotations"][CORDONED_BY] == f"{namespace}/move"
        assert _pods_on(kube, namespace, "web", node) == []
        kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 4, 60, "4 pods elsewhere")
        assert all(p["spec"]["nodeName"] != node for p in ready_pods(kube, namespace, "web"))
        evicted = next(c for c in st["conditions"] if c["type"] == "Evicted")
        assert evicted["status"] == "True", evicted
        assert [e["evict"] for e in st["plan"]["patch"]["evict"]] == [f"Pod/{namespace}/{p}" for p in before]
        assert effects_applied(operator, "Evict") == len(before)
        # Every pod left through the Eviction API: the operator sent no plain Delete at all.
        sent = [r for r in operator.log_records() if r.get("event") == "mitigation effect"]
        assert {r["effect"] for r in sent} == {"Patch", "Evict"}, sent
        events = audit_events(st)
        assert events.index("Evicting") < events.index("Applied") < events.index("Succeeded"), events


def test_a_budget_that_forbids_eviction_is_respected_reported_and_the_cordon_undone(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(deployment("web", replicas=3), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 3, 60, "3 ready pods")
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-all"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}},
    }
    kube.apply(pdb, namespace=namespace)
    kube.wait_for(
        lambda: (kube.get("pdb", "web-all", namespace).get("status") or {}).get("currentHealthy") == 3,
        30,
        "the disruption controller counted the budget",
    )
    wait_error_ratio(world.prometheus_url, namespace, "web", lambda v: v < 0.02, 60, "a healthy baseline")
    settle()
    node = _node_of_most_pods(kube, namespace, "web")
    before = _pods_on(kube, namespace, "web", node)
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.items("pods", namespace, "app=web")}
    kube.apply(allow_all_policy(namespace, evacuate_nodes="kwok-node-*"), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    with _uncordon_ours_afterwards(kube, node, f"{namespace}/move"):
        try:
            kube.apply(mitigation("move", "web", {"evacuate": {"node": node}}), namespace=namespace)
            # While refused: still Applying, node cordoned by us, the pods where they were, status says why.
            refused = kube.wait_for(
                lambda: next(
                    (
                        c
                        for c in (kube.get("mitigation", "move", namespace).get("status") or {}).get(
                            "conditions"
                        )
                        or []
                        if c["type"] == "Evicted" and c["reason"] == "EvictionRefused"
                    ),
                    None,
                ),
                60,
                "the refusal in status",
            )
            during = kube.get("mitigation", "move", namespace)["status"]
            cordoned = kube.get("node", node)
            st = wait_phase(kube, namespace, "move", {"Reverted"}, 90)
            events = _events(kube, namespace, "move", "EvictionRefused")
        finally:
            shutdown(operator, kube, namespace)
        assert during["phase"] == "Applying", during
        assert "web-all" in refused["message"], refused
        assert "disruption budget" in refused["message"], refused
        assert cordoned["spec"].get("unschedulable") is True
        assert cordoned["metadata"]["annotations"][CORDONED_BY] == f"{namespace}/move"
        # Never deleted around the budget: the same pods (same uids) are still on the node.
        after = {
            p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.items("pods", namespace, "app=web")
        }
        assert after == uids
        assert _pods_on(kube, namespace, "web", node) == before
        # One audit entry and one Event for a refusal repeated every 5 s over the 18 s bake time.
        assert audit_events(st).count("EvictionRefused") == 1, audit_events(st)
        assert [(e["type"], e.get("count", 1)) for e in events] == [("Warning", 1)], events
        assert effects_applied(operator, "Evict") == 0
        # Retried within the bake time (every 5 s), each attempt refused by the budget (429).
        refusals = [
            r
            for r in operator.log_records()
            if r.get("event") == "mitigation effect" and r.get("step") == "Evict"
        ]
        assert len(refusals) >= 3 * len(before), refusals
        assert {r["outcome"] for r in refusals} == {"Transient"}, refusals
        assert all("disruption budget" in r["detail"] for r in refusals)
        assert "never deletes around a PodDisruptionBudget" in st["message"] or any(
            "never deletes around" in a["reason"] for a in st["audit"]
        )
        # Ours, so undone: uncordoned and unmarked.
        obj = kube.get("node", node)
        assert not obj["spec"].get("unschedulable")
        assert CORDONED_BY not in (obj["metadata"].get("annotations") or {})
