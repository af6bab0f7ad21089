"""Action plans: kubectl rollout undo semantics, scale/HPA, restart, config toggle, evacuate, pause,
canary, is-applied checks, reverts and drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stanch.core.effects import Create, Delete, Evict, Patch
from stanch.core.label_selectors import selects
from stanch.core.machine.observations import World
from stanch.core.models import LOCK_ANNOTATION, MitigationSpec
from stanch.core.plans import (
    CANARY_LABEL,
    CORDONED_BY,
    RESTARTED_AT,
    AnySnapshot,
    PlanError,
    detect_drift,
    is_applied,
    plan,
    revert_effects,
    take_snapshot,
)
from stanch.core.plans.jsonpatch import apply_ops

from .fixtures import deployment, replica_set, with_

NOW = datetime(2025, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)


def spec(**action: Any) -> MitigationSpec:
    return MitigationSpec.model_validate({"target": {"name": "web"}, **action})


def planned(s: MitigationSpec, world: World) -> tuple[AnySnapshot, Any]:
    snap = take_snapshot(s, world, mitigation="m1", now=NOW)
    return snap, plan(s, snap, mitigation="m1", mitigation_uid="mit-uid")


def apply_patch(obj: dict[str, Any], effect: object) -> dict[str, Any]:
    """What the API server does with our JSON patch (tests included)."""
    assert isinstance(effect, Patch)
    return apply_ops(obj, effect.wire_ops())


# --- rollback -------------------------------------------------------------------------------------

HISTORY = [
    replica_set("1", "web:v1", **{"kubernetes.io/change-cause": "deploy v1", "team": "payments"}),
    replica_set("3", "web:v3"),
    replica_set("2", "web:v2", **{"kubernetes.io/change-cause": "deploy v2"}),
    replica_set("9", "web:v9", owner="someone-else"),
]


def test_rollback_defaults_to_second_highest_revision_and_copies_like_kubectl() -> None:
    dep = deployment("web:v3")
    dep["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{...}"
    snap, p = planned(spec(rollback={}), World(target=dep, replica_sets=HISTORY))
    assert snap.action.rollback.revision == 2  # highest is 3 (current), revision 9 is not ours
    (patch,) = p.apply
    assert isinstance(patch, Patch)
    ops = {op["path"]: op for op in patch.ops}
    template = ops["/spec/template"]["value"]
    assert template["spec"]["containers"][0]["image"] == "web:v2"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    # Skip-listed keys keep the Deployment's values; others come from the RS; the rest are dropped.
    assert ops["/metadata/annotations"]["value"] == {
        "deployment.kubernetes.io/revision": "2",
        "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        "kubernetes.io/change-cause": "deploy v2",
        LOCK_ANNOTATION: "shop/m1",
    }
    assert patch.precondition.generation == 7
    after = apply_patch(dep, patch)
    assert after["spec"]["template"] == template
    assert "team" not in after["metadata"]["annotations"]  # kubectl drops what the RS lacks


def test_rollback_to_named_revision_and_missing_revision_error_names_the_field() -> None:
    snap, _ = planned(
        spec(rollback={"toRevision": 1}), World(target=deployment("web:v3"), replica_sets=HISTORY)
    )
    assert snap.action.rollback.revision == 1
    with pytest.raises(PlanError, match=r"spec\.rollback\.toRevision 5.*revisions in history: 1, 2, 3"):
        planned(spec(rollback={"toRevision": 5}), World(target=deployment(), replica_sets=HISTORY))


def test_rollback_with_one_revision_has_no_history() -> None:
    with pytest.raises(PlanError, match="no rollout history"):
        planned(spec(rollback={}), World(target=deployment(), replica_sets=[replica_set("1", "web:v2")]))


def test_rollback_refuses_paused_deployment_naming_spec_paused() -> None:
    with pytest.raises(PlanError, match=r"spec\.paused.*resume"):
        planned(spec(rollback={}), World(target=deployment("web:v3", paused=True), replica_sets=HISTORY))


def test_rollback_missing_revision_is_reported_before_paused_like_kubectl() -> None:
    with pytest.raises(PlanError, match="toRevision"):
        planned(spec(rollback={"toRevision": 8}), World(target=deployment(paused=True), replica_sets=HISTORY))


def test_rollback_noop_when_template_matches_ignoring_hash() -> None:
    # Current template equals revision 1's (the RS has a pod-template-hash label, the Deployment not).
    history = [replica_set("1", "web:v1"), replica_set("2", "web:v1", name="other")]
    _, p = planned(spec(rollback={"toRevision": 1}), World(target=deployment("web:v1"), replica_sets=history))
    assert p.apply == ()
    assert p.noop_reason is not None
    assert "already matches revision 1" in p.noop_reason


def test_rollback_is_applied_ignores_controller_annotations_and_revert_restores() -> None:
    dep = deployment("web:v3")
    snap, p = planned(spec(rollback={}), World(target=dep, replica_sets=HISTORY))
    after = apply_patch(dep, p.apply[0])
    after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"  # controller
    after["metadata"]["generation"] = 8
    assert not is_applied(p.apply, World(target=dep))
    assert is_applied(p.apply, World(target=after))
    reverts = revert_effects(p, snap, applied_generation=8, at=NOW)
    restored = apply_patch(after, reverts[0])
    assert restored["spec"]["template"] == dep["spec"]["template"]
    assert restored["metadata"]["annotations"]["team"] == "payments"
    assert restored["metadata"]["annotations"]["kubernetes.io/change-cause"] == "deploy v2"
    with pytest.raises(ValueError, match="test"):
        apply_patch(with_(after, ["metadata", "generation"], 9), reverts[0])


# --- scale ----------------------------------------------------------------------------------------


def test_scale_by_factor_rounds_up_from_the_snapshot_and_is_idempotent() -> None:
    dep = deployment(replicas=3)
    snap, p = planned(spec(scale={"factor": 1.5}), World(target=dep))
    (patch,) = p.apply
    assert isinstance(patch, Patch)
    assert patch.ops == ({"op": "replace", "path": "/spec/replicas", "value": 5},)
    after = with_(apply_patch(dep, patch), ["metadata", "generation"], 8)
    # Re-planning from the same snapshot after the change landed gives the same absolute target...
    assert plan(spec(scale={"factor": 1.5}), snap, mitigation="m1", mitigation_uid="u").apply == p.apply
    # ...which is detected as applied, and a second application is refused by the precondition.
    assert is_applied(p.apply, World(target=after))
    with pytest.raises(ValueError, match="test"):
        apply_patch(after, patch)


def test_scale_raises_hpa_instead_of_fighting_it_and_revert_restores() -> None:
    hpa = {
        "metadata": {"name": "web", "namespace": "shop", "uid": "hpa-uid"},
        "spec": {"minReplicas": 2, "maxReplicas": 6},
    }
    snap, p = planned(spec(scale={"replicas": 8}), World(target=deployment(), hpa=hpa))
    (patch,) = p.apply
    assert isinstance(patch, Patch)
    assert patch.key.kind == "HorizontalPodAutoscaler"
    after = apply_patch(hpa, patch)
    assert after["spec"] == {"minReplicas": 8, "maxReplicas": 8}
    (revert,) = revert_effects(p, snap, applied_generation=None, at=NOW)
    assert apply_patch(after, revert)["spec"] == {"minReplicas": 2, "maxReplicas": 6}


# --- restart, config toggle, evacuate, pause ------------------------------------------------------


def test_restart_sets_restarted_at_from_snapshot_time_and_has_no_revert() -> None:
    dep = deployment()
    snap, p = planned(spec(restart={}), World(target=dep))
    after = apply_patch(dep, p.apply[0])
    assert after["spec"]["template"]["metadata"]["annotations"] == {RESTARTED_AT: "2025-03-01T12:00:05Z"}
    assert not p.reversible
    assert "cannot be undone" in p.revert_note
    assert revert_effects(p, snap, applied_generation=8, at=NOW) == ()


def test_restart_never_deletes_a_pod_of_another_workload() -> None:
    pods = [
        {"metadata": {"name": "web-a", "uid": "pa", "labels": {"app": "web"}}},
        {"metadata": {"name": "db-0", "uid": "pd", "labels": {"app": "db"}}},
    ]
    s = spec(restart={"pods": ["web-a", "db-0"]})
    with pytest.raises(PlanError, match=r"spec\.restart\.pods: db-0 not selected by Deployment/web"):
        take_snapshot(s, World(target=deployment(), pods=pods), mitigation="m1", now=NOW)


def test_label_selectors_match_like_the_api_server() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["x"]},
            {"key": "team", "operator": "Exists"},
        ],
    }
    assert selects(sel, {"app": "web", "tier": "a", "team": "t"})
    assert not selects(sel, {"app": "web", "tier": "c", "team": "t"})
    assert not selects(sel, {"app": "web", "tier": "a", "team": "t", "canary": "1"})
    assert not selects(sel, {"app": "web", "tier": "a", "team": "t", "zone": "x"})
    assert not selects(sel, {"app": "web", "tier": "a"})
    assert not selects({}, {"app": "web"})


def test_restart_named_pods_deletes_by_uid() -> None:
    pods = [{"metadata": {"name": "web-a", "uid": "pa", "labels": {"app": "web"}}}]
    _, p = planned(spec(restart={"pods": ["web-a", "web-gone"]}), World(target=deployment(), pods=pods))
    assert [(e.key.name, e.precondition.uid) for e in p.apply] == [("web-a", "pa")]
    assert "web-gone" in p.summary


def test_config_toggle_of_a_missing_key_cannot_be_executed_and_names_the_fix() -> None:
    # A typo in the key would otherwise add a flag nobody reads and "succeed" doing nothing.
    cm = {"metadata": {"name": "flags", "uid": "cm-uid"}, "data": {"other": "x"}}
    s = spec(configToggle={"configMap": "flags", "key": "beta", "value": "off"})
    with pytest.raises(PlanError, match=r"spec\.configToggle\.key 'beta'.*keys: other.*spelling"):
        take_snapshot(s, World(target=deployment(), config_map=cm), mitigation="m1", now=NOW)
    with pytest.raises(PlanError, match=r"keys: none"):
        take_snapshot(
            s, World(target=deployment(), config_map={"metadata": cm["metadata"]}), mitigation="m1", now=NOW
        )
    with pytest.raises(PlanError, match=r"spec\.configToggle\.configMap 'flags' not found.*existing"):
        take_snapshot(s, World(target=deployment()), mitigation="m1", now=NOW)


def test_config_toggle_set_value_is_conditional_on_the_previous_value() -> None:
    cm = {"metadata": {"name": "flags", "uid": "cm-uid"}, "data": {"other": "x", "beta": "on"}}
    s = spec(configToggle={"configMap": "flags", "key": "beta", "value": "off"})
    snap, p = planned(s, World(target=deployment(), config_map=cm))
    after = apply_patch(cm, p.apply[0])
    assert after["data"] == {"other": "x", "beta": "off"}
    with pytest.raises(ValueError, match="test"):  # someone changed the key meanwhile: refused
        apply_patch(with_(cm, ["data", "beta"], "maybe"), p.apply[0])
    (revert,) = revert_effects(p, snap, applied_generation=None, at=NOW)
    assert apply_patch(after, revert)["data"] == {"other": "x", "beta": "on"}


def test_unexecutable_specs_name_the_field_and_the_fix() -> None:
    with pytest.raises(PlanError, match=r"spec\.target: Deployment/web not found.*immutable.*existing"):
        take_snapshot(spec(scale={"replicas": 2}), World(target=None), mitigation="m1", now=NOW)
    with pytest.raises(PlanError, match=r"spec\.evacuate\.node 'n9': no such node.*kubectl get nodes"):
        take_snapshot(spec(evacuate={"node": "n9"}), World(target=deployment()), mitigation="m1", now=NOW)
    with pytest.raises(PlanError, match=r"spec\.restart\.pods: none of web-a exist"):
        take_snapshot(spec(restart={"pods": ["web-a"]}), World(target=deployment()), mitigation="m1", now=NOW)


def test_config_toggle_revert_restores_previous_value() -> None:
    cm = {"metadata": {"name": "flags", "uid": "cm-uid"}, "data": {"beta": "on"}}
    s = spec(configToggle={"configMap": "flags", "key": "beta", "value": "off", "restart": True})
    snap, p = planned(s, World(target=deployment(), config_map=cm))
    assert len(p.apply) == 2
    after = apply_patch(cm, p.apply[0])
    reverts = revert_effects(p, snap, applied_generation=8, at=NOW)
    assert apply_patch(after, reverts[0])["data"] == {"beta": "on"}
    assert RESTARTED_AT in str(reverts[1])


def test_evacuate_cordons_marks_the_node_then_evicts_and_uncordons_only_if_we_cordoned() -> None:
    pods = [{"metadata": {"name": "web-a", "uid": "pa"}}, {"metadata": {"name": "web-b", "uid": "pb"}}]
    s = spec(evacuate={"node": "n1"})
    for node in (
        {"metadata": {"name": "n1", "uid": "n-uid"}, "spec": {}},
        {"metadata": {"name": "n1", "uid": "n-uid", "annotations": {"x": "1"}}, "spec": {}},
    ):
        snap, p = planned(s, World(target=deployment(), node=node, pods_on_node=pods))
        assert snap.action.node.cordoned_by == "shop/m1"  # write-ahead: we are the ones to cordon it
        (cordon,) = p.apply
        assert isinstance(cordon, Patch)
        # Pods leave through the Eviction API (PodDisruptionBudgets apply), never a plain delete.
        assert [(e.key.name, e.precondition.uid, e.step) for e in p.evict] == [
            ("web-a", "pa", "Evict"),
            ("web-b", "pb", "Evict"),
        ]
        assert all(isinstance(e, Evict) for e in p.evict)
        assert p.patch_record()["evict"][0] == {"evict": "Pod/shop/web-a", "precondition": "uid=pa"}
        cordoned = apply_patch(node, cordon)
        assert cordoned["spec"] == {"unschedulable": True}
        assert cordoned["metadata"]["annotations"][CORDONED_BY] == "shop/m1"
        with pytest.raises(ValueError, match="test"):  # cordoned by someone else meanwhile: refused
            apply_patch(with_(node, ["spec", "unschedulable"], True), cordon)
        (uncordon,) = revert_effects(p, snap, applied_generation=None, at=NOW)
        uncordoned = apply_patch(cordoned, uncordon)
        assert uncordoned["spec"] == {}
        assert CORDONED_BY not in (uncordoned["metadata"].get("annotations") or {})
        # Someone else took the cordon over (their mark): the revert does not uncordon their node.
        with pytest.raises(ValueError, match="test"):
            apply_patch(with_(cordoned, ["metadata", "annotations", CORDONED_BY], "ops/drain"), uncordon)
        assert is_applied(p.apply, World(target=deployment(), node=cordoned))
        # Someone else's cordon without our mark is not "ours applied" (on a node without any
        # annotations the revert's mark test is what protects their cordon).
        assert "annotations" not in node["metadata"] or not is_applied(
            p.apply, World(target=deployment(), node=with_(node, ["spec", "unschedulable"], True))
        )
        # Evictions are done once the pods are gone, terminating, or replaced under the same name.
        gone = World(
            target=deployment(), node=cordoned, pods_on_node=[with_(pods[0], ["metadata", "uid"], "new")]
        )
        assert is_applied(p.evict, gone)
        assert not is_applied(p.evict, World(target=deployment(), node=cordoned, pods_on_node=pods))
    # Already cordoned by someone: we do not cordon, and so never uncordon.
    snap2, p2 = planned(s, World(target=deployment(), node=cordoned, pods_on_node=pods))
    assert snap2.action.node.cordoned_by is None
    assert p2.apply == ()
    assert len(p2.evict) == 2
    assert revert_effects(p2, snap2, applied_generation=None, at=NOW) == ()
    assert "already cordoned" in p2.summary


def test_resume_matches_the_api_servers_omitted_false_and_reverts_on_it() -> None:
    # The API server drops paused: false (omitempty): the live object after a resume has no
    # spec.paused. That is the applied end state, not someone else's change.
    paused = with_(deployment(), ["spec", "paused"], True)
    s = spec(pause={"resume": True})
    snap, p = planned(s, World(target=paused))
    live = with_(apply_patch(paused, p.apply[0]), ["metadata", "generation"], 8)
    del live["spec"]["paused"]
    assert is_applied(p.apply, World(target=live))
    assert detect_drift(s, snap, p, World(target=live)) is None
    (revert,) = revert_effects(p, snap, applied_generation=8, at=NOW)
    assert apply_patch(live, revert)["spec"]["paused"] is True
    # Someone paused it again by hand meanwhile: drift, and the revert's test refuses.
    assert detect_drift(s, snap, p, World(target=with_(live, ["spec", "paused"], True)))


def test_pause_and_revert() -> None:
    dep = deployment()
    snap, p = planned(spec(pause={}), World(target=dep))
    after = with_(apply_patch(dep, p.apply[0]), ["metadata", "generation"], 8)
    assert after["spec"]["paused"] is True
    (revert,) = revert_effects(p, snap, applied_generation=8, at=NOW)
    assert "paused" not in apply_patch(after, revert)["spec"]
    _, noop = planned(spec(pause={"resume": True}), World(target=dep))
    assert noop.noop_reason is not None


# --- canary ---------------------------------------------------------------------------------------


def test_canary_manifest_owned_by_mitigation_with_non_overlapping_selector() -> None:
    dep = deployment()
    s = spec(canary={"image": "web:fix", "env": [{"name": "A", "value": "2"}], "replicas": 2})
    _, p = planned(s, World(target=dep))
    (create,) = p.apply
    assert isinstance(create, Create)
    m = create.manifest
    assert m["metadata"]["name"] == "web-canary-m1"
    assert m["metadata"]["ownerReferences"][0]["kind"] == "Mitigation"
    assert m["metadata"]["ownerReferences"][0]["uid"] == "mit-uid"
    assert m["spec"]["selector"]["matchLabels"] == {"app": "web", CANARY_LABEL: "m1"}
    pod_labels = m["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {"app": "web", CANARY_LABEL: "m1"}  # a superset of what the Service selects
    container = m["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "web:fix"
    assert container["env"] == [{"name": "A", "value": "2"}]
    assert m["spec"]["replicas"] == 2
    promote, remove = p.promote
    assert isinstance(promote, Patch)
    assert isinstance(remove, Delete)
    promoted = apply_patch(dep, promote)
    assert promoted["spec"]["template"]["spec"]["containers"][0]["image"] == "web:fix"
    assert "ownerReferences" not in promoted["metadata"]  # never onto the user's workload


# --- drift ----------------------------------------------------------------------------------------


def test_drift_detects_a_human_edit_with_a_readable_diff_and_ignores_status_and_hpa_replicas() -> None:
    dep = deployment()
    s = spec(pause={})
    snap, p = planned(s, World(target=dep))
    after = with_(apply_patch(dep, p.apply[0]), ["metadata", "generation"], 8)
    after["status"] = {"replicas": 9}
    assert detect_drift(s, snap, p, World(target=after)) is None
    edited = with_(
        after, ["spec", "template", "spec", "containers"], [{"name": "web", "image": "web:hotfix"}]
    )
    diff = detect_drift(s, snap, p, World(target=edited))
    assert diff is not None
    assert "web:hotfix" in diff
    assert diff.startswith("---")
    # Touched field changed again (someone resumed):
    assert detect_drift(s, snap, p, World(target=with_(after, ["spec", "paused"], False))) is not None


def test_drift_on_config_map_value_changed_again() -> None:
    cm = {"metadata": {"name": "flags", "uid": "cm-uid"}, "data": {"beta": "on"}}
    s = spec(configToggle={"configMap": "flags", "key": "beta", "value": "off"})
    snap, p = planned(s, World(target=deployment(), config_map=cm))
    after = apply_patch(cm, p.apply[0])
    assert detect_drift(s, snap, p, World(target=deployment(), config_map=after)) is None
    diff = detect_drift(
        s, snap, p, World(target=deployment(), config_map=with_(after, ["data", "beta"], "x"))
    )
    assert diff is not None
    assert "'off'" in diff
