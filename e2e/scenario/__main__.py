"""`python -m e2e.scenario [DIR|FILE ...] [--out DIR]` — run scenarios and print the scorecard.

Used by `make scenarios [SCENARIOS=DIR] [VARIANTS=N] [SEED=S]`. Exits non-zero when any scenario's
expectations are not met (or a file is invalid); the scorecard is printed and written either way.
`--variants N` also runs N variants of every scenario (jittered timings, traffic and noise, see
e2e/scenario/variants.py) with seeds SEED..SEED+N-1 (SEED random unless given, and printed);
`--variant-seed S` runs only that variant of each scenario given, to replay a failure.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

from e2e.cluster import LocalWorld
from e2e.kube import Kube, install_crds
from e2e.scenario import scorecard
from e2e.scenario.format import ScenarioError, discover, load
from e2e.scenario.suite import DEFAULT_PARALLEL, jobs, run_all

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.scenario")
    parser.add_argument(
        "paths", nargs="*", type=Path, help=f"scenario files or directories (default {DEFAULT_DIR})"
    )
    parser.add_argument("--out", type=Path, default=Path("out/scenarios"), help="where the scorecard goes")
    parser.add_argument("--check", action="store_true", help="only validate the files")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="scenarios at a time")
    parser.add_argument(
        "--variants", type=int, default=0, help="also run N jittered variants of every scenario"
    )
    parser.add_argument("--seed", type=int, default=None, help="first variant seed (default: random)")
    parser.add_argument(
        "--variant-seed",
        type=int,
        action="append",
        default=[],
        help="run only this variant of each scenario (repeatable): replays a failed variant",
    )
    args = parser.parse_args(argv)
    if args.variants < 0:
        parser.error("--variants must be 0 or more")
    files: list[Path] = []
    try:
        for p in args.paths or [DEFAULT_DIR]:
            files += discover(p) if p.is_dir() else [p]
        scenarios = [load(f) for f in files]
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not scenarios:
        print("error: no scenario files found", file=sys.stderr)
        return 2
    seeds: list[int] = list(args.variant_seed)
    if args.variants:
        base = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
        seeds += range(base, base + args.variants)
        print(
            f"variants: seeds {base}..{base + args.variants - 1} (SEED={base} repeats them)", file=sys.stderr
        )
    todo = jobs(scenarios, seeds, as_written=not args.variant_seed, sources=files)
    if args.check:
        print(
            f"{len(scenarios)} scenario(s) valid" + (f", {len(todo)} run(s) with variants" if seeds else "")
        )
        return 0
    world = LocalWorld()
    started = world.healthy() is None
    info = world.up()
    kube = Kube(info.kubectl, info.kubeconfig)
    try:
        # A fresh world has no CRDs: the pytest suite installs them in a fixture, this entry point
        # must do it itself (applied server-side, so an installed set is left as it is).
        install_crds(kube)
        with tempfile.TemporaryDirectory(prefix="stanch-scenarios-") as tmp:
            scores = run_all(todo, info, kube, Path(tmp), args.parallel, artefacts=args.out)
    finally:
        if started:
            world.down()
    md, js = scorecard.write(scores, args.out)
    print(md.read_text(encoding="utf-8"))
    for job, score in zip(todo, scores, strict=True):
        if job.seed is not None and not score.passed:
            print(f"replay {job.label}: {job.replay()}", file=sys.stderr)
    print(f"scorecard: {md} {js}", file=sys.stderr)
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    raise SystemExit(main())
