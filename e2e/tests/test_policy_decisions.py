"""Policies kept in Git decide what the real operator does on a real cluster.

The policies are YAML files (``e2e/tests/policies/``) applied with ``kubectl apply -f``, the way Argo
CD or Flux applies them: a staging policy lets an Incident's bad deploy be rolled back automatically
end to end; a production policy holds the same rollback until someone approves it; a scale beyond
the policy's cap and any action inside a freeze window end Rejected with the reason, and the
Deployment is never touched.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    status,
    wait_error_ratio,
    wait_phase,
)
from e2e.tests.test_investigation import (  # noqa: F401 - fixtures
    baseline,
    incident,
    investigation_env,
    stanch_op,
    top,
    wait_for_hypotheses,
)
from e2e.tests.test_workloads import ready_pods, rollout_complete
from stanch.core.models import LOCK_ANNOTATION

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

POLICIES = Path(__file__).resolve().parent / "policies"
BAD = {"sim.stanch.dev/error-ratio": "0.4"}


def apply_policy_file(kube: Kube, namespace: str, name: str) -> None:
    """``kubectl apply -f`` of the file, as a GitOps controller syncing the repository would."""
    kube.run("apply", "-n", namespace, "-f", str(POLICIES / name))


def good_then_bad(kube: Kube, namespace: str, name: str) -> None:
    """Revision 1 healthy, revision 2 failing 40% of requests, both fully rolled out."""
    for version, pod_annotations in (("1.0", {}), ("1.1", BAD)):
        kube.apply(
            deployment(
                name, replicas=2, image=f"registry.example/{name}:{version}", annotations=pod_annotations
            ),
            namespace=namespace,
        )

        def rolled_out(v: str = version) -> bool:
            pods = ready_pods(kube, namespace, name)
            return len(pods) == 2 and all(p["spec"]["containers"][0]["image"].endswith(v) for p in pods)

        kube.wait_for(rolled_out, 90, f"{name} {version} rolled out")


def untouched(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The Deployment is exactly as it was: same generation, template and replicas, no lock."""
    assert after["metadata"]["generation"] == before["metadata"]["generation"], "the Deployment was written"
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["spec"]["replicas"] == before["spec"]["replicas"]
    assert LOCK_ANNOTATION not in (after["metadata"].get("annotations") or {})


@pytest.mark.usefixtures("stanch_op")
def test_policy_from_git_rolls_back_a_bad_deploy_automatically(
    world: WorldInfo, kube: Kube, namespace: str
) -> None:
    apply_policy_file(kube, namespace, "staging.yaml")
    baseline(kube, namespace, deployment("checkout", replicas=3, image="registry.example/checkout:1.4.2"))
    bad = deployment("checkout", replicas=3, image="registry.example/checkout:1.5.0", annotations=BAD)
    kube.apply(bad, namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "checkout"), 60, "rollout of revision 2")
    wait_error_ratio(world.prometheus_url, namespace, "checkout", lambda v: v > 0.25, 60, "bad deploy errors")
    # The alert fires once the errors have lasted a while: the guard's baseline (20 s before the
    # rollback) is then the bad deploy's, not the healthy minute before it.
    settle()
    manifest = incident("checkout-5xx", "checkout")
    manifest["spec"]["mitigation"] = {"mode": "Auto"}
    kube.apply(manifest, namespace=namespace)
    wait_for_hypotheses(
        kube,
        namespace,
        "checkout-5xx",
        lambda s: top(s)["category"] == "RecentDeploy",
        "the deploy blamed",
        60,
    )

    def created() -> list[dict[str, Any]]:
        return kube.items("mitigations", namespace, "stanch.dev/created-by=policy")

    auto = kube.wait_for(created, 30, "the automatic Mitigation")[0]
    name = auto["metadata"]["name"]
    assert name.startswith("checkout-5xx-auto-rollback-"), name
    owner = auto["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Incident", "checkout-5xx")
    assert auto["metadata"]["annotations"]["stanch.dev/created-by"] == (
        f"policy:{namespace}/staging#autoMitigation[0]"
    )
    st = wait_phase(kube, namespace, name, {"Succeeded"}, 150)

    decision = st["policy"]
    assert decision["decision"] == "Allow", decision
    assert decision["policy"] == f"MitigationPolicy/{namespace}/staging"
    assert decision["rule"] == "actions[Rollback]"
    assert st["requestedBy"] == f"policy:{namespace}/staging#autoMitigation[0]"
    assert st["verdict"]["result"] == "Healthy", st["verdict"]
    assert st["baseline"]["values"][0]["value"] > 0.25, "the baseline is the bad deploy's error ratio"
    assert audit_events(st).count("Applied") == 1
    dep = deployment_state(kube, namespace, "checkout")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/checkout:1.4.2"
    wait_error_ratio(world.prometheus_url, namespace, "checkout", lambda v: v < 0.05, 60, "errors recovered")
    listed = {e["name"]: e for e in kube.get("incident", "checkout-5xx", namespace)["status"]["mitigations"]}
    assert name in listed, listed


def test_production_policy_holds_the_rollback_until_approved(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    apply_policy_file(kube, namespace, "production.yaml")
    good_then_bad(kube, namespace, "api")
    wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v > 0.25, 60, "bad deploy errors")
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        before = deployment_state(kube, namespace, "api")
        kube.apply(mitigation("undo", "api", {"rollback": {}}), namespace=namespace)
        st = wait_phase(kube, namespace, "undo", {"AwaitingApproval"}, 30)
        assert st["policy"]["decision"] == "RequireApproval", st["policy"]
        assert st["policy"]["policy"] == f"MitigationPolicy/{namespace}/production"
        assert st["policy"]["rule"] == "actions[Rollback]"
        assert "approved by the on-call engineer" in st["policy"]["reasons"][0]
        time.sleep(8)  # several guard intervals: a waiting Mitigation must not act
        assert status(kube, namespace, "undo")["phase"] == "AwaitingApproval"
        untouched(before, deployment_state(kube, namespace, "api"))
        reasons = {e["reason"] for e in kube.events(namespace) if e["involvedObject"].get("name") == "undo"}
        assert "ApprovalRequired" in reasons, reasons

        # The old annotation approves nothing; a MitigationApproval by someone else does.
        kube.run("annotate", "mitigation", "undo", "stanch.dev/approved-by=alice", "-n", namespace)
        time.sleep(3)
        assert status(kube, namespace, "undo")["phase"] == "AwaitingApproval"
        approve(kube, namespace, "undo", "alice")
        st = wait_phase(kube, namespace, "undo", {"Succeeded"}, 120)
    finally:
        shutdown(operator, kube, namespace)
    approved = [a for a in st["audit"] if a["event"] == "Approved"]
    assert [a["actor"] for a in approved] == ["alice"], st["audit"]
    assert st["approval"]["approver"]["username"] == "alice", st.get("approval")
    assert st["requester"]["username"] == kube.username(), st.get("requester")
    assert st["verdict"]["result"] == "Healthy", st["verdict"]
    dep = deployment_state(kube, namespace, "api")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/api:1.0"
    wait_error_ratio(world.prometheus_url, namespace, "api", lambda v: v < 0.05, 60, "errors recovered")


def test_scale_beyond_the_policy_cap_is_rejected(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    apply_policy_file(kube, namespace, "staging.yaml")
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "web rolled out")
    before = deployment_state(kube, namespace, "web")
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 40}}), namespace=namespace)
        st = wait_phase(kube, namespace, "grow", {"Rejected"}, 30)
        time.sleep(3)
        after = deployment_state(kube, namespace, "web")
    finally:
        shutdown(operator, kube, namespace)
    decision = st["policy"]
    assert decision["decision"] == "Deny", decision
    assert decision["rule"] == "actions[Scale].limits.maxReplicas"
    assert decision["reasons"][0] == (
        f"Scale denied by {namespace}/staging actions[Scale]: 40 replicas exceeds maxReplicas 20"
    ), decision
    assert "40 replicas exceeds maxReplicas 20" in st["message"]
    assert audit_events(st) == ["PolicyDenied"]
    assert st.get("snapshot") is None, "nothing is snapshotted, locked or planned for a denied Mitigation"
    untouched(before, after)


def test_freeze_window_blocks_actions(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    policy: dict[str, Any] = yaml.safe_load((POLICIES / "staging.yaml").read_text())
    policy["spec"]["freezeWindows"] = [
        {
            "name": "release",
            "start": (now - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
            "end": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "reason": "release 2026.48 in progress",
        }
    ]
    kube.apply(policy, namespace=namespace)
    good_then_bad(kube, namespace, "api")
    before = deployment_state(kube, namespace, "api")
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("undo", "api", {"rollback": {}}, FAST_GUARD), namespace=namespace)
        st = wait_phase(kube, namespace, "undo", {"Rejected"}, 30)
        time.sleep(3)
        after = deployment_state(kube, namespace, "api")
    finally:
        shutdown(operator, kube, namespace)
    decision = st["policy"]
    assert decision["decision"] == "Deny", decision
    assert decision["rule"] == "freezeWindows[release]"
    until = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%MZ")
    assert decision["reasons"][0].startswith(
        f"Rollback denied by {namespace}/staging: freeze window release ("
    ), decision
    assert f"is active until {until}: release 2026.48 in progress" in decision["reasons"][0]
    assert "freeze window release" in st["message"]
    untouched(before, after)
    rejected = [e for e in kube.events(namespace) if e["involvedObject"].get("name") == "undo"]
    assert any(e["reason"] == "PolicyDenied" and e["type"] == "Warning" for e in rejected), rejected
