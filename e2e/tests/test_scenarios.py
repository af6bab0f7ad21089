"""The public incident scenarios (e2e/scenarios/*.yaml) as one pytest test, part of `make test`
(alone: `make scenarios-test`): each one end to end on the real local cluster, judged like
`make scenarios` judges it. The scorecard is printed and written to out/scenarios-ci/ whatever the
result; a scenario whose expectations are not met fails this test with its reasons (and its final
objects and operator logs kept next to the scorecard)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.scenario import scorecard
from e2e.scenario.__main__ import DEFAULT_DIR
from e2e.scenario.format import discover, load
from e2e.scenario.suite import DEFAULT_PARALLEL, run_all

pytestmark = [
    pytest.mark.scenarios,
    pytest.mark.local_world("ready-pods", "lifecycle-stages", "kwok-nodes", "simulator"),
]

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out" / "scenarios-ci"


# Sixteen scenarios of about a minute each, three at a time, the node scenario alone: ~10 minutes.
@pytest.mark.timeout(40 * 60)
def test_every_public_scenario_meets_its_expectations(
    world: WorldInfo, kube: Kube, crds_installed: None, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    scenarios = [load(f) for f in discover(DEFAULT_DIR)]
    assert len(scenarios) >= 15, "the issue's fifteen scenarios at least"
    parallel = int(os.environ.get("STANCH_SCENARIO_PARALLEL", DEFAULT_PARALLEL))
    scores = run_all(scenarios, world, kube, tmp_path, parallel, artefacts=OUT)
    md, _ = scorecard.write(scores, OUT)
    text = md.read_text(encoding="utf-8")
    # Past output capture, so `make test` shows it whatever the result: the scorecard is the point.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n" + text)
    else:
        print(text)
    failed = {s.scenario: s.failures for s in scores if not s.passed}
    assert not failed, f"scenarios failed (scorecard {md}): {failed}"
    assert sum(s.unreverted_regressions for s in scores) == 0
