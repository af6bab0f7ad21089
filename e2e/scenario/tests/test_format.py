"""The scenario format: every public scenario is valid; mistakes get errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.scenario.format import ScenarioError, discover, load, seconds
from e2e.scenario.runner import Outcome
from e2e.scenario.scorecard import judge, render_markdown

PUBLIC = Path(__file__).resolve().parents[2] / "scenarios"

MINIMAL = """
name: tiny
title: tiny
world:
  workloads: [{name: web}]
steps:
  - {at: 0s, incident: {name: web-5xx, target: web}}
expect: {detected: true, category: RecentDeploy}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", discover(PUBLIC), ids=lambda p: p.stem)
def test_public_scenarios_are_valid(path: Path) -> None:
    sc = load(path)
    assert sc.steps


def test_at_least_the_fifteen_incidents_of_the_issue() -> None:
    assert len(discover(PUBLIC)) >= 15


def test_durations() -> None:
    assert seconds("500ms") == 0.5
    assert seconds("2m") == 120
    with pytest.raises(ValueError, match="duration"):
        seconds("soon")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("target: web}", "target: nope}", "steps.0.incident names workload 'nope'"),
        (
            "{at: 0s, incident:",
            "{at: 0s, scale: {workload: web, replicas: 1}, incident:",
            "does exactly one thing",
        ),
        ("category: RecentDeploy", "category: Gremlins", "expect.category"),
        ("{name: web}", "{name: Web_1}", "world.workloads.0.name"),
        ("at: 0s", "at: soon", "steps.0.at"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)


def test_explicit_mitigations_are_checked_against_the_crd_model(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "incident: {name: web-5xx, target: web}}",
        "mitigate: {target: web, action: {scale: {replicas: 2, factor: '2'}}}}",
    )
    with pytest.raises(ScenarioError, match="mitigate"):
        load(write(tmp_path, text))


def test_steps_must_be_in_time_order(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "steps:\n",
        "steps:\n  - {at: 30s, scale: {workload: web, replicas: 1}}\n",
    )
    with pytest.raises(ScenarioError, match="time order"):
        load(write(tmp_path, text))


def test_scorecard_judges_expectations(tmp_path: Path) -> None:
    sc = load(write(tmp_path, MINIMAL))
    good = Outcome("tiny", "tiny", detected=True, top_category="RecentDeploy", categories=["RecentDeploy"],
                   top_confidence=80)  # fmt: skip
    wrong = Outcome("tiny", "tiny", detected=True, top_category="TrafficChange",
                    categories=["TrafficChange", "RecentDeploy"], top_confidence=70)  # fmt: skip
    s_good, s_wrong = judge(sc, good), judge(sc, wrong)
    assert s_good.passed
    assert s_good.top1
    assert not s_wrong.passed
    assert s_wrong.top1 is False
    assert s_wrong.top3 is True
    table = render_markdown([s_good, s_wrong])
    assert "| **total** | 2/2 | 1/2 | 2/2 |" in table
    assert "1/2 passed" in table
    assert "top hypothesis 'TrafficChange'" in table
