"""`make e2e`: the real-cluster suite in two groups against one local world.

1. Every test not marked ``serial`` in parallel pytest-xdist workers, each test in its own
   namespace (the tests mostly wait on guard intervals, bakes and rollouts, not on the CPU).
2. The ``serial`` tests, which write what every test shares (nodes, cluster-scoped objects, the
   world's processes or cluster-wide keys), one at a time with nothing beside them.

The world is brought up first (or reused) and taken down at the end only if this run started it.
Both groups always run; the exit status is the first failure's. Each group reports its slowest
tests, and the second prints the scorecard of every public scenario of both.

    python -m e2e.run [--workers N] [pytest args...]     # E2E_WORKERS=N works too
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from e2e.cluster import LocalWorld
from e2e.scenario import scorecard

DURATIONS = "25"


def default_workers() -> int:
    """Twice the cores, at least 2: a worker spends most of its time waiting on the cluster."""
    return max(2, 2 * (os.cpu_count() or 1))


def _pytest(args: list[str], env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "pytest", *args]
    print(f"[e2e] {' '.join(cmd)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    code = subprocess.call(cmd, env=env)
    print(f"[e2e] exit {code} after {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    # 5: no test selected (e.g. a -k that matches only serial tests) is not a failure.
    return 0 if code == 5 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("E2E_WORKERS") or default_workers()),
        help="parallel workers for the first group (default: E2E_WORKERS or twice the cores, at least 2)",
    )
    parser.add_argument("-m", dest="marks", default="", help="a pytest mark expression, within each group")
    args, rest = parser.parse_known_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if not any(os.path.exists(a.split("::")[0]) for a in rest if not a.startswith("-")):
        rest.append("e2e/tests")

    kind = os.environ.get("E2E_CLUSTER") == "kind"
    local = None if kind else LocalWorld()
    started = False
    if local is not None and local.healthy() is None:
        local.up()
        started = True
    scorecard.clear_scores(scorecard.SCORES_DIR)
    env = {**os.environ, "E2E_KEEP_SCORES": "1"}

    def marks(group: str) -> str:
        return f"({args.marks}) and {group}" if args.marks else group

    common = [f"--durations={DURATIONS}", *rest]
    try:
        parallel = _pytest(["-n", str(args.workers), "-m", marks("not serial"), *common], env)
        serial = _pytest(["-m", marks("serial"), *common], env)
    finally:
        if started and local is not None and os.environ.get("E2E_KEEP_CLUSTER") != "1":
            local.down()
    return parallel or serial


if __name__ == "__main__":
    sys.exit(main())
