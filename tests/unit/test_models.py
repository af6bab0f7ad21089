"""The resource models: round-trips, defaults, bounds, and validation errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from stanch import GROUP, VERSION
from stanch.core.models import (
    AUDIT_MAX,
    BUILTIN_GUARD,
    OBSERVATIONS_MAX,
    TIMELINE_MAX,
    ActionKind,
    AuditEntry,
    CheckVerdict,
    ClusterMitigationPolicy,
    FreezeWindow,
    GuardSpec,
    Hypothesis,
    HypothesisCategory,
    Incident,
    IncidentStatus,
    Mitigation,
    MitigationMode,
    MitigationPhase,
    MitigationPolicy,
    MitigationSpec,
    MitigationStatus,
    NoDataAction,
    Observation,
    Severity,
    TimelineEntry,
    TimelineKind,
    error_paths,
    format_duration,
    parse_duration,
)

NOW = datetime(2025, 3, 14, 9, 41, tzinfo=UTC)


def mitigation(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": "m", "namespace": "shop"},
        "spec": {"target": {"name": "checkout"}, **spec},
    }


def paths_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return error_paths(exc.value)


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h5s", timedelta(hours=2, seconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "1m1h", "1.5h", "-5m", "5ms", "1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_duration_field_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ValidationError) as exc:
        Mitigation.model_validate(mitigation(rollback={}, guard={"bakeTime": "five minutes"}))
    assert paths_of(exc) == ["spec.guard.bakeTime"]


# --- round trips and defaults -------------------------------------------------------------------


def test_incident_defaults() -> None:
    inc = Incident.model_validate({"metadata": {"name": "i"}, "spec": {"target": {"name": "checkout"}}})
    assert inc.api_version == f"{GROUP}/{VERSION}"
    assert inc.spec.severity is Severity.SEV3
    assert inc.spec.lookback == "30m"
    assert inc.spec.mitigation.mode is MitigationMode.SUGGEST
    assert inc.spec.resolved is False
    assert inc.spec.target.kind.value == "Deployment"
    assert inc.spec.target.namespace is None


def test_mitigation_defaults_and_action() -> None:
    mit = Mitigation.model_validate(mitigation(scale={"replicas": 4}))
    assert mit.spec.action is ActionKind.SCALE
    assert mit.spec.dry_run is False
    assert mit.spec.revert_on_delete is True
    assert mit.spec.temporary is False
    assert mit.spec.guard == GuardSpec()


def test_round_trip_is_lossless_and_camel_case() -> None:
    raw = mitigation(
        canary={"image": "api:1.5.1", "env": [{"name": "FEATURE_X", "value": "off"}], "replicas": 2},
        dryRun=True,
        incidentRef={"name": "checkout-5xx"},
    )
    model = Mitigation.model_validate(raw)
    wire = model.to_dict()
    assert wire["spec"]["dryRun"] is True
    assert wire["spec"]["incidentRef"] == {"name": "checkout-5xx"}
    assert "rollback" not in wire["spec"]  # unset options are omitted, never null
    assert Mitigation.model_validate(wire) == model
    assert Mitigation.model_validate(model.model_dump(by_alias=False)) == model  # by name too


def test_status_round_trip_with_kopf_state() -> None:
    status = MitigationStatus.model_validate(
        {
            "phase": "Baking",
            "action": "Rollback",
            "snapshot": {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}},
            "kopf": {"progress": {"mitigate": {"started": "2025-03-14T09:41:00Z", "retries": 1}}},
            "audit": [{"time": NOW.isoformat(), "actor": "stanch", "event": "Applied", "toPhase": "Baking"}],
        }
    )
    assert status.phase is MitigationPhase.BAKING
    assert status.snapshot is not None
    assert status.snapshot["spec"] == {"replicas": 3}
    wire = status.to_dict()
    assert wire["kopf"]["progress"]["mitigate"]["retries"] == 1
    assert wire["audit"][0]["time"] == "2025-03-14T09:41:00Z"
    assert MitigationStatus.model_validate(wire) == status


def test_unknown_fields_are_rejected_naming_them() -> None:
    with pytest.raises(ValidationError) as exc:
        Mitigation.model_validate(mitigation(rollback={}, dryrun=True))
    assert paths_of(exc) == ["spec.dryrun"]


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        Incident.model_validate({"spec": {"target": {"name": "x"}, "startedAt": "2025-03-14T09:41:00"}})
    assert paths_of(exc) == ["spec.startedAt"]


# --- validation errors name the field -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"scale": {"replicas": -1}}, "spec.scale.replicas", "greater than or equal"),
        ({"scale": {}}, "spec.scale", "exactly one of replicas or factor"),
        ({"scale": {"replicas": 2, "factor": 1.5}}, "spec.scale", "exactly one of replicas or factor"),
        ({}, "spec", "exactly one action"),
        ({"rollback": {}, "pause": {}}, "spec", "exactly one action"),
        ({"canary": {"replicas": 1}}, "spec.canary", "image, an env patch or args"),
        ({"canary": {"image": "x", "env": [{"name": "1bad"}]}}, "spec.canary.env[0].name", "pattern"),
        ({"evacuate": {"node": "Node_1"}}, "spec.evacuate.node", "pattern"),
        ({"rollback": {"toRevision": 0}}, "spec.rollback.toRevision", "greater than or equal"),
        (
            {"rollback": {}, "guard": {"bakeTime": "10s", "interval": "30s"}},
            "spec.guard",
            "at least one interval",
        ),
        ({"rollback": {}, "guard": {"noData": "Ignore"}}, "spec.guard.noData", "Hold"),
        ({"restart": {"pods": [f"p{i}" for i in range(51)]}}, "spec.restart.pods", "at most 50"),
    ],
)
def test_mitigation_errors_name_the_field(spec: dict[str, Any], path: str, message: str) -> None:
    raw = mitigation(**spec)
    if "target" not in spec:
        raw["spec"]["target"] = {"name": "checkout"}
    with pytest.raises(ValidationError) as exc:
        Mitigation.model_validate(raw)
    assert path in paths_of(exc)
    assert message in str(exc.value)


def test_missing_target_is_named() -> None:
    with pytest.raises(ValidationError) as exc:
        Mitigation.model_validate({"spec": {"rollback": {}}})
    assert paths_of(exc) == ["spec.target"]


def test_policy_errors_name_the_field() -> None:
    base: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {}}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"actions": [{"action": "Rollback", "tier": "Sometimes"}]}, "spec.actions[0].tier", "Auto"),
        (
            {
                "actions": [
                    {"action": "Scale", "tier": "Auto", "limits": {"minReplicas": 5, "maxReplicas": 2}}
                ]
            },
            "spec.actions[0].limits",
            "minReplicas",
        ),
        (
            {"actions": [{"action": "Rollback", "tier": "Auto"}, {"action": "Rollback", "tier": "Manual"}]},
            "spec",
            "duplicate action",
        ),
        (
            {
                "freezeWindows": [
                    {"name": "x", "start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
                ]
            },
            "spec.freezeWindows[0]",
            "end must be after start",
        ),
        ({"freezeWindows": [{"name": "x"}]}, "spec.freezeWindows[0]", "either start and end, or schedule"),
        (
            {"freezeWindows": [{"name": "x", "start": "2025-01-02T00:00:00Z"}]},
            "spec.freezeWindows[0]",
            "together",
        ),
        (
            {
                "freezeWindows": [
                    {"name": "x", "schedule": {"days": ["Fri"], "startTime": "25:00", "duration": "1h"}}
                ]
            },
            "spec.freezeWindows[0].schedule.startTime",
            "pattern",
        ),
        (
            {"autoMitigation": [{"category": "RecentDeploy", "minConfidence": 101, "action": "Rollback"}]},
            "spec.autoMitigation[0].minConfidence",
            "less than or equal",
        ),
        (
            {"autoMitigation": [{"category": "RecentDeploy", "action": "Rollback", "tier": "Forbidden"}]},
            "spec.autoMitigation[0].tier",
            "Auto",
        ),
        (
            {"signals": [{"name": "error-ratio", "kind": "ErrorRatio", "query": "up"}]},
            "spec.signals[0].name",
            "pattern",
        ),
    ]
    for spec, path, message in cases:
        with pytest.raises(ValidationError) as exc:
            MitigationPolicy.model_validate({**base, "spec": spec})
        assert path in paths_of(exc), (spec, paths_of(exc))
        assert message in str(exc.value), (spec, str(exc.value))


def test_cluster_policy_shares_the_spec() -> None:
    pol = ClusterMitigationPolicy.model_validate(
        {"metadata": {"name": "c"}, "spec": {"selector": {"namespaces": ["staging"]}}}
    )
    assert pol.kind == "ClusterMitigationPolicy"
    assert pol.spec.selector.namespaces == ["staging"]


def test_freeze_window_forms() -> None:
    FreezeWindow.model_validate({"name": "a", "start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"})
    FreezeWindow.model_validate(
        {"name": "b", "schedule": {"days": ["Sat", "Sun"], "startTime": "00:00", "duration": "24h"}}
    )


# --- bounded status (design invariant 8) ---------------------------------------------------------


def test_status_lists_are_truncated_on_validation_keeping_the_newest() -> None:
    entries = [
        {"time": (NOW + timedelta(seconds=i)).isoformat(), "actor": "stanch", "event": f"E{i}"}
        for i in range(AUDIT_MAX + 10)
    ]
    status = MitigationStatus.model_validate({"audit": entries})
    assert len(status.audit) == AUDIT_MAX
    assert status.audit[-1].event == f"E{AUDIT_MAX + 9}"
    assert status.audit[0].event == "E10"


def test_status_lists_are_truncated_on_dump_after_in_place_appends() -> None:
    status = MitigationStatus()
    for i in range(OBSERVATIONS_MAX + 5):
        status.observations.append(Observation(time=NOW + timedelta(seconds=30 * i), check=CheckVerdict.PASS))
    wire = status.to_dict()
    assert len(wire["observations"]) == OBSERVATIONS_MAX
    assert wire["observations"][-1]["time"] == (
        NOW + timedelta(seconds=30 * (OBSERVATIONS_MAX + 4))
    ).isoformat().replace("+00:00", "Z")


def test_ranked_lists_keep_the_head() -> None:
    hyps = [
        Hypothesis(category=HypothesisCategory.UNKNOWN, statement=f"h{i}", confidence=100 - i).model_dump()
        for i in range(20)
    ]
    status = IncidentStatus.model_validate({"hypotheses": hyps})
    assert [h.statement for h in status.hypotheses] == [f"h{i}" for i in range(8)]


def test_timeline_cap() -> None:
    entries = [
        TimelineEntry(time=NOW + timedelta(seconds=i), kind=TimelineKind.POD_EVENT, summary=str(i))
        for i in range(TIMELINE_MAX * 2)
    ]
    status = IncidentStatus(timeline=entries)
    assert len(status.to_dict()["timeline"]) == TIMELINE_MAX


def test_audit_entry_phases_are_typed() -> None:
    entry = AuditEntry.model_validate(
        {
            "time": NOW.isoformat(),
            "actor": "alice",
            "event": "Approved",
            "fromPhase": "AwaitingApproval",
            "toPhase": "Baseline",
            "reason": "approved by alice",
        }
    )
    assert entry.from_phase is MitigationPhase.AWAITING_APPROVAL
    with pytest.raises(ValidationError) as exc:
        AuditEntry.model_validate({"time": NOW.isoformat(), "actor": "a", "event": "X", "toPhase": "Done"})
    assert paths_of(exc) == ["toPhase"]


# --- guards ---------------------------------------------------------------------------------------


def test_guard_merges_over_policy_and_builtin_defaults() -> None:
    policy = GuardSpec(bake_time="10m", no_data=NoDataAction.REVERT)
    mine = GuardSpec(interval="15s")
    effective = mine.merged_over(policy.merged_over(BUILTIN_GUARD))
    assert effective.interval == "15s"
    assert effective.bake_time == "10m"
    assert effective.no_data is NoDataAction.REVERT
    assert effective.baseline_window == "10m"
    assert effective.failure_limit == 2


def test_spec_action_property() -> None:
    for key, kind in [("rollback", ActionKind.ROLLBACK), ("pause", ActionKind.PAUSE)]:
        spec = MitigationSpec.model_validate({"target": {"name": "x"}, key: {}})
        assert spec.action is kind
