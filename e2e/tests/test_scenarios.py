"""The public incident scenarios (e2e/scenarios/*.yaml), one pytest test each, part of `make test`
(alone: `make scenarios-test`): each end to end on the real local cluster, judged like
`make scenarios` judges it. They run beside the rest of the suite; the ones that fault or may cordon
a node are marked serial("nodes") and run alone. Each score is saved, and the run's report prints one
scorecard of them all, written to out/scenarios-ci/, whatever the result; a scenario whose
expectations are not met fails its test with its reasons (its final objects and operator logs kept
next to the scorecard).

With STANCH_SCENARIO_VARIANTS=N each scenario also runs as N variants (jittered timings, traffic and
noise; e2e/scenario/variants.py) with seeds STANCH_SCENARIO_SEED (default 1) to SEED+N-1: the same
seeds in every worker, so every worker collects the same tests, and a failed variant's id names the
seed that replays it (`python -m e2e.scenario FILE --variant-seed S`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.scenario import scorecard
from e2e.scenario.__main__ import DEFAULT_DIR
from e2e.scenario.format import Scenario, discover, load
from e2e.scenario.runner import ScenarioRun
from e2e.scenario.suite import Job, jobs, touches_nodes

pytestmark = [
    pytest.mark.scenarios,
    pytest.mark.local_world("ready-pods", "lifecycle-stages", "kwok-nodes", "simulator"),
]

REPO = Path(__file__).resolve().parents[2]
OUT = scorecard.SCORES_DIR.parent


def _params() -> list[Any]:
    files = discover(DEFAULT_DIR)
    variants = int(os.environ.get("STANCH_SCENARIO_VARIANTS") or 0)
    first = int(os.environ.get("STANCH_SCENARIO_SEED") or 1)
    todo = jobs([load(f) for f in files], range(first, first + variants), sources=list(files))
    # Nodes are shared: a NotReady node or a cordon would leak into whatever runs beside it.
    return [
        pytest.param(
            job,
            id=job.label,
            marks=[pytest.mark.serial("nodes")] if touches_nodes(job.scenario) else [],
        )
        for job in todo
    ]


SCENARIOS = _params()


def test_the_public_suite_has_the_issues_fifteen_scenarios_at_least() -> None:
    assert len({p.values[0].scenario.name for p in SCENARIOS}) >= 15


@pytest.mark.timeout(10 * 60)
@pytest.mark.parametrize("job", SCENARIOS)
def test_public_scenario_meets_its_expectations(
    job: Job, world: WorldInfo, kube: Kube, crds_installed: None, tmp_path: Path
) -> None:
    scenario: Scenario = job.scenario
    run = ScenarioRun(scenario, world, kube, tmp_path / job.label, OUT / job.label)
    score = scorecard.judge(scenario, run.run())
    if job.seed is not None:
        score.variant = str(job.seed)
    scorecard.save_score(score, scorecard.SCORES_DIR)
    replay = f" (replay: {job.replay()})" if job.seed is not None else ""
    assert score.passed, f"scenario {job.label} failed (scorecard in {OUT}): {score.failures}{replay}"
    assert score.unreverted_regressions == 0
    assert score.false_actions == 0
