"""The public incident scenarios (e2e/scenarios/*.yaml), one pytest test each, part of `make test`
(alone: `make scenarios-test`): each end to end on the real local cluster, judged like
`make scenarios` judges it. They run beside the rest of the suite; the ones that fault or may cordon
a node are marked serial("nodes") and run alone. Each score is saved, and the run's report prints one
scorecard of them all, written to out/scenarios-ci/, whatever the result; a scenario whose
expectations are not met fails its test with its reasons (its final objects and operator logs kept
next to the scorecard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.scenario import scorecard
from e2e.scenario.__main__ import DEFAULT_DIR
from e2e.scenario.format import Scenario, discover, load
from e2e.scenario.runner import ScenarioRun
from e2e.scenario.suite import touches_nodes

pytestmark = [
    pytest.mark.scenarios,
    pytest.mark.local_world("ready-pods", "lifecycle-stages", "kwok-nodes", "simulator"),
]

REPO = Path(__file__).resolve().parents[2]
OUT = scorecard.SCORES_DIR.parent


def _params() -> list[Any]:
    scenarios = [load(f) for f in discover(DEFAULT_DIR)]
    # Nodes are shared: a NotReady node or a cordon would leak into whatever runs beside it.
    return [
        pytest.param(sc, id=sc.name, marks=[pytest.mark.serial("nodes")] if touches_nodes(sc) else [])
        for sc in scenarios
    ]


SCENARIOS = _params()


def test_the_public_suite_has_the_issues_fifteen_scenarios_at_least() -> None:
    assert len(SCENARIOS) >= 15


@pytest.mark.timeout(10 * 60)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_public_scenario_meets_its_expectations(
    scenario: Scenario, world: WorldInfo, kube: Kube, crds_installed: None, tmp_path: Path
) -> None:
    run = ScenarioRun(scenario, world, kube, tmp_path / scenario.name, OUT / scenario.name)
    score = scorecard.judge(scenario, run.run())
    scorecard.save_score(score, scorecard.SCORES_DIR)
    assert score.passed, f"scenario {scenario.name} failed (scorecard in {OUT}): {score.failures}"
    assert score.unreverted_regressions == 0
