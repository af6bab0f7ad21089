"""Alertmanager → Incident, the pure part: payload validation, label mapping, namespace scope,
one Incident per group and episode, and an order-independent merge of later notifications."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stanch.core.alerting.incidents import (
    EPISODE_LABEL,
    GROUP_LABEL,
    Create,
    Existing,
    Unchanged,
    Update,
    existing_from,
    group_id,
    incident_name,
    merge,
    plan,
    record,
)
from stanch.core.alerting.mapping import (
    LabelMapping,
    Refusal,
    Target,
    group_target,
    parse_label_names,
    severity_of,
    watched,
)
from stanch.core.alerting.payload import MAX_ALERTS, PayloadError, WebhookPayload, parse_payload
from stanch.core.models import Incident
from stanch.core.models.common import DNS_SUBDOMAIN_PATTERN
from stanch.core.models.incident import ALERTS_MAX, AlertState, IncidentSpec, Severity

T0 = datetime(2026, 3, 14, 9, 41, tzinfo=UTC)
MAPPING = LabelMapping()
TARGET = Target("shop", "checkout")


def alert(
    fingerprint: str = "a1",
    status: str = "firing",
    starts: datetime = T0,
    labels: dict[str, str] | None = None,
    **annotations: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "CheckoutErrors",
            "namespace": "shop",
            "deployment": "checkout",
            **(labels or {}),
        },
        "annotations": annotations,
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": (starts + timedelta(minutes=5)).isoformat()
        if status == "resolved"
        else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph?g0.expr=x",
        "fingerprint": fingerprint,
    }


def payload_dict(*alerts: dict[str, Any], status: str | None = None, **extra: Any) -> dict[str, Any]:
    alerts = alerts or (alert(),)
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}/{severity="page"}:'
        '{alertname="CheckoutErrors", deployment="checkout", namespace="shop"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "stanch",
        "groupLabels": {"alertname": "CheckoutErrors", "namespace": "shop", "deployment": "checkout"},
        "commonLabels": {"alertname": "CheckoutErrors", "namespace": "shop", "deployment": "checkout"},
        "commonAnnotations": {"summary": "5xx ratio above 5%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def payload(*alerts: dict[str, Any], **extra: Any) -> WebhookPayload:
    return parse_payload(json.dumps(payload_dict(*alerts, **extra)).encode())


def stored(create: Create, resource_version: str = "1") -> dict[str, Any]:
    """The object as the API server would list it: the body plus a resourceVersion, schema defaults
    applied (the model's round trip)."""
    obj: dict[str, Any] = json.loads(json.dumps(create.body))
    obj["metadata"]["resourceVersion"] = resource_version
    obj["spec"] = IncidentSpec.model_validate(obj["spec"]).to_dict()
    return obj


def existing_of(obj: dict[str, Any]) -> Existing:
    found = existing_from(obj)
    assert found is not None
    return found


def apply(obj: dict[str, Any], update: Update) -> dict[str, Any]:
    """A JSON merge patch of the spec, as the API server applies it."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    for key, value in update.patch["spec"].items():
        out["spec"][key] = value
    out["metadata"]["resourceVersion"] = str(int(out["metadata"]["resourceVersion"]) + 1)
    return out


# --- payload ------------------------------------------------------------------------------------


def test_a_real_alertmanager_payload_parses() -> None:
    p = payload(alert(summary="high"))
    assert p.alerts[0].ended is None
    assert p.alerts[0].starts_at == T0
    assert p.external_url == "http://alertmanager:9093"
    assert p.alerts[0].generator_url.startswith("http://prometheus")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(version="3"), "version"),
        (lambda d: d.update(version=4), "version"),
        (lambda d: d.pop("groupKey"), "groupKey"),
        (lambda d: d.update(status="pending"), "status"),
        (lambda d: d.update(alerts=[]), "alerts"),
        (lambda d: d.update(alerts="nope"), "alerts"),
        (lambda d: d.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda d: d.update(truncatedAlerts="3"), "truncatedAlerts"),
        (lambda d: d["alerts"][0].update(labels={"namespace": 7}), "alerts[0].labels.namespace"),
        (lambda d: d["alerts"][0].update(labels=["a"]), "alerts[0].labels"),
        (lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda d: d["alerts"][0].update(startsAt="2026-03-14T09:41:00"), "alerts[0].startsAt"),
        (lambda d: d["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
        (lambda d: d["alerts"][0].update(fingerprint="../../etc"), "alerts[0].fingerprint"),
        (lambda d: d["alerts"][0].update(status=True), "alerts[0].status"),
        (lambda d: d["alerts"][0].update(labels={f"l{i}": "v" for i in range(100)}), "alerts[0].labels"),
        (lambda d: d.update(groupKey="k" * 5000), "groupKey"),
        (lambda d: d.update(alerts=[alert(fingerprint=f"f{i}") for i in range(MAX_ALERTS + 1)]), "alerts"),
    ],
)
def test_a_malformed_payload_is_refused_naming_the_field(mutate: Any, field: str) -> None:
    body = payload_dict()
    mutate(body)
    with pytest.raises(PayloadError) as caught:
        parse_payload(json.dumps(body).encode())
    assert any(p.startswith(f"{field}:") for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"null", b'"4"', b"{", b"\xff\xfe"])
def test_a_body_that_is_not_an_object_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload(body)
    assert caught.value.problems


def test_unknown_fields_from_a_newer_alertmanager_are_ignored() -> None:
    p = payload(alert(), futureField={"x": 1})
    assert p.version == "4"


# --- mapping ------------------------------------------------------------------------------------


def test_the_first_set_label_of_each_list_names_the_target() -> None:
    mapping = LabelMapping(
        namespace_labels=("exported_namespace", "namespace"), workload_labels=("workload", "deployment")
    )
    p = payload(
        alert(labels={"exported_namespace": "shop", "namespace": "monitoring", "workload": "checkout"})
    )
    assert group_target(p, mapping) == Target("shop", "checkout")
    p = payload(alert(labels={"exported_namespace": "", "workload": " "}))
    assert group_target(p, mapping) == Target("shop", "checkout")


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"namespace": ""}, "NoTarget"),
        ({"deployment": ""}, "NoTarget"),
        ({"namespace": "Shop"}, "InvalidTarget"),
        ({"namespace": "a" * 64}, "InvalidTarget"),
        ({"deployment": "check out"}, "InvalidTarget"),
        ({"deployment": "../etc"}, "InvalidTarget"),
        ({"deployment": "x" * 254}, "InvalidTarget"),
    ],
)
def test_an_alert_without_a_valid_target_is_refused(labels: dict[str, str], reason: str) -> None:
    result = group_target(payload(alert(labels=labels)), MAPPING)
    assert isinstance(result, Refusal)
    assert (result.status, result.reason) == (422, reason)


def test_no_target_names_the_labels_to_add() -> None:
    result = group_target(payload(alert(labels={"deployment": ""})), MAPPING)
    assert isinstance(result, Refusal)
    assert "deployment, workload" in result.message
    assert "--alertmanager-workload-labels" in result.message


def test_a_group_naming_two_workloads_is_refused() -> None:
    p = payload(alert("a1"), alert("a2", labels={"deployment": "cart"}))
    result = group_target(p, MAPPING)
    assert isinstance(result, Refusal)
    assert result.reason == "AmbiguousTarget"
    assert "group_by" in result.message


def test_one_bad_alert_refuses_the_whole_group() -> None:
    p = payload(alert("a1"), alert("a2", labels={"namespace": ""}))
    assert isinstance(group_target(p, MAPPING), Refusal)


@pytest.mark.parametrize(
    ("namespace", "patterns", "expected"),
    [
        ("shop", ["shop"], True),
        ("shop", ["cart"], False),
        ("shop", ["cart", "shop"], True),
        ("team-a", ["team-*"], True),
        ("kube-system", ["!kube-system"], False),
        ("shop", ["!kube-system"], True),
        ("myapp-pr-456", ["myapp-*, !*-pr-*, *pr-123"], False),
        ("myapp-pr-123", ["myapp-*, !*-pr-*, *pr-123"], True),
        ("otherapp-pr-123", ["myapp-*, !*-pr-*, *pr-123"], False),
        ("otherapp-pr-123", ["!*-pr-*, *pr-123"], True),
        ("shop", [], False),
        ("Shop", ["shop"], False),
    ],
)
def test_namespaces_are_matched_like_kopf_matches_them(
    namespace: str, patterns: list[str], expected: bool
) -> None:
    assert watched(namespace, all_namespaces=False, patterns=patterns) is expected
    assert watched(namespace, all_namespaces=True, patterns=[]) is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", Severity.SEV1),
        ("CRITICAL", Severity.SEV1),
        ("page", Severity.SEV1),
        ("error", Severity.SEV2),
        ("warning", Severity.SEV3),
        ("info", Severity.SEV4),
        ("sev2", Severity.SEV2),
        ("whatever", Severity.SEV3),
        ("", None),
    ],
)
def test_severity_labels(value: str, expected: Severity | None) -> None:
    assert severity_of({"severity": value}, MAPPING) is expected


@pytest.mark.parametrize("value", ["", " , ", "a-b", "1abc", "ns.x"])
def test_label_names_are_checked(value: str) -> None:
    with pytest.raises(ValueError, match="label"):
        parse_label_names(value)


def test_label_names_keep_their_order_without_repeats() -> None:
    assert parse_label_names("namespace, exported_namespace,namespace") == ("namespace", "exported_namespace")


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alertname", ["CheckoutErrors", "", "---", "Ünïcode alert!", "x" * 300, "a.b/c", "UPPER_case-99"]
)
@pytest.mark.parametrize("episode", [1, 2, 117])
def test_names_are_valid_object_names_and_stable(alertname: str, episode: int) -> None:
    p = payload(groupLabels={"alertname": alertname})
    name = incident_name(p, episode)
    assert re.fullmatch(DNS_SUBDOMAIN_PATTERN, name), name
    assert len(name) <= 63, name
    assert name == incident_name(payload(groupLabels={"alertname": alertname}), episode)
    assert group_id(p.group_key) in name
    assert name.endswith(f"-{episode}") == (episode > 1)


def test_different_groups_get_different_names() -> None:
    a = payload(groupKey='{}:{alertname="X", deployment="a"}', groupLabels={"alertname": "X"})
    b = payload(groupKey='{}:{alertname="X", deployment="b"}', groupLabels={"alertname": "X"})
    assert incident_name(a, 1) != incident_name(b, 1)


# --- plan ---------------------------------------------------------------------------------------


def test_the_first_notification_files_an_incident() -> None:
    p = payload(alert("a1", labels={"severity": "critical"}, summary="errors"))
    decision = plan(p, TARGET, [], MAPPING)
    assert isinstance(decision, Create)
    incident = Incident.model_validate(decision.body)  # a valid Incident, as the CRD's model says
    assert incident.metadata.namespace == "shop"
    assert incident.metadata.labels[GROUP_LABEL] == group_id(p.group_key)
    assert incident.metadata.labels[EPISODE_LABEL] == "1"
    spec = incident.spec
    assert spec.target.name == "checkout"
    assert spec.target.namespace is None
    assert spec.severity is Severity.SEV1
    assert spec.started_at == T0
    assert spec.summary == "CheckoutErrors: 5xx ratio above 5%"
    assert spec.resolved is False
    assert spec.alertmanager is not None
    assert spec.alertmanager.group_key == p.group_key
    assert [(r.fingerprint, r.status, r.summary) for r in spec.alertmanager.alerts] == [
        ("a1", AlertState.FIRING, "errors")
    ]


def test_a_resolved_notification_without_an_incident_files_nothing() -> None:
    decision = plan(payload(alert(status="resolved")), TARGET, [], MAPPING)
    assert isinstance(decision, Unchanged)
    assert decision.name is None


def test_a_retry_changes_nothing() -> None:
    p = payload(alert("a1"))
    created = plan(p, TARGET, [], MAPPING)
    assert isinstance(created, Create)
    again = plan(p, TARGET, [existing_of(stored(created))], MAPPING)
    assert isinstance(again, Unchanged)
    assert again.name == created.name


def test_later_alerts_join_the_incident_and_a_worse_one_raises_its_severity() -> None:
    first = plan(payload(alert("a1", labels={"severity": "warning"})), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    obj = stored(first)
    later = payload(
        alert("a1", labels={"severity": "warning"}),
        alert("a2", starts=T0 + timedelta(minutes=2), labels={"severity": "critical"}),
    )
    decision = plan(later, TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(decision, Update)
    assert decision.name == first.name
    assert decision.resource_version == "1"
    assert decision.added == 1
    assert not decision.resolves
    assert decision.patch["spec"]["severity"] == "SEV1"
    obj = apply(obj, decision)
    spec = IncidentSpec.model_validate(obj["spec"])
    assert [r.fingerprint for r in spec.alertmanager.alerts] == ["a1", "a2"]  # type: ignore[union-attr]


def test_severity_is_never_lowered_by_the_receiver() -> None:
    first = plan(payload(alert("a1", labels={"severity": "critical"})), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    later = payload(alert("a1", labels={"severity": "critical"}), alert("a2", labels={"severity": "info"}))
    decision = plan(later, TARGET, [existing_of(stored(first))], MAPPING)
    assert isinstance(decision, Update)
    assert "severity" not in decision.patch["spec"]


def test_the_group_resolving_resolves_the_incident_which_then_stays() -> None:
    first = plan(payload(alert("a1")), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    obj = stored(first)
    resolved = plan(payload(alert("a1", status="resolved")), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(resolved, Update)
    assert resolved.resolves
    assert resolved.patch["spec"]["resolved"] is True
    obj = apply(obj, resolved)
    spec = IncidentSpec.model_validate(obj["spec"])
    assert spec.resolved
    assert spec.alertmanager is not None
    assert spec.alertmanager.alerts[0].status is AlertState.RESOLVED
    assert spec.alertmanager.alerts[0].ends_at == T0 + timedelta(minutes=5)
    # A late retry of the firing notification neither reopens it nor files a new one.
    late = plan(payload(alert("a1")), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(late, Unchanged)


def test_the_group_firing_again_after_resolution_opens_the_next_episode() -> None:
    first = plan(payload(alert("a1")), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    obj = stored(first)
    resolved = plan(payload(alert("a1", status="resolved")), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(resolved, Update)
    obj = apply(obj, resolved)
    again = plan(payload(alert("a1", starts=T0 + timedelta(hours=1))), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(again, Create)
    assert again.name == f"{first.name}-2"
    assert again.body["metadata"]["labels"][EPISODE_LABEL] == "2"
    # Episode numbers follow the highest existing one, so a deleted episode never causes a clash.
    lone = existing_of({**stored(again), "spec": {**stored(again)["spec"], "resolved": True}})
    third = plan(payload(alert("a1", starts=T0 + timedelta(hours=2))), TARGET, [lone], MAPPING)
    assert isinstance(third, Create)
    assert third.name == f"{first.name}-3"


def test_an_incident_resolved_by_hand_is_not_reopened_by_the_alerts_it_recorded() -> None:
    first = plan(payload(alert("a1")), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    obj = stored(first)
    obj["spec"]["resolved"] = True
    repeat = plan(payload(alert("a1")), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(repeat, Unchanged)
    # The group's resolution is still recorded on it (the audit of when the alert ended).
    ended = plan(payload(alert("a1", status="resolved")), TARGET, [existing_of(obj)], MAPPING)
    assert isinstance(ended, Update)
    assert not ended.resolves
    assert "resolved" not in ended.patch["spec"]


def test_a_group_whose_target_moved_is_refused() -> None:
    first = plan(payload(alert("a1")), TARGET, [], MAPPING)
    assert isinstance(first, Create)
    decision = plan(payload(alert("a1")), Target("shop", "cart"), [existing_of(stored(first))], MAPPING)
    assert isinstance(decision, Refusal)
    assert decision.reason == "TargetChanged"


def test_the_alert_list_is_bounded_and_keeps_the_latest() -> None:
    alerts = [alert(f"f{i}", starts=T0 + timedelta(seconds=i)) for i in range(ALERTS_MAX + 20)]
    decision = plan(payload(*alerts), TARGET, [], MAPPING)
    assert isinstance(decision, Create)
    recorded = decision.body["spec"]["alertmanager"]["alerts"]
    assert len(recorded) == ALERTS_MAX
    assert recorded[-1]["fingerprint"] == f"f{ALERTS_MAX + 19}"


def test_long_labels_are_cut_to_fit_the_schema() -> None:
    labels = {f"extra_{i:02d}": "v" * 1000 for i in range(40)}
    decision = plan(payload(alert("a1", labels=labels)), TARGET, [], MAPPING)
    assert isinstance(decision, Create)
    got = Incident.model_validate(decision.body).spec.alertmanager
    assert got is not None
    kept = got.alerts[0].labels
    assert len(kept) == 24
    assert all(len(v) <= 256 for v in kept.values())
    assert {"alertname", "namespace", "deployment"} <= set(kept)  # what says what and where is kept


def test_merge_is_order_independent() -> None:
    firing = [record(a, MAPPING) for a in payload(alert("a1"), alert("a2")).alerts]
    resolved = [record(a, MAPPING) for a in payload(alert("a1", status="resolved")).alerts]
    again = [record(a, MAPPING) for a in payload(alert("a1", starts=T0 + timedelta(hours=1))).alerts]
    batches = [firing, resolved, again]
    outcomes = set()
    for order in itertools.permutations(batches):
        merged: list[Any] = []
        for batch in order:
            merged = merge(merged, batch)
        outcomes.add(tuple((r.fingerprint, r.starts_at, r.status) for r in merged))
    assert len(outcomes) == 1
    (only,) = outcomes
    assert ("a1", T0, AlertState.RESOLVED) in only


def test_an_incident_whose_spec_no_longer_parses_is_skipped() -> None:
    assert existing_from({"metadata": {"name": "x"}, "spec": {"target": {"name": "NOT VALID"}}}) is None
