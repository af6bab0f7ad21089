"""Simulator benchmark: how long one tick (every pod's metrics and log lines) takes at 1,000 pods.

The simulator ticks once a second in the local world, so a tick slower than a second makes every
signal the suite and the scenarios read lag behind the world. This was a timed unit test; timing
belongs here, where a loaded machine is reported rather than failed.

Usage: ``python -m bench.simulator [--pods 1000] [--ticks 5] [--runs 5]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from e2e.simulator.pods import ContainerView, PodView
from e2e.simulator.runner import Runner

T0 = 1_700_000_000.0
PODS_PER_WORKLOAD = 20


class _Clock:
    def __init__(self) -> None:
        self.t = T0 + 1000

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def _pods(total: int) -> list[PodView]:
    """Workloads of 20 pods, each depending on the next, as a mid-sized namespace looks."""
    workloads = max(1, total // PODS_PER_WORKLOAD)
    pods: list[PodView] = []
    for w in range(workloads):
        for i in range(PODS_PER_WORKLOAD):
            name = f"svc{w}-abc-{i:05d}"
            pods.append(
                PodView(
                    namespace="shop",
                    name=name,
                    uid=f"uid-{name}",
                    workload=f"svc{w}",
                    deployment=f"svc{w}",
                    revision="abc",
                    node=f"node-{i % 4}",
                    image="shop/app:1.0.0",
                    annotations={"sim.stanch.dev/depends-on": f"svc{(w + 1) % workloads}"},
                    containers=(
                        ContainerView(
                            name="app",
                            memory_limit_bytes=512 * 1024 * 1024,
                            cpu_limit_cores=1.0,
                            restart_count=0,
                            running=True,
                            started_at=T0 + i,
                        ),
                    ),
                    ready=True,
                    running=True,
                    created_at=T0 + i,
                    started_at=T0 + i,
                )
            )
    return pods


def measure(pods: int, ticks: int) -> tuple[float, int]:
    """Seconds per tick, and the lines of metrics the last tick rendered."""
    clock = _Clock()
    runner = Runner(seed=1, clock=clock)
    runner.set_pods(_pods(pods))
    started = time.perf_counter()
    for _ in range(ticks):
        clock.t += runner.tick
        runner.tick_once()
    return (time.perf_counter() - started) / ticks, runner.metrics.count(b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    per_tick = []
    lines = 0
    for _ in range(args.runs):
        seconds, lines = measure(args.pods, args.ticks)
        per_tick.append(seconds)
    print(
        f"simulator tick at {args.pods} pods: median {statistics.median(per_tick):.3f}s, "
        f"max {max(per_tick):.3f}s over {args.runs} runs of {args.ticks} ticks ({lines} metric lines); "
        "target under 1 s (the tick interval)"
    )


if __name__ == "__main__":
    main()
