"""Mitigation benchmark on the local world: how fast a harmful change is reverted, and how often a
harmless one is reverted anyway.

Both measurements run the real ``stanch run`` process against the real API server, Prometheus
(1 s scrapes) and the workload simulator, one namespace and one operator per run, runs in parallel:

- ``revert``: a Deployment at 4 pods of capacity 100 rps takes 300 rps; a Mitigation scales it to 2,
  so every pod sheds a third of its requests as 503. Measured per run: from the **first scrape
  after the scale-down that shows 503s** (Prometheus, 1 s resolution) to the moment the API server
  **accepted the revert** (the operator's ``mitigation effect`` log line for step ``Revert``).
- ``noise``: a Deployment with a steady 2 % background error ratio and plenty of capacity; a
  Mitigation scales it from 3 to 4 pods, which changes nothing the guard watches. A run that ends
  ``Reverted`` (or with a ``Worse`` verdict) is a false revert.

By default both use **the built-in guard and the operator's default signal templates** (the guard
fields are left unset: baseline 10m, bake 5m, checks every 30s, tolerance 10 %, two failed checks in
a row); ``--guard fast`` uses the e2e tests' guard and 10 s rate windows instead.

Usage: ``python -m bench.mitigation [--runs 5] [--noise-runs 20] [--guard default|fast]
[--interval 10s] [--warmup 330] [--parallel 10] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from e2e.cluster.world import LocalWorld, WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    allow_all_policy,
    fast_operator,
    mitigation,
    shutdown,
    status,
    world_keys,
)


@dataclass
class Run:
    kind: str
    namespace: str
    phase: str | None
    verdict: str | None
    applied_at: str | None = None
    first_bad_scrape: str | None = None
    revert_applied_at: str | None = None
    seconds_to_revert: float | None = None
    checks: int = 0
    note: str = ""
    verdict_reason: str = ""
    failed_checks: list[str] | None = None


def _ready(kube: Kube, namespace: str, n: int) -> bool:
    pods = kube.items("pods", namespace, selector="app=web")
    return (
        sum(
            1
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        == n
    )


def _effect_time(operator: OperatorProcess, step: str) -> datetime | None:
    for r in operator.log_records():
        if r.get("event") == "mitigation effect" and r.get("step") == step and r.get("outcome") == "Applied":
            return datetime.fromisoformat(str(r["timestamp"]).replace("Z", "+00:00"))
    return None


def _first_bad_scrape(prometheus: str, namespace: str, start: datetime, end: datetime) -> datetime | None:
    """The first 1 s sample after ``start`` where the workload answered 503s."""
    sel = f'namespace="{namespace}",deployment="web",code="503"'
    resp = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={
            "query": f"sum(rate(http_requests_total{{{sel}}}[2s]))",
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": "1",
        },
        timeout=10,
        trust_env=False,
    )
    for series in resp.json()["data"]["result"]:
        for ts, value in series["values"]:
            if float(value) > 1.0:
                return datetime.fromtimestamp(float(ts), UTC)
    return None


def _operator(world: WorldInfo, namespace: str, log_dir: Path, guard: str) -> OperatorProcess:
    if guard == "fast":
        return fast_operator(world, namespace, log_dir)
    # As the shipped ServiceAccount, like every real-cluster test: the harness refuses admin credentials.
    return OperatorProcess(operator_kubeconfig(world), world.prometheus_url, [namespace], log_dir)


_STARTING = threading.Lock()


def one_run(
    world: WorldInfo, kind: str, guard: str, warmup: float, workdir: Path, interval: str | None
) -> Run:
    try:
        return _one_run(world, kind, guard, warmup, workdir, interval)
    except Exception as exc:  # a broken run is reported, not allowed to hide the others
        return Run(
            kind=kind,
            namespace="",
            phase=None,
            verdict=None,
            note=f"error: {type(exc).__name__}: {exc}"[:300],
        )


def _one_run(
    world: WorldInfo, kind: str, guard: str, warmup: float, workdir: Path, interval: str | None
) -> Run:
    kube = Kube(world.kubectl, world.kubeconfig)
    namespace = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", namespace)
    operator = _operator(world, namespace, workdir / namespace, guard)
    guard_spec: dict[str, Any] = dict(FAST_GUARD) if guard == "fast" else {}
    if interval:
        guard_spec["interval"] = interval
    try:
        if kind == "revert":
            replicas, action = 4, {"scale": {"replicas": 2}}
            annotations = {"sim.stanch.dev/capacity-rps": "100"}
            traffic = "300"
        else:
            replicas, action = 3, {"scale": {"replicas": 4}}
            annotations = {"sim.stanch.dev/capacity-rps": "100", "sim.stanch.dev/error-ratio": "0.02"}
            traffic = "60"
        with world_keys(kube, {f"traffic.{namespace}.web": traffic}):
            kube.apply(deployment("web", replicas=replicas, annotations=annotations), namespace=namespace)
            Kube.wait_for(lambda: _ready(kube, namespace, replicas), 120, "ready pods")
            kube.apply(allow_all_policy(namespace), namespace=namespace)
            time.sleep(warmup)
            # Starting 20 Python processes at once on a small machine takes longer than the
            # fixture's liveness timeout; start them one at a time.
            with _STARTING:
                operator.start(timeout=120)
            manifest = mitigation("bench", "web", action, guard_spec)
            if not guard_spec:
                del manifest["spec"]["guard"]
            kube.apply(manifest, namespace=namespace)
            terminal = {"Succeeded", "Reverted", "Failed", "NeedsAttention", "Rejected"}
            st = Kube.wait_for(
                lambda: (s := status(kube, namespace, "bench")).get("phase") in terminal and s,
                900,
                "an outcome",
            )
        run = Run(
            kind=kind,
            namespace=namespace,
            phase=st.get("phase"),
            verdict=(st.get("verdict") or {}).get("result"),
            checks=len(st.get("observations") or []),
            note=str(st.get("message", ""))[:300],
            verdict_reason=str((st.get("verdict") or {}).get("reason", ""))[:1000],
            failed_checks=[
                f"{o.get('time')}: {o.get('note', '')}"[:600]
                for o in st.get("observations") or []
                if o.get("check") != "Pass"
            ][:10],
        )
        applied = _effect_time(operator, "Apply")
        reverted = _effect_time(operator, "Revert")
        run.applied_at = applied.isoformat() if applied else None
        run.revert_applied_at = reverted.isoformat() if reverted else None
        if kind == "revert" and applied and reverted:
            bad = _first_bad_scrape(world.prometheus_url, namespace, applied - timedelta(seconds=1), reverted)
            if bad is not None:
                run.first_bad_scrape = bad.isoformat()
                run.seconds_to_revert = round((reverted - bad).total_seconds(), 1)
        return run
    finally:
        shutdown(operator, kube, namespace)
        kube.ok("delete", "namespace", namespace, "--wait=false")


def run_all(
    world: WorldInfo,
    kind: str,
    n: int,
    guard: str,
    warmup: float,
    parallel: int,
    workdir: Path,
    interval: str | None,
) -> list[Run]:
    if n == 0:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, n))) as pool:
        futures = [pool.submit(one_run, world, kind, guard, warmup, workdir, interval) for _ in range(n)]
        return [f.result() for f in futures]


def summary(revert: list[Run], noise: list[Run]) -> dict[str, Any]:
    times = [r.seconds_to_revert for r in revert if r.seconds_to_revert is not None]
    false_reverts = [r for r in noise if r.phase == "Reverted" or r.verdict == "Worse"]
    return {
        "revert_runs": len(revert),
        "reverted": sum(1 for r in revert if r.phase == "Reverted"),
        "timed_runs": len(times),
        "seconds_to_revert": sorted(times),
        "median_seconds_to_revert": statistics.median(times) if times else None,
        "errors": [r.note for r in revert + noise if r.phase is None],
        "noise_runs": len(noise),
        "false_reverts": len(false_reverts),
        "noise_outcomes": {
            p: sum(1 for r in noise if r.phase == p) for p in sorted({str(r.phase) for r in noise})
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mitigation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="harmful scale-downs to time")
    parser.add_argument(
        "--noise-runs", type=int, default=20, help="harmless scale-ups to count false reverts on"
    )
    parser.add_argument("--guard", choices=("default", "fast"), default="default")
    # Longer than the default templates' [5m] rate window: before that, every rate() still reads a
    # series younger than its window, the error ratio drifts upwards as it fills, and a guard
    # baseline taken then makes the steady state look worse (a 120 s warm-up caused a false revert:
    # error ratio 1.5 % in the baseline, 2.0 % — the configured background — after).
    parser.add_argument(
        "--warmup", type=float, default=330.0, help="seconds of metrics before acting (> the rate window)"
    )
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument(
        "--interval", help="override only the guard interval (e.g. 10s), other fields as --guard"
    )
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    local = LocalWorld()
    world = local.healthy() or local.up()
    with tempfile.TemporaryDirectory(prefix="stanch-bench-") as tmp:
        workdir = Path(tmp)
        common = (args.guard, args.warmup, args.parallel, workdir, args.interval)
        revert = run_all(world, "revert", args.runs, *common)
        noise = run_all(world, "noise", args.noise_runs, *common)
    result = {"guard": args.guard, "interval": args.interval, "warmup": args.warmup, **summary(revert, noise)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**result, "runs": [asdict(r) for r in revert + noise]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
