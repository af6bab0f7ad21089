"""The action table: every action kind has a module, every module's writes recognise themselves once
applied, the snapshot stays small whatever the target's size, and an older snapshot still reads."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from stanch.core.effects import Create, Delete, Evict, Patch
from stanch.core.models import FLUX_RECONCILE_ANNOTATION, LOCK_ANNOTATION, ActionKind, MitigationSpec
from stanch.core.plans import (
    ACTIONS,
    AnySnapshot,
    MutatingEffect,
    is_applied,
    plan,
    read_snapshot,
    revert_effects,
    take_snapshot,
)
from stanch.core.plans.jsonpatch import apply_ops
from stanch.core.plans.snapshot import SNAPSHOT_VERSION
from stanch.core.world import World

from .fixtures import deployment, replica_set

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
HPA = {
    "metadata": {"name": "web", "namespace": "shop", "uid": "hpa-uid", "managedFields": [{"m": "x"}]},
    "spec": {
        "minReplicas": 2,
        "maxReplicas": 6,
        "scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 90}},
            }
        ],
    },
    "status": {"currentReplicas": 4},
}
NODE = {"metadata": {"name": "n1", "uid": "n-uid", "annotations": {"a": "b"}}, "spec": {}}
CM = {"metadata": {"name": "flags", "uid": "cm-uid"}, "data": {"beta": "on"}}
PODS = [
    {"metadata": {"name": "web-a", "uid": "pa", "labels": {"app": "web"}}},
    {"metadata": {"name": "web-b", "uid": "pb", "labels": {"app": "web"}}},
]

# One Mitigation per action kind (two for scale: with and without an HPA).
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "rollback": ({"rollback": {}}, False),
    "scale": ({"scale": {"replicas": 6}}, False),
    "scale-hpa": ({"scale": {"replicas": 8}}, True),
    "restart": ({"restart": {}}, False),
    "restart-pods": ({"restart": {"pods": ["web-a"]}}, False),
    "canary": ({"canary": {"image": "web:fix"}}, False),
    "configToggle": (
        {"configToggle": {"configMap": "flags", "key": "beta", "value": "off", "restart": True}},
        False,
    ),
    "evacuate": ({"evacuate": {"node": "n1"}}, False),
    "pause": ({"pause": {}}, False),
    "autoscaler": (
        {
            "autoscaler": {
                "maxReplicas": 12,
                "targetUtilization": [{"resource": "cpu", "averageUtilization": 60}],
            }
        },
        True,
    ),
}


def spec(action: dict[str, Any]) -> MitigationSpec:
    return MitigationSpec.model_validate({"target": {"name": "web"}, **action})


def world(target: dict[str, Any], *, hpa: bool = False) -> World:
    return World(
        target=target,
        replica_sets=[replica_set("1", "web:v1"), replica_set("2", "web:v2")],
        hpa=HPA if hpa else None,
        config_map=CM,
        node=NODE,
        pods=PODS,
        pods_on_node=PODS,
    )


def test_every_action_kind_has_one_module_that_knows_its_kind() -> None:
    assert set(ACTIONS) == set(ActionKind)
    for kind, module in ACTIONS.items():
        assert module.kind is kind
    assert {spec(action).action for action, _ in CASES.values()} == set(ActionKind)


class Objects:
    """Objects by (kind, name), changed the way the API server changes them for our effects."""

    def __init__(self, w: World) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        for obj, kind in (
            (w.target, "Deployment"),
            (w.hpa, "HorizontalPodAutoscaler"),
            (w.config_map, "ConfigMap"),
            (w.node, "Node"),
        ):
            if obj is not None:
                self.objects[(kind, obj["metadata"]["name"])] = copy.deepcopy(dict(obj))
        for pod in w.pods:
            self.objects[("Pod", pod["metadata"]["name"])] = copy.deepcopy(dict(pod))

    def run(self, effect: MutatingEffect) -> None:
        key = (effect.key.kind, effect.key.name)
        if isinstance(effect, Patch):
            self.objects[key] = apply_ops(self.objects[key], effect.wire_ops())  # tests included
        elif isinstance(effect, Create):
            self.objects[key] = copy.deepcopy(dict(effect.manifest))
        elif isinstance(effect, Delete | Evict):
            self.objects.pop(key, None)

    def world(self) -> World:
        pods = [o for (kind, _), o in self.objects.items() if kind == "Pod"]
        return World(
            target=self.objects.get(("Deployment", "web")),
            hpa=self.objects.get(("HorizontalPodAutoscaler", "web")),
            config_map=self.objects.get(("ConfigMap", "flags")),
            node=self.objects.get(("Node", "n1")),
            pods=pods,
            pods_on_node=pods,
            canary=self.objects.get(("Deployment", "web-canary-m1")),
        )


@pytest.mark.parametrize("case", CASES)
def test_every_modules_writes_recognise_themselves_applied_and_the_revert_undoes_them(case: str) -> None:
    action, with_hpa = CASES[case]
    s = spec(action)
    module = ACTIONS[s.action]
    before = world(deployment("web:v2"), hpa=with_hpa)
    snap = take_snapshot(s, before, mitigation="m1", now=NOW)
    p = plan(s, snap, mitigation="m1", mitigation_uid="mit-uid")
    steps = (*p.apply, *p.evict)
    assert steps, "each case changes something"
    assert not is_applied(steps, before, module.live)
    cluster = Objects(before)
    for effect in steps:
        cluster.run(effect)
    after = cluster.world()
    assert is_applied(p.apply, after, module.live)
    assert is_applied(p.evict, after, module.live)
    # Idempotent: the same writes, recomputed from the persisted snapshot, are the same writes.
    again = plan(s, read_snapshot(s, snap.to_status()), mitigation="m1", mitigation_uid="mit-uid")
    assert again == p
    reverts = revert_effects(p, snap, applied_generation=None, at=NOW)
    if not p.reversible:
        assert reverts == ()
        return
    for effect in reverts:
        cluster.run(effect)
    assert is_applied(reverts, cluster.world(), module.live)


def huge_deployment() -> dict[str, Any]:
    """About 600 KB: kubectl's last-applied copy, a big user annotation, managedFields, status."""
    dep = deployment("web:v2")
    dep["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "x" * 150_000
    dep["metadata"]["annotations"]["example.com/big"] = "y" * 100_000
    dep["metadata"]["managedFields"] = [
        {"manager": f"m{i}", "fieldsV1": {"f": "z" * 1000}} for i in range(250)
    ]
    dep["status"] = {"conditions": [{"type": "T", "message": "w" * 1000} for _ in range(100)]}
    return dep


@pytest.mark.parametrize("case", CASES)
def test_a_huge_target_gives_a_small_snapshot(case: str) -> None:
    action, with_hpa = CASES[case]
    s = spec(action)
    dep = huge_deployment()
    assert len(json.dumps(dep)) > 600_000
    snap = take_snapshot(s, world(dep, hpa=with_hpa), mitigation="m1", now=NOW)
    size = len(json.dumps(snap.to_status()))
    if s.action is ActionKind.ROLLBACK:
        # A rollback writes the Deployment's whole annotation map as kubectl does (its own copy of
        # last-applied-configuration included) and restores what it drops: that, and no more.
        assert size < 150_000 + 2 * 100_000 + 5_000
    else:
        assert size < 5_000, size


def test_a_rollback_snapshot_holds_what_it_writes_and_restores_not_what_it_leaves() -> None:
    dep = huge_deployment()
    history = [
        replica_set("1", "web:v1", **{"example.com/big": "y" * 100_000}),
        replica_set("2", "web:v2", **{"example.com/big": "y" * 100_000}),
    ]
    dep["metadata"]["annotations"].pop("kubectl.kubernetes.io/last-applied-configuration")
    snap = take_snapshot(
        spec({"rollback": {}}), World(target=dep, replica_sets=history), mitigation="m1", now=NOW
    )
    wire = snap.to_status()
    assert "managedFields" not in json.dumps(wire)
    assert snap.action.rollback.restore == {
        "kubernetes.io/change-cause": "deploy v2",
        "team": "payments",
    }  # the big annotation is the same in revision 1: the rollback does not change it
    assert len(json.dumps(wire)) < 100_000 + 5_000


def old_shape(s: MitigationSpec, w: World, new: AnySnapshot) -> dict[str, Any]:
    """``status.snapshot`` as Stanch wrote it before the typed snapshot: full copies."""

    def stripped(obj: Any) -> Any:
        if obj is None:
            return None
        out = copy.deepcopy(dict(obj))
        out.pop("status", None)
        out["metadata"].pop("managedFields", None)
        return out

    raw: dict[str, Any] = {
        "takenAt": new.taken_at,
        "target": stripped(w.target),
        "hpa": stripped(w.hpa),
        "lockedGeneration": new.common.locked_generation,
        "heldAnnotations": new.common.held_annotations,
    }
    part = new.action.model_dump(by_alias=True, mode="json")
    if "rollback" in part:
        rs = next(r for r in w.replica_sets if r["metadata"]["name"] == part["rollback"]["replicaSet"])
        part["rollback"] = {
            "revision": part["rollback"]["revision"],
            "replicaSet": part["rollback"]["replicaSet"],
            "template": part["rollback"]["template"],
            "annotations": rs["metadata"]["annotations"],
        }
    return {**raw, **part}


@pytest.mark.parametrize("case", CASES)
def test_an_older_snapshot_in_status_reads_into_the_same_plan_and_revert(case: str) -> None:
    action, with_hpa = CASES[case]
    s = spec(action)
    dep = deployment("web:v2")
    dep["metadata"]["annotations"][LOCK_ANNOTATION] = "m1"
    dep["metadata"]["annotations"][FLUX_RECONCILE_ANNOTATION] = "disabled"
    w = world(dep, hpa=with_hpa)
    new = take_snapshot(s, w, mitigation="m1", now=NOW).locked(7, {FLUX_RECONCILE_ANNOTATION: "disabled"})
    old = old_shape(s, w, new)
    assert "version" not in old
    assert new.to_status()["version"] == SNAPSHOT_VERSION
    p_new = plan(s, new.to_status(), mitigation="m1", mitigation_uid="u")
    p_old = plan(s, old, mitigation="m1", mitigation_uid="u")
    assert p_old == p_new
    assert revert_effects(p_old, old, applied_generation=9, at=NOW) == revert_effects(
        p_new, new, applied_generation=9, at=NOW
    )
