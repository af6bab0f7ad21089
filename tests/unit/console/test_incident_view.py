"""The Incident view against checked-in golden output: a fixed Incident (incident.yaml, as the API
server would return it) and its Mitigation, rendered at a fixed time.

After an intended change of the view, regenerate the golden file and review the diff:
``STANCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/console/test_incident_view.py``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from stanch.core.console.incident_view import render_incident
from stanch.core.models import Incident, Mitigation

HERE = Path(__file__).parent
NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def load() -> tuple[Incident, Mitigation]:
    incident = Incident.model_validate(yaml.safe_load((HERE / "incident.yaml").read_text()))
    mitigation = Mitigation.model_validate(yaml.safe_load((HERE / "mitigation.yaml").read_text()))
    return incident, mitigation


@pytest.mark.parametrize(
    ("golden", "timeline"), [("incident.golden.txt", 20), ("incident-timeline-2.golden.txt", 2)]
)
def test_the_view_matches_the_golden_file(golden: str, timeline: int) -> None:
    incident, mitigation = load()
    text = render_incident(incident, [mitigation], now=NOW, timeline=timeline)
    path = HERE / golden
    if os.environ.get("STANCH_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_a_credential_in_the_summary_is_not_shown() -> None:
    incident, _ = load()
    assert "abcdefgh12345678" in (incident.spec.summary or "")
    assert "abcdefgh12345678" not in render_incident(incident, now=NOW)


def test_every_suggestion_gets_its_command_and_only_those() -> None:
    incident, _ = load()
    text = render_incident(incident, now=NOW)
    assert "kubectl stanch mitigate checkout-5xx -n shop --hypothesis 1" in text
    assert "--hypothesis 2" not in text  # TrafficChange suggests nothing
    assert "kubectl stanch mitigate checkout-5xx -n shop --hypothesis 3" in text


def test_an_incident_not_investigated_yet() -> None:
    incident = Incident.model_validate(
        {
            "metadata": {"name": "fresh", "namespace": "shop", "creationTimestamp": "2024-05-01T12:29:00Z"},
            "spec": {"target": {"name": "checkout"}},
        }
    )
    text = render_incident(incident, now=NOW)
    assert "Phase:        Pending" in text
    assert "Started:      2024-05-01 12:29:00Z (60s ago)" in text
    for line in (
        "  not investigated yet",
        "  nothing recorded yet",
        "Hypotheses:\n  none yet",
        "Mitigations:\n  none",
    ):
        assert line in text
