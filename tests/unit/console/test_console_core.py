"""The pure parts of the on-call verbs: the Mitigation a hypothesis suggests, the audit in time
order, the tables of ``get``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from stanch.core.console.audit import audit_lines, render_audit
from stanch.core.console.mitigate import MitigateError, mitigation_manifest, pick_hypothesis
from stanch.core.console.tables import incident_rows, mitigation_rows, render_table
from stanch.core.console.text import age
from stanch.core.models import Incident, Mitigation, UserIdentity

HERE = Path(__file__).parent
NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((HERE / name).read_text())
    return data


def incident() -> Incident:
    return Incident.model_validate(raw("incident.yaml"))


ALICE = UserIdentity(username="alice")


def test_the_first_hypothesis_with_a_suggestion_is_the_default() -> None:
    number, h = pick_hypothesis(incident(), None)
    assert (number, h.category.value) == (1, "RecentDeploy")


@pytest.mark.parametrize(
    ("number", "message"),
    [(2, "suggests no mitigation"), (4, "has hypotheses 1..3"), (9, "has hypotheses 1..3")],
)
def test_a_hypothesis_that_cannot_be_applied_is_refused(number: int, message: str) -> None:
    with pytest.raises(MitigateError, match=message):
        pick_hypothesis(incident(), number)


def test_no_hypotheses_yet() -> None:
    bare = Incident.model_validate(
        {"metadata": {"name": "x", "namespace": "shop"}, "spec": {"target": {"name": "a"}}}
    )
    with pytest.raises(MitigateError, match="no hypotheses yet"):
        pick_hypothesis(bare, None)


def test_the_manifest_is_the_suggestion_linked_and_requested_by_the_user() -> None:
    inc = incident()
    _, h = pick_hypothesis(inc, 1)
    m = mitigation_manifest(inc, h, ALICE)
    assert m["spec"] == {
        "incidentRef": {"name": "checkout-5xx"},
        "target": {"kind": "Deployment", "name": "checkout"},
        "rollback": {"toRevision": 6},
        "requester": {"username": "alice"},
    }
    assert m["metadata"]["namespace"] == "shop"
    assert m["metadata"]["labels"] == {"stanch.dev/incident": "checkout-5xx"}
    # What the API server will validate: the model accepts it as a Mitigation.
    Mitigation.model_validate(m)


def test_the_name_is_stable_per_suggestion_and_differs_between_them() -> None:
    inc = incident()
    first = mitigation_manifest(inc, pick_hypothesis(inc, 1)[1], ALICE)["metadata"]["name"]
    again = mitigation_manifest(inc, pick_hypothesis(inc, 1)[1], UserIdentity(username="bob"))["metadata"][
        "name"
    ]
    other = mitigation_manifest(inc, pick_hypothesis(inc, 3)[1], ALICE)["metadata"]["name"]
    assert first == again
    assert first != other
    assert first.startswith("checkout-5xx-rollback-")
    assert other.startswith("checkout-5xx-scale-")
    assert len(first) <= 63


def test_plan_only_temporary_and_a_chosen_name() -> None:
    inc = incident()
    m = mitigation_manifest(
        inc, pick_hypothesis(inc, 3)[1], ALICE, name="grow", plan_only=True, temporary=True
    )
    assert m["metadata"]["name"] == "grow"
    assert (m["spec"]["dryRun"], m["spec"]["temporary"], m["spec"]["scale"]) == (True, True, {"factor": 1.5})


def test_a_suggestion_for_another_namespace_is_refused() -> None:
    data = raw("incident.yaml")
    data["status"]["hypotheses"][0]["suggestedMitigation"]["target"]["namespace"] = "other"
    inc = Incident.model_validate(data)
    with pytest.raises(MitigateError, match="only in its own namespace"):
        mitigation_manifest(inc, pick_hypothesis(inc, 1)[1], ALICE)


def test_the_audit_merges_status_and_events_in_time_order() -> None:
    mitigation = raw("mitigation.yaml")
    events: list[dict[str, Any]] = [
        {
            "type": "Normal",
            "reason": "Applied",
            "message": "rolled back to revision 6",
            "lastTimestamp": "2024-05-01T12:21:02Z",
            "reportingComponent": "stanch",
        },
        {
            "type": "Warning",
            "reason": "PolicyWait",
            "message": "token=abcdef123456 leaked into a message",
            "eventTime": "2024-05-01T12:20:00.500000Z",
            "count": 3,
            "source": {"component": "stanch"},
        },
    ]
    lines = audit_lines(mitigation, events)
    assert [(line.source, line.reason) for line in lines] == [
        ("status", "Requested"),
        ("event", "PolicyWait"),
        ("status", "PolicyDecided"),
        ("status", "Applied"),
        ("event", "Applied"),
        ("status", "Succeeded"),
    ]
    text = render_audit(lines)
    assert "abcdef123456" not in text
    assert "(x3)" in text
    assert "Baking → Succeeded" in text


def test_an_empty_audit_says_why_it_may_be_empty() -> None:
    assert "expire" in render_audit([])


def test_get_tables_work_from_raw_objects_even_partial_ones() -> None:
    header, rows = incident_rows([raw("incident.yaml"), {"metadata": {"name": "bare"}}], NOW, wide=True)
    text = render_table(header, rows, namespaces=["shop", "shop"])
    first, second, third = text.splitlines()
    assert first.split()[:4] == ["NAMESPACE", "NAME", "PHASE", "SEVERITY"]
    assert second.split()[:5] == ["shop", "checkout-5xx", "Mitigating", "SEV2", "checkout"]
    assert third.split()[:3] == ["shop", "bare", "Pending"]
    header, rows = mitigation_rows([raw("mitigation.yaml")], NOW, wide=True)
    assert dict(zip(header, rows[0], strict=True)) | {} == {
        "NAME": "checkout-rollback",
        "PHASE": "Succeeded",
        "ACTION": "<none>",
        "TARGET": "checkout",
        "VERDICT": "Healthy",
        "DRY-RUN": "false",
        "INCIDENT": "checkout-5xx",
        "AGE": "10m",
        "REQUESTED BY": "alice",
        "APPROVED BY": "<none>",
        "POLICY": "<none>",
    }


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (3599, "59m"),
        (3600, "1h"),
        (3660 + 60, "1h2m"),
        (9 * 3600 + 60, "9h"),
        (86400 + 3600, "1d1h"),
        (9 * 86400 + 3600, "9d"),
        (-5, "0s"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, shown: str) -> None:
    from datetime import timedelta

    assert age(NOW - timedelta(seconds=seconds), NOW) == shown
