"""Mitigations the CRD schema accepts but that cannot be executed end Failed, once: a message and
a Valid=False condition naming the field and the fix, one Warning Event, the target untouched, and
no retries (the operator neither crashes nor loops on them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import allow_all_policy, fast_operator, mitigation, shutdown, wait_phase
from e2e.tests.test_workloads import ready_pods

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("ghost", "no-such-app", {"scale": {"replicas": 3}}, "spec.target: Deployment/no-such-app not found"),
    ("rb-99", "shop", {"rollback": {"toRevision": 99}}, "spec.rollback.toRevision 99"),
    (
        "flag-typo",
        "shop",
        {"configToggle": {"configMap": "flags", "key": "newchekout", "value": "false"}},
        "spec.configToggle.key 'newchekout' is not in ConfigMap 'flags'",
    ),
    (
        "no-cm",
        "shop",
        {"configToggle": {"configMap": "nope", "key": "a", "value": "0"}},
        "spec.configToggle.configMap 'nope' not found",
    ),
    (
        "evac-9",
        "shop",
        {"evacuate": {"node": "kwok-node-9"}},
        "spec.evacuate.node 'kwok-node-9': no such node",
    ),
]


def _events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.events(namespace)
        if e["involvedObject"].get("kind") == "Mitigation" and e["involvedObject"].get("name") == name
    ]


def test_admission_rejects_a_scale_with_neither_replicas_nor_factor(
    kube: Kube, namespace: str, crds_installed: None
) -> None:
    with pytest.raises(AssertionError, match="exactly one of replicas or factor"):
        kube.apply(mitigation("empty", "shop", {"scale": {}}), namespace=namespace)


@pytest.mark.local_world("ready-pods")
def test_unexecutable_mitigations_fail_once_naming_the_field_and_touch_nothing(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "flags"},
            "data": {"newcheckout": "true"},
        },
        namespace=namespace,
    )
    kube.apply(deployment("shop", replicas=2), deployment("db", replicas=1), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "shop")) == 2, 60, "2 ready pods")
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "db")) == 1, 60, "1 ready db pod")
    (db_pod,) = ready_pods(kube, namespace, "db")
    db_name, db_uid = db_pod["metadata"]["name"], db_pod["metadata"]["uid"]
    # A restart naming another workload's pod must not delete it.
    cases = [
        *CASES,
        (
            "wrong-pod",
            "shop",
            {"restart": {"pods": [db_name]}},
            f"spec.restart.pods: {db_name} not selected by Deployment/shop's selector",
        ),
    ]
    # The policy allows every toggle these cases try (limits are default deny): what fails them must
    # be that they cannot be carried out, not the policy.
    allowed = ({"name": "flags", "keys": ["newcheckout", "newchekout"]}, {"name": "nope", "keys": ["a"]})
    policy = allow_all_policy(namespace, evacuate_nodes="kwok-node-*", config_maps=allowed)
    kube.apply(policy, namespace=namespace)
    before = kube.get("deployment", "shop", namespace)["metadata"]
    cm_before = kube.get("configmap", "flags", namespace)["metadata"]["resourceVersion"]
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    results: dict[str, dict[str, Any]] = {}
    try:
        # One at a time: the policy allows one active Mitigation per target.
        for name, target, action, _ in cases:
            kube.apply(mitigation(name, target, action), namespace=namespace)
            results[name] = wait_phase(kube, namespace, name, {"Failed"}, 60)
        time.sleep(10)  # several guard intervals: a retrying machine would write or post again
        assert operator.proc is not None
        assert operator.proc.poll() is None, "the operator is still running"
        events = {name: _events(kube, namespace, name) for name, *_ in cases}
        later = {name: kube.get("mitigation", name, namespace)["status"] for name, *_ in cases}
        records = operator.log_records()
        audit_lines = [r for r in records if r.get("event") == "mitigation audit"]
        mutations = [r for r in records if r.get("event") == "mitigation effect"]
    finally:
        shutdown(operator, kube, namespace)
    for name, _, _, field_text in cases:
        st = results[name]
        assert field_text in st["message"], st
        valid = next(c for c in st["conditions"] if c["type"] == "Valid")
        assert (valid["status"], valid["reason"]) == ("False", "PlanFailed"), valid
        assert field_text in valid["message"]
        assert [a["event"] for a in st["audit"]] == ["PolicyAllowed", "PlanFailed"], st["audit"]
        failed = [e for e in events[name] if e["reason"] == "PlanFailed"]
        assert [(e["type"], e.get("count", 1)) for e in failed] == [("Warning", 1)], failed
        assert field_text in failed[0]["message"]
        assert later[name]["audit"] == st["audit"], "nothing happened after the terminal phase"
        assert len([r for r in audit_lines if r.get("name") == name]) == 2
    after = kube.get("deployment", "shop", namespace)["metadata"]
    assert (after["generation"], after.get("annotations")) == (
        before["generation"],
        before.get("annotations"),
    )
    assert kube.get("configmap", "flags", namespace)["metadata"]["resourceVersion"] == cm_before
    assert mutations == [], "no lock, no patch, no cordon, no delete: nothing was sent"
    assert [p["metadata"]["uid"] for p in ready_pods(kube, namespace, "db")] == [db_uid]
