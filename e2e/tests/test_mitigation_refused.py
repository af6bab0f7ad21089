"""A write the API server refuses for good is not retried: a real ValidatingAdmissionPolicy denies the
config toggle's ConfigMap patch (a persistent 422), and the Mitigation ends Failed at once with
WritesAccepted=False (Refused) and one Warning Event carrying the API server's message, after one
PATCH. It used to be taken for a conflict and re-sent about 66 times a pass, forever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    audit_events,
    deployment_state,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    status,
    wait_phase,
)
from e2e.tests.test_workloads import ready_pods
from stanch.core.models import LOCK_ANNOTATION

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

FREEZE = "flags.newcheckout stays on during the change freeze (e2e admission policy)"


def _admission_policy(name: str, namespace: str) -> list[dict[str, Any]]:
    """Deny setting ``flags``'s ``newcheckout`` key to ``false``, in ``namespace`` only (the binding's
    namespaceSelector: the policy is cluster-scoped, and no other test's ConfigMaps are touched)."""
    expression = (
        "object.metadata.name != 'flags' || !has(object.data) || !('newcheckout' in object.data)"
        " || object.data['newcheckout'] != 'false'"
    )
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [{"expression": expression, "message": FREEZE}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    ]


@contextmanager
def _denying(kube: Kube, namespace: str) -> Iterator[None]:
    """The admission policy, in force (a server-side dry run of the denied patch is refused), then gone."""
    name = f"stanch-e2e-{namespace}"[:63]
    kube.apply(*_admission_policy(name, namespace))
    try:
        denied = ["patch", "configmap", "flags", "-n", namespace, "--dry-run=server", "--type", "merge"]
        patch = '{"data":{"newcheckout":"false"}}'
        Kube.wait_for(lambda: not kube.ok(*denied, "-p", patch), 30, "the admission policy in force")
        yield
    finally:
        kube.ok("delete", "validatingadmissionpolicybinding", name, "--ignore-not-found")
        kube.ok("delete", "validatingadmissionpolicy", name, "--ignore-not-found")


def _sends(operator: OperatorProcess, step: str) -> list[str]:
    """The outcome of every write of ``step`` the operator's processes sent."""
    return [
        str(r.get("outcome"))
        for r in operator.log_records()
        if r.get("event") == "mitigation effect" and r.get("step") == step
    ]


def _events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.events(namespace)
        if e["involvedObject"].get("kind") == "Mitigation" and e["involvedObject"].get("name") == name
    ]


@pytest.mark.serial("cluster-objects")
def test_a_write_an_admission_policy_refuses_fails_once_naming_the_api_servers_message(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    flags = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"}}
    kube.apply({**flags, "data": {"newcheckout": "true"}}, namespace=namespace)
    kube.apply(deployment("shop", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "shop")) == 2, 60, "2 ready pods")
    settle()
    kube.apply(allow_all_policy(namespace), namespace=namespace)
    operator = fast_operator(world, namespace, tmp_path / "operator")
    with _denying(kube, namespace):
        operator.start()
        try:
            off = {"configToggle": {"configMap": "flags", "key": "newcheckout", "value": "false"}}
            kube.apply(mitigation("flag-off", "shop", off, FAST_GUARD), namespace=namespace)
            st = wait_phase(kube, namespace, "flag-off", {"Failed"}, 90)
            # Several intervals later, nothing more was sent or recorded: the refusal is final.
            sends_at_failure = _sends(operator, "Apply")
            audit_at_failure = audit_events(st)
            time.sleep(10)
            later = status(kube, namespace, "flag-off")
            sends = _sends(operator, "Apply")
        finally:
            shutdown(operator, kube, namespace)

    # One PATCH, refused (Invalid: the 422 of the admission policy), never re-sent.
    assert sends == sends_at_failure == ["Invalid"], sends
    assert audit_events(later) == audit_at_failure
    assert later["phase"] == "Failed"
    (accepted,) = [c for c in later["conditions"] if c["type"] == "WritesAccepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "Refused")
    assert FREEZE in accepted["message"]
    assert "HTTP 422" in accepted["message"]
    assert "nothing was changed" in later["message"]
    assert "Resume" not in audit_at_failure, audit_at_failure
    # One Warning Event says it, with the API server's own words and the fix.
    failed = [e for e in _events(kube, namespace, "flag-off") if e["reason"] == "ApplyFailed"]
    assert len(failed) == 1, failed
    print(f"ApplyFailed Event: {failed[0]['message']}")
    assert failed[0]["type"] == "Warning"
    assert FREEZE in failed[0]["message"]
    assert "admission policy" in failed[0]["message"]
    # The flag is as it was, and the lock taken before the refused write is released.
    assert kube.get("configmap", "flags", namespace)["data"]["newcheckout"] == "true"
    annotations = deployment_state(kube, namespace, "shop")["metadata"].get("annotations") or {}
    assert LOCK_ANNOTATION not in annotations
