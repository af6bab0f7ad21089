"""The local world behaves like a cluster: rollouts, revisions, undo, scaling, scheduling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.kube import Kube, deployment

REVISION = "deployment.kubernetes.io/revision"


def ready_pods(kube: Kube, ns: str, app: str) -> list[dict[str, Any]]:
    pods = kube.items("pods", ns, f"app={app}")
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]


def replicasets_by_revision(kube: Kube, ns: str, app: str) -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["annotations"][REVISION]: rs for rs in kube.items("replicasets", ns, f"app={app}")}


def rollout_complete(kube: Kube, ns: str, name: str) -> bool:
    d = kube.get("deployment", name, ns)
    st = d["status"]
    want = d["spec"]["replicas"]
    return bool(
        st.get("observedGeneration") == d["metadata"]["generation"]
        and st.get("updatedReplicas", 0) == want
        and st.get("availableReplicas", 0) == want
        and st.get("replicas", 0) == want
    )


@pytest.mark.local_world("ready-pods", "kwok-nodes")
def test_deployment_rolls_out_with_revisions(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("web", replicas=3), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "rollout of revision 1")
    pods = ready_pods(kube, namespace, "web")
    assert len(pods) == 3
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert nodes <= {"kwok-node-0", "kwok-node-1", "kwok-node-2"}
    assert set(replicasets_by_revision(kube, namespace, "web")) == {"1"}

    kube.apply(deployment("web", replicas=3, image="registry.example/app:2.0"), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "rollout of revision 2")
    revisions = replicasets_by_revision(kube, namespace, "web")
    assert set(revisions) == {"1", "2"}
    assert revisions["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:2.0"
    assert revisions["1"]["spec"]["replicas"] == 0
    images = {p["spec"]["containers"][0]["image"] for p in ready_pods(kube, namespace, "web")}
    assert images == {"registry.example/app:2.0"}


@pytest.mark.local_world("ready-pods")
def test_kubectl_rollout_undo_restores_previous_template(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("api", env={"MODE": "v1"}), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "api"), 60, "revision 1")
    before = kube.get("deployment", "api", namespace)["spec"]["template"]
    kube.apply(deployment("api", image="registry.example/app:1.1", env={"MODE": "v2"}), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "api"), 60, "revision 2")

    kube.run("rollout", "undo", "deployment/api", "-n", namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "api"), 60, "undo to complete")
    after = kube.get("deployment", "api", namespace)
    assert after["spec"]["template"] == before
    # undo re-uses revision 1's ReplicaSet, which becomes revision 3
    revisions = replicasets_by_revision(kube, namespace, "api")
    assert set(revisions) == {"2", "3"}
    assert after["metadata"]["annotations"][REVISION] == "3"


@pytest.mark.local_world("ready-pods")
def test_scale_up_and_down_changes_pod_count(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("svc", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "svc")) == 2, 60, "2 ready pods")
    kube.run("scale", "deployment/svc", "--replicas=5", "-n", namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "svc")) == 5, 60, "5 ready pods")
    kube.run("scale", "deployment/svc", "--replicas=1", "-n", namespace)
    kube.wait_for(lambda: len(kube.items("pods", namespace, "app=svc")) == 1, 60, "scale down to 1 pod")


def test_unschedulable_pods_stay_pending(kube: Kube, namespace: str) -> None:
    kube.apply(deployment("pinned", node_selector={"disktype": "nvme-nobody-has-this"}), namespace=namespace)

    def failed_scheduling() -> list[dict[str, Any]]:
        return [e for e in kube.events(namespace) if e["reason"] == "FailedScheduling"]

    events = kube.wait_for(failed_scheduling, 60, "FailedScheduling events")
    assert "didn't match Pod's node affinity/selector" in events[0]["message"]
    for pod in kube.items("pods", namespace, "app=pinned"):
        assert pod["status"]["phase"] == "Pending"
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")


@pytest.mark.local_world("kwok-nodes")
@pytest.mark.serial("nodes")
def test_node_can_be_made_not_ready_and_recover(kube: Kube, namespace: str) -> None:
    node = "kwok-node-2"

    def ready_status() -> str:
        n = kube.get("node", node)
        return str(next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"))

    kube.run("label", "node", node, "node-not-ready.stage.kwok.x-k8s.io=true", "--overwrite")
    try:
        kube.wait_for(lambda: ready_status() == "False", 30, "node NotReady")
        # the real node-lifecycle controller reacts with its NoSchedule/NoExecute taints
        kube.wait_for(
            lambda: any(
                t["key"] == "node.kubernetes.io/not-ready"
                for t in kube.get("node", node)["spec"].get("taints", [])
            ),
            60,
            "not-ready taint from the node lifecycle controller",
        )
    finally:
        kube.run("label", "node", node, "node-not-ready.stage.kwok.x-k8s.io-")
    kube.wait_for(lambda: ready_status() == "True", 60, "node Ready again")
    assert json.dumps(kube.get("node", node)["status"]["addresses"]).count("127.0.0.1") == 1
