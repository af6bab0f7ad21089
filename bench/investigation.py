"""Investigation benchmark: how long from Incident creation to a status with evidence and hypotheses,
and how many API requests one refresh makes, for namespaces of 10, 100 and 1,000 pods with ten
times as many Events.

Two measurements per size, against the local world (``python -m e2e.cluster up``):

- ``refresh``: one investigation in-process (collect + analyse), timed directly, with the requests
  it made counted by ``KubeClient.stats`` (by verb) and the Prometheus client;
- ``end-to-end``: the real ``stanch run`` process; the clock starts when the Incident is created
  and stops when a GET first shows ``status.hypotheses`` and ``status.evidence``.

Both read pods and Events from the evidence cache, as the operator does by default, once it is warm
(an operator runs long before its incidents); the time the operator took from start to a warm cache,
and its resident memory then, are reported too. ``--no-evidence-cache`` measures the listing path.

Usage: ``python -m bench.investigation [--sizes 10,100,1000] [--runs 7] [--window 15s] [--recorded]
[--no-evidence-cache] [--keep]``
(``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from e2e.cluster.processes import free_loopback_port
from e2e.cluster.prometheus import load_rules
from e2e.cluster.world import LocalWorld, WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.operator_process import OperatorProcess

from stanch.adapters.kube import KubeClient, UserKubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.adapters.watch_cache import EvidenceCache
from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, with_rate_window
from stanch.core.recording import names as recorded_names
from stanch.core.recording import recorded_templates, recording_rules
from stanch.wiring.investigation import Investigator

REPO = Path(__file__).resolve().parents[1]
EVENTS_PER_POD = 10
# Per pod: the lifecycle a kubelet reports, plus the warnings of an unhealthy pod.
EVENT_KINDS = (
    ("Normal", "Scheduled", "Successfully assigned {ns}/{pod} to kwok-node-{n}"),
    ("Normal", "Pulled", 'Container image "registry.example/bench:1.0" already present on machine'),
    ("Normal", "Created", "Created container app"),
    ("Normal", "Started", "Started container app"),
    ("Normal", "Killing", "Stopping container app"),
    ("Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created."),
    ("Warning", "BackOff", "Back-off restarting failed container app in pod {pod}"),
    ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    (
        "Warning",
        "Unhealthy",
        "Liveness probe failed: Get http://10.0.0.{n}:8080/healthz: context deadline exceeded",
    ),
    ("Warning", "FailedMount", 'MountVolume.SetUp failed for volume "config" : configmap "bench" not found'),
)


COLUMNS = (
    "pods",
    "events",
    "refresh median ms",
    "refresh max ms",
    "create→status median ms",
    "create→status max ms",
    "API requests per refresh",
    "Prometheus queries per refresh",
    "operator start→cache warm s",
    "operator RSS MiB",
)


@dataclass
class SizeResult:
    pods: int
    events: int
    refresh_ms: list[float] = field(default_factory=list)
    requests_per_refresh: dict[str, int] = field(default_factory=dict)
    list_requests_per_refresh: int = 0
    prometheus_queries_per_refresh: int = 0
    end_to_end_ms: list[float] = field(default_factory=list)
    collector_ms: dict[str, list[float]] = field(default_factory=dict)
    cache_warm_s: float | None = None
    operator_rss_mib: float | None = None

    def row(self) -> str:
        refresh = statistics.median(self.refresh_ms)
        e2e = statistics.median(self.end_to_end_ms) if self.end_to_end_ms else float("nan")
        verbs = ", ".join(f"{v} {n}" for v, n in sorted(self.requests_per_refresh.items()))
        return (
            f"| {self.pods} | {self.events} | {refresh:.0f} | {max(self.refresh_ms):.0f} | {e2e:.0f} |"
            f" {max(self.end_to_end_ms or [float('nan')]):.0f} | {verbs} |"
            f" {self.prometheus_queries_per_refresh} | {_fmt(self.cache_warm_s, '.1f')} |"
            f" {_fmt(self.operator_rss_mib, '.0f')} |"
        )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            # All at once: the benchmark measures the investigation, not the rollout.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {**labels, "sim.stanch.dev/workload": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/bench:1.0",
                            "resources": {
                                "requests": {"cpu": "1m", "memory": "1Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                        }
                    ]
                },
            },
        },
    }


async def wait_ready(kube: KubeClient, ns: str, name: str, replicas: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        obj = await kube.get("Deployment", name, ns)
        if obj and (obj.get("status") or {}).get("readyReplicas", 0) >= replicas:
            return
        await asyncio.sleep(1)
    raise SystemExit(f"{ns}/{name}: {replicas} pods not ready within {seconds:g}s")


async def create_events(kube: KubeClient, ns: str, pods: list[dict[str, Any]]) -> int:
    sem = asyncio.Semaphore(64)
    now = datetime.now(UTC)

    async def one(pod: dict[str, Any], i: int) -> None:
        type_, reason, message = EVENT_KINDS[i % len(EVENT_KINDS)]
        name = pod["metadata"]["name"]
        stamp = (now - timedelta(seconds=60 - i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{i}", "namespace": ns},
            "involvedObject": {
                "kind": "Pod",
                "name": name,
                "namespace": ns,
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
            },
            "type": type_,
            "reason": reason,
            "message": message.format(ns=ns, pod=name, n=i),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1 + i,
            "source": {"component": "bench"},
        }
        async with sem:
            await kube.create(event)

    await asyncio.gather(*(one(p, i) for p in pods for i in range(EVENTS_PER_POD)))
    return len(pods) * EVENTS_PER_POD


def templates(window: str, recorded: bool = False) -> dict[str, str]:
    """The default templates with their rate window replaced (see docs/benchmarks.md for why), or
    the templates reading the recording rules of ``stanch recording-rules``."""
    if recorded:
        return dict(recorded_templates(window))
    merged = {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}
    return with_rate_window(merged, window)


RULES_NAME = "stanch-bench"
RULE_INTERVAL = "5s"
"""Five scrapes of the local world per evaluation, as 30 s is at a production 5-10 s scrape."""


async def refreshes(
    world: WorldInfo,
    ns: str,
    name: str,
    runs: int,
    result: SizeResult,
    signals: dict[str, str],
    use_cache: bool,
) -> None:
    incident = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": "bench",
            "namespace": ns,
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generation": 1,
        },
        "spec": {"target": {"kind": "Deployment", "name": name}, "lookback": "5m"},
    }
    kube = KubeClient.from_env(world.kubeconfig)
    prometheus = PrometheusClient(world.prometheus_url)
    cache = EvidenceCache(KubeClient.from_env(world.kubeconfig), [ns]) if use_cache else None
    investigator = Investigator(kube, prometheus, signals, memory=cache)
    try:
        if cache is not None:
            cache.start()
            async with asyncio.timeout(120):
                if not await cache.wait_ready():
                    raise SystemExit(f"{ns}: the evidence cache did not become ready")
        await investigator.run(incident)  # warm-up: connections, imports
        for _ in range(runs):
            before, queries = dict(kube.stats.by_verb), prometheus.requests
            started = time.perf_counter()
            outcome = await investigator.run(incident)
            result.refresh_ms.append((time.perf_counter() - started) * 1000)
            for collector, seconds in outcome.collected.timings.items():
                result.collector_ms.setdefault(collector, []).append(seconds * 1000)
            delta = {v: n - before.get(v, 0) for v, n in kube.stats.by_verb.items() if n - before.get(v, 0)}
            result.requests_per_refresh = delta
            result.list_requests_per_refresh = delta.get("list", 0)
            result.prometheus_queries_per_refresh = prometheus.requests - queries
            assert outcome.status.hypotheses, "an investigation always ranks at least one hypothesis"
            assert outcome.status.evidence is not None
            assert outcome.status.evidence.pod_health.total == result.pods, outcome.status.evidence.pod_health
            if cache is not None:
                assert outcome.collected.from_memory == ("pods", "events"), outcome.collected.from_memory
    finally:
        if cache is not None:
            await cache.stop()
            await cache.kube.close()
        await kube.close()
        await prometheus.close()


async def cache_warm(operator: OperatorProcess, metrics_port: int, seconds: float) -> None:
    """Until the operator's metrics say every evidence-cache store serves from memory."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)).text
            except httpx.HTTPError:
                text = ""
            ready = [ln for ln in text.splitlines() if ln.startswith("stanch_evidence_cache_ready{")]
            if ready and all(ln.endswith(" 1.0") for ln in ready):
                return
            await asyncio.sleep(0.1)
    raise SystemExit(f"the operator's evidence cache was not ready within {seconds:g}s:\n{operator.tail()}")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def end_to_end(
    world: WorldInfo,
    ns: str,
    name: str,
    runs: int,
    result: SizeResult,
    logs: Path,
    signals: Path,
    use_cache: bool,
) -> None:
    metrics_port = free_loopback_port()
    extra = ["--signals", str(signals), "--metrics-address", f"127.0.0.1:{metrics_port}"]
    operator = OperatorProcess(
        operator_kubeconfig(world),  # the shipped ServiceAccount's credentials, as in production
        world.prometheus_url,
        [ns],
        logs,
        extra_args=[*extra, "--evidence-cache" if use_cache else "--no-evidence-cache"],
    )
    started_at = time.perf_counter()
    operator.start()
    # The person filing Incidents, not the operator: the operator's permissions table does not apply.
    kube: KubeClient = UserKubeClient.from_env(world.kubeconfig)
    try:
        if use_cache:
            await cache_warm(operator, metrics_port, 120)
            result.cache_warm_s = time.perf_counter() - started_at
        if operator.proc is not None:
            result.operator_rss_mib = rss_mib(operator.proc.pid)
        for run in range(runs):
            incident = {
                "apiVersion": "stanch.dev/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": f"bench-{run}", "namespace": ns},
                "spec": {"target": {"kind": "Deployment", "name": name}, "lookback": "5m"},
            }
            started = time.perf_counter()
            await kube.create(incident)
            while True:
                got = await kube.get("Incident", f"bench-{run}", ns)
                status = (got or {}).get("status") or {}
                if status.get("hypotheses") and status.get("evidence"):
                    break
                if time.perf_counter() - started > 60:
                    raise SystemExit(f"no investigation after 60s:\n{operator.tail()}")
                await asyncio.sleep(0.02)
            result.end_to_end_ms.append((time.perf_counter() - started) * 1000)
            # Gone before the next run, so its refreshes do not compete with the next measurement;
            # deleted while the operator runs, so it can remove its finalizer.
            await kube.delete("Incident", f"bench-{run}", ns)
            for _ in range(100):
                if await kube.get("Incident", f"bench-{run}", ns) is None:
                    break
                await asyncio.sleep(0.2)
    finally:
        await kube.close()
        operator.stop()


async def wait_recorded(world: WorldInfo, ns: str, window: str, seconds: float) -> None:
    """Until the recording rules have series for the namespace (they start at the first evaluation)."""
    prometheus = PrometheusClient(world.prometheus_url)
    query = f'count({recorded_names(window)["requests"]}{{namespace="{ns}"}})'
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            reply = await prometheus.query(query)
            if reply:
                return
            await asyncio.sleep(1)
    finally:
        await prometheus.close()
    raise SystemExit(f"the recording rules produced no series for {ns} in {seconds:.0f}s")


async def bench_size(
    world: WorldInfo,
    pods: int,
    runs: int,
    keep: bool,
    logs: Path,
    signals: dict[str, str],
    window: str | None,
    use_cache: bool,
) -> SizeResult:
    """``window`` is set when the signals read recording rules (their rate window)."""
    ns = f"bench-{pods}-{uuid.uuid4().hex[:5]}"
    name = "api"
    # Setting up the benchmark (namespace, workload, Events) is the admin's work, not the operator's.
    kube: KubeClient = UserKubeClient.from_env(world.kubeconfig)
    try:
        await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await kube.create(
            {**deployment(name, pods), "metadata": {"name": name, "namespace": ns, "labels": {"app": name}}}
        )
        await wait_ready(kube, ns, name, pods, seconds=60 + pods * 0.5)
        pod_list = await kube.list("Pod", ns, label_selector=f"app={name}")
        events = await create_events(kube, ns, pod_list)
        await asyncio.sleep(5)  # a few scrapes of the new pods
        if window is not None:
            await wait_recorded(world, ns, window, 60)
        result = SizeResult(pods=len(pod_list), events=events)
        print(f"{ns}: {len(pod_list)} pods, {events} events", file=sys.stderr)
        await refreshes(world, ns, name, runs, result, signals, use_cache)
        await end_to_end(world, ns, name, runs, result, logs / ns, logs / "signals.yaml", use_cache)
        return result
    finally:
        if not keep:
            await kube.delete("Namespace", ns)
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.investigation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="10,100,1000", help="pod counts, comma-separated")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per size (median reported)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark namespaces")
    parser.add_argument(
        "--window",
        default="15s",
        help="rate window of the signal templates (default 15s: 15 samples at the local world's 1s"
        " scrape interval, as 5m is at a production 20s interval)",
    )
    parser.add_argument(
        "--recorded",
        action="store_true",
        help="load `stanch recording-rules` into the world's Prometheus and use the templates reading them",
    )
    parser.add_argument(
        "--evidence-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read pods and Events from the evidence cache, as the operator does by default (default on)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    world = LocalWorld().healthy() or LocalWorld().up()
    subprocess.run(  # noqa: S603 - kubectl of the local world, fixed arguments
        [
            world.kubectl,
            "--kubeconfig",
            world.kubeconfig,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            str(REPO / "crds"),
        ],
        check=True,
        capture_output=True,
    )
    results = []
    signals = templates(args.window, args.recorded)
    if args.recorded:
        load_rules(
            Path(world.state_dir),
            world.prometheus_url,
            RULES_NAME,
            recording_rules(args.window, RULE_INTERVAL),
        )
    try:
        with tempfile.TemporaryDirectory(prefix="stanch-bench-") as tmp:
            (Path(tmp) / "signals.yaml").write_text(json.dumps(signals))  # JSON is YAML
            for size in (int(s) for s in args.sizes.split(",")):
                results.append(
                    asyncio.run(
                        bench_size(
                            world,
                            size,
                            args.runs,
                            args.keep,
                            Path(tmp),
                            signals,
                            args.window if args.recorded else None,
                            args.evidence_cache,
                        )
                    )
                )
    finally:
        if args.recorded:
            load_rules(Path(world.state_dir), world.prometheus_url, RULES_NAME, None)
    print(f"| {' | '.join(COLUMNS)} |")
    print("|" + "---|" * len(COLUMNS))
    for r in results:
        print(r.row())
    collectors = sorted({c for r in results for c in r.collector_ms})
    print()
    print("| pods | " + " | ".join(f"{c} ms" for c in collectors) + " |")
    print("|---|" + "---|" * len(collectors))
    for r in results:
        cells = [
            f"{statistics.median(r.collector_ms[c]):.0f}" if c in r.collector_ms else "-" for c in collectors
        ]
        print(f"| {r.pods} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
