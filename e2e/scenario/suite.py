"""Run many scenarios, a few at a time: each has its own namespace, operator process and Prometheus
proxy, so they do not see each other; the runner mostly waits, so parallel runs fit on 2 cores."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.scenario.format import Scenario
from e2e.scenario.runner import ScenarioRun
from e2e.scenario.scorecard import Score, judge

DEFAULT_PARALLEL = 3


def run_all(
    scenarios: list[Scenario],
    world: WorldInfo,
    kube: Kube,
    workdir: Path,
    parallel: int = DEFAULT_PARALLEL,
    artefacts: Path | None = None,
) -> list[Score]:
    """Scores in the order given; with ``artefacts``, each scenario's final objects and operator logs
    are kept in ``artefacts/<scenario>/``."""

    def keep(name: str) -> Path | None:
        return artefacts / name if artefacts is not None else None

    def one(sc: Scenario) -> Score:
        print(f"[scenario] {sc.name}: {sc.title}", file=sys.stderr, flush=True)
        score = judge(sc, ScenarioRun(sc, world, kube, workdir / sc.name, keep(sc.name)).run())
        verdict = "pass" if score.passed else f"FAIL {score.failures}"
        print(f"[scenario] {sc.name}: {verdict}", file=sys.stderr, flush=True)
        return score

    shared = [sc for sc in scenarios if not touches_nodes(sc)]
    alone = [sc for sc in scenarios if touches_nodes(sc)]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        scores = dict(zip((sc.name for sc in shared), pool.map(one, shared), strict=True))
    # Nodes are shared: a NotReady node or a cordon would leak into whatever runs next to it.
    scores.update((sc.name, one(sc)) for sc in alone)
    return [scores[sc.name] for sc in scenarios]


def touches_nodes(sc: Scenario) -> bool:
    """Faults a node, or may evacuate (cordon) one."""
    if any(step.node_fault for step in sc.steps):
        return True
    if any(step.mitigate and "evacuate" in (step.mitigate.action or {}) for step in sc.steps):
        return True
    first = sc.expect.first_mitigation
    return first is not None and "Evacuate" in {str(first.action), *(str(a) for a in first.alternatives)}
