"""Attribution names the writer of a configuration change from managedFields: the newest entry owning
spec (a ConfigMap's data), never a status writer nor a manager that touched only metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stanch.core.investigation.attribution import config_writer, config_writers
from stanch.core.investigation.gathering import config_changes, last_change, rollout_history

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(
    manager: str, at: float, fields: dict[str, Any], operation: str = "Update", **extra: Any
) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "autoscaling/v2",
        "time": ts(at),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


CREATE = entry(
    "kubectl-client-side-apply",
    0,
    {
        "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
        "f:spec": {"f:maxReplicas": {}, "f:minReplicas": {}, "f:metrics": {}, "f:scaleTargetRef": {}},
    },
)
PATCH = entry("kubectl-patch", 100, {"f:spec": {"f:maxReplicas": {}}})
STATUS = entry(
    "kube-controller-manager",
    130,
    {"f:status": {"f:currentReplicas": {}, "f:desiredReplicas": {}, "f:lastScaleTime": {}}},
    subresource="status",
)
LABELS = entry("kubectl-label", 160, {"f:metadata": {"f:labels": {"f:team": {}}}})


def hpa(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "creationTimestamp": ts(0),
            "managedFields": list(entries),
        },
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 3},
        "status": {"lastScaleTime": ts(115), "currentReplicas": 3, "desiredReplicas": 3},
    }


def test_the_spec_writer_is_named_not_the_later_status_writer_nor_a_label_change() -> None:
    obj = hpa(CREATE, PATCH, STATUS, LABELS)
    writer = config_writer(obj)
    assert writer is not None
    assert (writer.manager, writer.operation, writer.time, writer.fields) == (
        "kubectl-patch",
        "Update",
        T0 + timedelta(seconds=100),
        ("maxReplicas",),
    )
    assert last_change(obj, "HorizontalPodAutoscaler") == (
        T0 + timedelta(seconds=100),
        "spec updated by kubectl-patch (Update)",
    )
    assert [w.manager for w in config_writers(obj)] == ["kubectl-patch", "kubectl-client-side-apply"]


def test_server_side_apply_is_named_with_its_operation() -> None:
    applied = entry("argocd-controller", 200, {"f:spec": {"f:maxReplicas": {}, "f:minReplicas": {}}}, "Apply")
    writer = config_writer(hpa(CREATE, PATCH, STATUS, applied))
    assert writer is not None
    assert writer.describe() == "spec updated by argocd-controller (Apply)"
    assert writer.fields == ("maxReplicas", "minReplicas")


def test_only_the_creation_and_status_writes_mean_no_change() -> None:
    obj = hpa(CREATE, STATUS, LABELS)
    assert config_writer(obj) is None
    assert last_change(obj, "HorizontalPodAutoscaler") == (T0, "created")


def test_a_status_writer_owning_spec_like_paths_under_status_is_still_a_status_writer() -> None:
    # A status write through the main resource (old clients) owns f:status, not f:spec: never named.
    old_client = entry("kube-controller-manager", 300, {"f:status": {"f:currentReplicas": {}}})
    assert config_writer(hpa(CREATE, PATCH, old_client)).manager == "kubectl-patch"  # type: ignore[union-attr]


def test_a_scale_through_the_scale_subresource_is_a_spec_write() -> None:
    scaled = entry("kubectl", 250, {"f:spec": {"f:replicas": {}}}, subresource="scale")
    deployment = {
        "kind": "Deployment",
        "metadata": {"creationTimestamp": ts(0), "managedFields": [CREATE, scaled, STATUS]},
    }
    writer = config_writer(deployment)
    assert writer is not None
    assert writer.describe() == "spec updated by kubectl (Update) via /scale"


def test_a_config_map_is_attributed_by_its_data_not_by_a_later_annotation_writer() -> None:
    cm = {
        "kind": "ConfigMap",
        "metadata": {
            "creationTimestamp": ts(0),
            "managedFields": [
                entry("helm", 0, {"f:data": {"f:a": {}, "f:b": {}}}),
                entry("kubectl-patch", 50, {"f:data": {"f:b": {}}}),
                entry("kubectl-annotate", 90, {"f:metadata": {"f:annotations": {"f:note": {}}}}),
            ],
        },
        "data": {"a": "1", "b": "2"},
    }
    assert last_change(cm, "ConfigMap") == (
        T0 + timedelta(seconds=50),
        "data updated by kubectl-patch (Update)",
    )
    writer = config_writer(cm)
    assert writer is not None
    assert writer.fields == ("b",)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_equal_times_pick_the_later_entry_whatever_the_order_given(order: tuple[int, int]) -> None:
    both = [entry("first", 100, {"f:spec": {"f:a": {}}}), entry("second", 100, {"f:spec": {"f:b": {}}})]
    obj = {"metadata": {"creationTimestamp": ts(0), "managedFields": [both[i] for i in order]}}
    assert config_writer(obj).manager == both[order[1]]["manager"]  # type: ignore[union-attr]


def test_the_collector_reports_an_hpa_spec_change_at_its_time_even_when_the_hpa_rescaled_after() -> None:
    changes = config_changes(
        namespace="shop",
        template={"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}},
        deployment_name="api",
        config_maps=[],
        services=[],
        endpoint_slices=[],
        hpas=[hpa(CREATE, PATCH, STATUS, LABELS)],
        quotas=[],
        limit_ranges=[],
        since=T0 + timedelta(seconds=50),
    )
    (change,) = changes
    assert change.changed_at == T0 + timedelta(seconds=100)
    assert "spec updated by kubectl-patch (Update)" in change.summary
    assert "kube-controller-manager" not in change.summary
    assert "last scaled" not in change.summary
    # Before the window, the rescale is what is news (as before).
    old = config_changes(
        namespace="shop",
        template={"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}},
        deployment_name="api",
        config_maps=[],
        services=[],
        endpoint_slices=[],
        hpas=[hpa(CREATE, PATCH, STATUS)],
        quotas=[],
        limit_ranges=[],
        since=T0 + timedelta(seconds=110),
    )
    assert old[0].changed_at == T0 + timedelta(seconds=115)
    assert "last scaled" in old[0].summary


def replica_set(revision: int, created: float) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{revision}",
            "creationTimestamp": ts(created),
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Deployment", "uid": "dep-uid", "controller": True}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": f"web:{revision}"}]}}},
    }


TEMPLATE: dict[str, Any] = {"f:template": {"f:spec": {"f:containers": {}}}}


def deployment(*entries: dict[str, Any], revision: int = 2) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "uid": "dep-uid",
            "creationTimestamp": ts(0),
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "managedFields": list(entries),
        },
        "spec": {"template": replica_set(revision, 0)["spec"]["template"]},
    }


def test_the_current_revision_names_the_writer_of_the_pod_template_only() -> None:
    entries = (
        entry("kubectl-client-side-apply", 0, {"f:spec": {"f:replicas": {}, **TEMPLATE}}),
        entry("kubectl-set", 100, {"f:spec": TEMPLATE}),
        # The HPA resizing through /scale, the controller's status, a label: none wrote the template.
        entry("kube-controller-manager", 150, {"f:spec": {"f:replicas": {}}}, subresource="scale"),
        entry("kube-controller-manager", 160, {"f:status": {"f:replicas": {}}}, subresource="status"),
        entry("kubectl-label", 200, {"f:metadata": {"f:labels": {"f:team": {}}}}),
    )
    history = rollout_history(deployment(*entries), [replica_set(1, 0), replica_set(2, 100)])
    by_revision = {r.revision: r.changed_by for r in history}
    assert by_revision == {2: "kubectl-set (Update)", 1: None}


def test_a_template_write_older_than_the_current_revision_is_not_its_writer() -> None:
    # Revision 2 was made by something that left no template entry newer than it (e.g. the
    # manager's entry was since taken over): naming the older writer would be a false attribution.
    entries = (entry("helm", 0, {"f:spec": TEMPLATE}, "Apply"),)
    history = rollout_history(deployment(*entries), [replica_set(1, 0), replica_set(2, 100)])
    assert [r.changed_by for r in history] == [None, None]
    created = rollout_history(deployment(*entries, revision=1), [replica_set(1, 0)])
    assert created[0].changed_by == "helm (Apply)"
