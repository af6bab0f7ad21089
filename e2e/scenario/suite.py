"""Run many scenarios, a few at a time: each has its own namespace, operator process and Prometheus
proxy, so they do not see each other; the runner mostly waits, so parallel runs fit on 2 cores."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.scenario.format import Scenario
from e2e.scenario.runner import ScenarioRun
from e2e.scenario.scorecard import Score, judge
from e2e.scenario.variants import vary

DEFAULT_PARALLEL = 3


@dataclass(frozen=True)
class Job:
    """One run: a scenario as written (``seed`` None) or one of its variants."""

    scenario: Scenario
    seed: int | None = None
    source: Path | None = None

    @property
    def label(self) -> str:
        return self.scenario.name if self.seed is None else f"{self.scenario.name}-seed-{self.seed}"

    def replay(self) -> str:
        where = str(self.source) if self.source else f"<the file of {self.scenario.name}>"
        return f"python -m e2e.scenario {where} --variant-seed {self.seed}"


def jobs(
    scenarios: Sequence[Scenario],
    variant_seeds: Sequence[int] = (),
    as_written: bool = True,
    sources: Sequence[Path | None] | None = None,
) -> list[Job]:
    """Each scenario as written (unless ``as_written`` is false), then one variant per seed."""
    out: list[Job] = []
    for sc, source in zip(scenarios, sources or [None] * len(scenarios), strict=True):
        if as_written:
            out.append(Job(sc, None, source))
        out += [Job(vary(sc, seed), seed, source) for seed in variant_seeds]
    return out


def run_all(
    scenarios: Sequence[Scenario | Job],
    world: WorldInfo,
    kube: Kube,
    workdir: Path,
    parallel: int = DEFAULT_PARALLEL,
    artefacts: Path | None = None,
) -> list[Score]:
    """Scores in the order given; with ``artefacts``, each run's final objects and operator logs
    are kept in ``artefacts/<scenario>/`` (``<scenario>-seed-<seed>/`` for a variant)."""
    todo = [j if isinstance(j, Job) else Job(j) for j in scenarios]

    def keep(name: str) -> Path | None:
        return artefacts / name if artefacts is not None else None

    def one(job: Job) -> Score:
        sc = job.scenario
        seed = "" if job.seed is None else f" (variant seed {job.seed}; replay: {job.replay()})"
        print(f"[scenario] {job.label}: {sc.title}{seed}", file=sys.stderr, flush=True)
        score = judge(sc, ScenarioRun(sc, world, kube, workdir / job.label, keep(job.label)).run())
        if job.seed is not None:
            score.variant = str(job.seed)
        verdict = "pass" if score.passed else f"FAIL {score.failures}{seed}"
        print(f"[scenario] {job.label}: {verdict}", file=sys.stderr, flush=True)
        return score

    shared = [j for j in todo if not touches_nodes(j.scenario)]
    alone = [j for j in todo if touches_nodes(j.scenario)]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        scores = dict(zip((j.label for j in shared), pool.map(one, shared), strict=True))
    # Nodes are shared: a NotReady node or a cordon would leak into whatever runs next to it.
    scores.update((j.label, one(j)) for j in alone)
    return [scores[j.label] for j in todo]


def touches_nodes(sc: Scenario) -> bool:
    """Faults a node, or may evacuate (cordon) one."""
    if any(step.node_fault for step in sc.steps):
        return True
    keys = [*sc.world.world_keys, *(k for step in sc.steps for k in (step.world_keys or {}))]
    if any(key.startswith("node.") for key in keys):
        return True
    if any(step.mitigate and "evacuate" in (step.mitigate.action or {}) for step in sc.steps):
        return True
    first = sc.expect.first_mitigation
    return first is not None and "Evacuate" in {str(first.action), *(str(a) for a in first.alternatives)}
