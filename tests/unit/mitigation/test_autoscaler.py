"""The Autoscaler action: the way back from a bad HPA change, written to the HPA (never to the replicas
it owns), each field conditional on the value recorded, reverted only while ours is in place."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from stanch.core.effects import Patch
from stanch.core.machine.observations import World
from stanch.core.models import MitigationSpec
from stanch.core.plans import (
    PlanError,
    detect_drift,
    is_applied,
    plan,
    preconditions_hold,
    read_snapshot,
    revert_effects,
    starts_pods,
    take_snapshot,
)
from stanch.core.plans.jsonpatch import PatchError, apply_ops

from .fixtures import deployment

NOW = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)


def hpa(min_replicas: int = 2, max_replicas: int = 3, cpu: int = 90) -> dict[str, Any]:
    """An HPA after a bad change: maxReplicas lowered, the CPU target raised."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop", "uid": "hpa-uid", "resourceVersion": "7"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "rps"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}},
                },
            ],
        },
        "status": {"currentReplicas": 3, "desiredReplicas": 3},
    }


def spec(**autoscaler: Any) -> MitigationSpec:
    return MitigationSpec.model_validate({"target": {"name": "web"}, "autoscaler": autoscaler})


RESTORE = {"maxReplicas": 10, "targetUtilization": [{"resource": "cpu", "averageUtilization": 50}]}


def planned(s: MitigationSpec, live_hpa: dict[str, Any]) -> tuple[Any, Any]:
    snap = take_snapshot(s, World(target=deployment(replicas=3), hpa=live_hpa), mitigation="m1", now=NOW)
    return snap, plan(s, snap, mitigation="m1", mitigation_uid="mit-uid")


def server(obj: dict[str, Any], effect: Any) -> dict[str, Any]:
    """The API server applying our JSON patch, tests included."""
    assert isinstance(effect, Patch)
    return apply_ops(obj, effect.wire_ops())


def test_it_writes_only_the_fields_asked_for_to_the_hpa_each_tested_on_its_recorded_value() -> None:
    s = spec(**RESTORE)
    snap, p = planned(s, hpa())
    (write,) = p.apply
    assert write.key.kind == "HorizontalPodAutoscaler"
    assert write.ops == (
        {"op": "replace", "path": "/spec/maxReplicas", "value": 10},
        {"op": "add", "path": "/spec/metrics/1/resource/target/averageUtilization", "value": 50},
    )
    assert write.precondition.uid == "hpa-uid"
    assert write.precondition.tests == (
        ("/spec/maxReplicas", 3),
        ("/spec/metrics/1/resource/name", "cpu"),
        ("/spec/metrics/1/resource/target/averageUtilization", 90),
    )
    assert p.changes == ("maxReplicas 3 → 10", "cpu utilization target 90% → 50%")
    after = server(hpa(), write)
    assert after["spec"]["maxReplicas"] == 10
    assert after["spec"]["minReplicas"] == 2
    assert after["spec"]["metrics"][0] == hpa()["spec"]["metrics"][0]
    assert is_applied(p.apply, World(target=deployment(), hpa=after))
    # Recomputed from the persisted snapshot after a crash: the very same write.
    assert plan(s, read_snapshot(s, snap.to_status()), mitigation="m1", mitigation_uid="mit-uid") == p
    # Sent again after it landed: the server refuses it (the tests fail), nothing is written twice.
    with pytest.raises(PatchError):
        server(after, write)


def test_the_revert_restores_the_recorded_values_and_only_while_ours_are_in_place() -> None:
    s = spec(minReplicas=4, **RESTORE)
    snap, p = planned(s, hpa())
    after = server(hpa(), p.apply[0])
    (undo,) = revert_effects(p, snap, applied_generation=None, at=NOW)
    back = server(after, undo)
    assert back["spec"] == hpa()["spec"]
    # Someone raised maxReplicas again after us: the revert's precondition fails, their change stays.
    theirs = copy.deepcopy(after)
    theirs["spec"]["maxReplicas"] = 20
    assert not preconditions_hold((undo,), World(target=deployment(), hpa=theirs))
    with pytest.raises(PatchError):
        server(theirs, undo)
    assert "Stanch wrote 10, now 20" in (
        detect_drift(s, snap, p, World(target=deployment(), hpa=theirs)) or ""
    )
    # Metrics reordered since (index 1 is no longer cpu): drift, never a write to another metric.
    reordered = copy.deepcopy(after)
    reordered["spec"]["metrics"].reverse()
    assert not preconditions_hold((undo,), World(target=deployment(), hpa=reordered))
    assert detect_drift(s, snap, p, World(target=deployment(), hpa=after)) is None


def test_nothing_to_do_when_the_hpa_already_has_the_values() -> None:
    _, p = planned(spec(**RESTORE), hpa(max_replicas=10, cpu=50))
    assert p.apply == ()
    assert p.noop_reason == "already applied"


@pytest.mark.parametrize(
    ("action", "live", "message"),
    [
        (RESTORE, None, "no HorizontalPodAutoscaler targets Deployment"),
        (
            {"targetUtilization": [{"resource": "memory", "averageUtilization": 60}]},
            hpa(),
            "spec.autoscaler.targetUtilization[0].resource 'memory'",
        ),
        (
            {"minReplicas": 5},
            hpa(),
            "spec.autoscaler.minReplicas: the HPA would end with minReplicas 5 above",
        ),
        (
            {"maxReplicas": 1},
            hpa(),
            "spec.autoscaler.maxReplicas: the HPA would end with minReplicas 2 above",
        ),
    ],
)
def test_what_cannot_be_planned_names_the_field_and_the_fix(
    action: dict[str, Any], live: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(PlanError) as err:
        take_snapshot(spec(**action), World(target=deployment(), hpa=live), mitigation="m1", now=NOW)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ({}, "needs minReplicas, maxReplicas or targetUtilization"),
        ({"minReplicas": 5, "maxReplicas": 4}, "must not exceed maxReplicas"),
        (
            {
                "targetUtilization": [
                    {"resource": "cpu", "averageUtilization": 50},
                    {"resource": "cpu", "averageUtilization": 60},
                ]
            },
            "names a resource twice",
        ),
        ({"minReplicas": 0}, "greater than or equal to 1"),
    ],
)
def test_the_model_refuses_an_empty_or_contradictory_request(action: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        spec(**action)


@pytest.mark.parametrize(
    ("action", "want"),
    [
        ({"maxReplicas": 10}, True),  # a higher ceiling under load: the HPA adds pods
        ({"maxReplicas": 2}, False),
        ({"minReplicas": 5, "maxReplicas": 5}, True),
        ({"minReplicas": 1}, False),
        ({"targetUtilization": [{"resource": "cpu", "averageUtilization": 50}]}, True),
        ({"targetUtilization": [{"resource": "cpu", "averageUtilization": 95}]}, False),
    ],
)
def test_which_autoscaler_changes_start_pods(action: dict[str, Any], want: bool) -> None:
    s = spec(**action)
    snap = take_snapshot(s, World(target=deployment(replicas=3), hpa=hpa()), mitigation="m1", now=NOW)
    assert starts_pods(s, snap) is want
