"""The ConfigMap memory: values of referenced ConfigMaps as last seen, so a flip reads OLD → NEW."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stanch.core.investigation.analysis.rules import key_change
from stanch.core.investigation.config_memory import (
    KEYS_MAX,
    VALUE_MAX,
    ConfigMapMemory,
    HpaMemory,
    describe_hpa_changes,
    describe_key_changes,
    parse_hpa_change,
    referenced_config_maps,
)
from stanch.core.models import ConfigChange, ObjectRef

CREATED = "2024-05-01T12:00:00Z"


def cm(
    data: dict[str, str], rv: str, *, writers: Sequence[tuple[str, str, list[str]]] = (), name: str = "flags"
) -> dict[str, Any]:
    """A ConfigMap as the API returns it; ``writers`` are managedFields (manager, time, data keys)."""
    managed = [
        {
            "manager": manager,
            "operation": "Update",
            "time": time,
            "fieldsV1": {"f:data": {f"f:{k}": {} for k in keys}},
        }
        for manager, time, keys in writers
    ]
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": rv,
            "creationTimestamp": CREATED,
            "managedFields": managed,
        },
        "data": data,
    }


def test_a_remembered_flip_reads_old_to_new() -> None:
    memory = ConfigMapMemory()
    memory.observe(cm({"new-pricing": "false", "currency": "EUR"}, "1"))
    memory.observe(
        cm(
            {"new-pricing": "true", "currency": "EUR"},
            "2",
            writers=[("kubectl-patch", "2024-05-01T12:10:00Z", ["new-pricing"])],
        )
    )
    assert memory.describe("shop", "flags") == "key new-pricing: false → true (updated by kubectl-patch)"
    # the same version seen again (a re-list) changes nothing
    memory.observe(cm({"new-pricing": "true", "currency": "EUR"}, "2"))
    assert memory.describe("shop", "flags") == "key new-pricing: false → true (updated by kubectl-patch)"


def test_an_unchanged_resync_keeps_the_previous_values() -> None:
    memory = ConfigMapMemory()
    memory.observe(cm({"a": "1"}, "1"))
    memory.observe(cm({"a": "2"}, "2"))
    memory.observe(cm({"a": "2"}, "3"))  # metadata-only update
    assert memory.describe("shop", "flags") == "key a: 1 → 2"


def test_without_history_managed_fields_name_the_key_and_the_new_value() -> None:
    memory = ConfigMapMemory()
    memory.observe(
        cm(
            {"new-pricing": "true", "currency": "EUR"},
            "7",
            writers=[
                ("kubectl-create", CREATED, ["new-pricing", "currency"]),
                ("kubectl-patch", "2024-05-01T12:10:00Z", ["new-pricing"]),
            ],
        )
    )
    assert memory.describe("shop", "flags") == "key new-pricing changed to true (updated by kubectl-patch)"


def test_no_single_key_no_description() -> None:
    memory = ConfigMapMemory()
    memory.observe(cm({"a": "1", "b": "1"}, "1"))
    memory.observe(cm({"a": "2", "b": "2"}, "2"))
    assert memory.describe("shop", "flags") is None
    fresh = ConfigMapMemory()
    fresh.observe(cm({"a": "2", "b": "2"}, "9", writers=[("apply", "2024-05-01T12:10:00Z", ["a", "b"])]))
    assert fresh.describe("shop", "flags") is None
    assert memory.describe("shop", "unknown") is None


def test_values_are_bounded_and_long_ones_are_never_compared() -> None:
    memory = ConfigMapMemory(limit=2)
    long = "x" * (VALUE_MAX + 1)
    memory.observe(cm({"blob": long}, "1"))
    memory.observe(cm({"blob": long + "y"}, "2"))
    seen = memory.get("shop", "flags")
    assert seen is not None
    assert seen.data == {"blob": None}
    assert memory.describe("shop", "flags") is None
    memory.observe(cm({f"k{i}": "v" for i in range(KEYS_MAX + 10)}, "3", name="wide"))
    wide = memory.get("shop", "wide")
    assert wide is not None
    assert len(wide.data) == KEYS_MAX
    memory.observe(cm({"a": "1"}, "4", name="third"))
    assert len(memory) == 2
    assert memory.get("shop", "flags") is None  # least recently changed dropped first


def test_values_with_spaces_are_quoted_so_the_rule_reads_them_back() -> None:
    memory = ConfigMapMemory()
    memory.observe(cm({"banner": "hello world"}, "1"))
    memory.observe(cm({"banner": ""}, "2"))
    text = memory.describe("shop", "flags")
    assert text == 'key banner: "hello world" → ""'
    change = ConfigChange(object=ObjectRef(kind="ConfigMap", name="flags"), summary=text)
    found = key_change(change)
    assert found is not None
    assert (found.key, found.old, found.new) == ("banner", "hello world", "")


def test_describe_key_changes_rewrites_only_configmaps_it_can_tell() -> None:
    memory = ConfigMapMemory()
    memory.observe(cm({"new-pricing": "false"}, "1"))
    memory.observe(cm({"new-pricing": "true"}, "2"))
    when = datetime(2024, 5, 1, 12, 10, tzinfo=UTC)
    changes = [
        ConfigChange(
            object=ObjectRef(kind="ConfigMap", name="flags", namespace="shop"),
            changed_at=when,
            summary="ConfigMap flags (1 keys): data updated by kubectl-patch",
        ),
        ConfigChange(
            object=ObjectRef(kind="ConfigMap", name="other", namespace="shop"),
            changed_at=when,
            summary="ConfigMap other (3 keys): data updated by helm",
        ),
        ConfigChange(object=ObjectRef(kind="Service", name="flags", namespace="shop"), changed_at=when),
    ]
    out = describe_key_changes(changes, "shop", memory)
    assert [c.summary for c in out] == [
        "key new-pricing: false → true",
        "ConfigMap other (3 keys): data updated by helm",
        "",
    ]


def test_referenced_config_maps_come_from_pod_templates() -> None:
    template = {
        "spec": {
            "volumes": [{"configMap": {"name": "flags"}}, {"secret": {"secretName": "db"}}],
            "containers": [{"envFrom": [{"configMapRef": {"name": "env"}}]}],
        }
    }
    assert referenced_config_maps([template, {}]) == frozenset({"flags", "env"})


# --- HorizontalPodAutoscalers ---------------------------------------------------------------------


def hpa(
    rv: str, *, min_replicas: int = 2, max_replicas: int = 10, cpu: int = 50, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "namespace": "shop", "resourceVersion": rv},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}},
                }
            ],
            **spec,
        },
        "status": {"currentReplicas": int(rv)},
    }


def hpa_change_entry(summary: str) -> ConfigChange:
    return ConfigChange(
        object=ObjectRef(kind="HorizontalPodAutoscaler", name="api", namespace="shop"),
        changed_at=datetime(2024, 5, 1, 12, 10, tzinfo=UTC),
        summary=summary,
        referenced=True,
    )


def test_an_hpa_spec_change_is_remembered_across_status_only_updates() -> None:
    memory = HpaMemory()
    memory.observe(hpa("1"))
    assert memory.change("shop", "api") is None, "never seen changing"
    memory.observe(hpa("2", max_replicas=3, cpu=90))
    # The controller's status writes afterwards (new resourceVersions, same spec) keep the change.
    memory.observe(hpa("3", max_replicas=3, cpu=90))
    memory.observe(hpa("4", max_replicas=3, cpu=90))
    change = memory.change("shop", "api")
    assert change is not None
    assert change.bounds == (("maxReplicas", 10, 3),)
    assert change.targets == (("cpu", 50, 90),)
    assert change.unrestorable == ()
    assert change.describe() == "maxReplicas 10 → 3, cpu utilization 50% → 90%"


def test_the_summary_carries_the_old_values_and_reads_back_exactly() -> None:
    memory = HpaMemory()
    memory.observe(hpa("1"))
    memory.observe(hpa("2", min_replicas=1, max_replicas=3, cpu=90))
    collected = hpa_change_entry(
        "HPA api: 1..3 replicas, current 3, desired 3; spec updated by kubectl-patch (Update)"
    )
    (described,) = describe_hpa_changes([collected], "shop", memory)
    assert described.summary == (
        "HPA api spec changed: minReplicas 2 → 1, maxReplicas 10 → 3, cpu utilization 50% → 90%;"
        " now 1..3 replicas, current 3, desired 3; spec updated by kubectl-patch (Update)"
    )
    parsed = parse_hpa_change(described.summary)
    assert parsed == memory.change("shop", "api")
    # A rescale is not a spec change: its summary is left alone.
    rescale = hpa_change_entry("HPA api: 1..3 replicas, current 3, desired 3; last scaled")
    assert describe_hpa_changes([rescale], "shop", memory) == [rescale]
    assert parse_hpa_change(rescale.summary) is None


def test_what_the_autoscaler_action_cannot_restore_is_named() -> None:
    memory = HpaMemory()
    memory.observe(hpa("1"))
    memory.observe(hpa("2", behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}))
    change = memory.change("shop", "api")
    assert change is not None
    assert change.bounds == ()
    assert change.unrestorable == ("other spec fields (metrics, behavior or scale target) changed",)
    memory.observe(hpa("3", metrics=[]))  # the CPU metric removed
    assert memory.change("shop", "api").unrestorable[0] == "utilization metrics cpu → "  # type: ignore[union-attr]


def test_the_hpa_memory_is_bounded_and_forgets() -> None:
    memory = HpaMemory(limit=2)
    for name in ("a", "b", "c"):
        obj = hpa("1")
        obj["metadata"]["name"] = name
        memory.observe(obj)
    assert len(memory) == 2
    memory.forget("shop", "c")
    assert len(memory) == 1
