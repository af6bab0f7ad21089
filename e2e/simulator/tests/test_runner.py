"""The tick loop, log files and the HTTP endpoints, without a cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from e2e.simulator.runner import Runner
from e2e.simulator.server import make_app, parse_listen
from e2e.simulator.tests.factories import T0, pod, replicas


class FakeClock:
    def __init__(self, start: float = T0 + 1000) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


def ticks(runner: Runner, clock: FakeClock, n: int) -> None:
    for _ in range(n):
        clock.t += runner.tick
        runner.tick_once()


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_logs_follow_behaviour(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = Runner(seed=1, logs_dir=tmp_path, clock=clock)
    dep = pod("checkout-1", knobs={"depends-on": "payments-db"})
    bad = pod(
        "checkout-2",
        knobs={"error-ratio": "0.5", "error-message": "upstream payment-gw timeout after {ms}ms"},
    )
    runner.set_pods([dep, bad])
    runner.set_world({"dependency.shop.payments-db": "fail"})
    ticks(runner, clock, 10)
    dep_log = read(tmp_path / "shop" / "checkout-1" / "app.log")
    bad_log = read(tmp_path / "shop" / "checkout-2" / "app.log")
    assert "INFO starting checkout" in dep_log
    assert "connection refused to payments-db:5432" in dep_log
    assert re.search(r"ERROR upstream payment-gw timeout after \d+ms request_id=[0-9a-f]{16}", bad_log)
    assert "connection refused" not in bad_log
    cri = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) F \S")
    assert all(cri.match(line) for line in bad_log.splitlines())  # what kwok's log parser accepts
    ids = re.findall(r"request_id=([0-9a-f]+)", bad_log)
    assert len(set(ids)) == len(ids) > 5  # varying ids: signatures need normalising


def test_oom_restart_writes_previous_log(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = Runner(seed=1, logs_dir=tmp_path, clock=clock)
    leaky = pod("checkout-1", knobs={"memory-leak-mb-per-min": "400"}, memory_limit_mb=256)
    runner.set_pods([leaky])
    ticks(runner, clock, 60)
    current = tmp_path / "shop" / "checkout-1" / "app.log"
    assert "java.lang.OutOfMemoryError" in read(current)
    restarted = pod("checkout-1", restarts=1)
    object.__setattr__(restarted.containers[0], "last_terminated_reason", "OOMKilled")
    runner.set_pods([restarted])
    ticks(runner, clock, 1)
    previous = read(tmp_path / "shop" / "checkout-1" / "app.previous.log")
    assert previous.rstrip().splitlines()[-2].endswith("java.lang.OutOfMemoryError: Java heap space")
    assert "OutOfMemoryError" not in read(current)


def test_gone_pod_loses_its_log_directory(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = Runner(seed=1, logs_dir=tmp_path, clock=clock)
    runner.set_pods([pod("checkout-1")])
    ticks(runner, clock, 2)
    assert (tmp_path / "shop" / "checkout-1").is_dir()
    runner.set_pods([])
    ticks(runner, clock, 1)
    assert not (tmp_path / "shop" / "checkout-1").exists()


def test_metrics_render_at_a_thousand_pods() -> None:
    """Every pod's series are rendered at scale; how fast is `python -m bench.simulator`'s to say."""
    clock = FakeClock()
    runner = Runner(seed=1, clock=clock)
    pods = []
    for w in range(50):
        pods += replicas(
            20, prefix=f"svc{w}-abc", workload=f"svc{w}", knobs={"depends-on": f"svc{(w + 1) % 50}"}
        )
    runner.set_pods(pods)
    ticks(runner, clock, 3)
    assert runner.metrics.count(b"\n") > 50_000


def test_listen_must_be_loopback() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match="loopback"):
        parse_listen("0.0.0.0:9464")
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("9464")


async def test_http_endpoints() -> None:
    clock = FakeClock()
    runner = Runner(seed=1, clock=clock)
    runner.set_pods(replicas(2))
    async with TestClient(TestServer(make_app(runner), host="127.0.0.1")) as client:
        assert (await client.get("/healthz")).status == 503
        ticks(runner, clock, 2)
        assert (await client.get("/healthz")).status == 200
        resp = await client.get("/metrics")
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "http_requests_total{" in await resp.text()

        resp = await client.put("/world", json={"traffic.shop.checkout": 300, "node.n1": "fail"})
        assert resp.status == 200
        assert runner.world.traffic_for(("shop", "checkout")) == 300
        resp = await client.patch("/world", json={"node.n1": None, "bogus": "x"})
        body = await resp.json()
        assert body["data"] == {"traffic.shop.checkout": "300", "bogus": "x"}
        assert body["problems"]
        assert "bogus" in body["problems"][0]
        assert (await client.put("/world", json=["not", "a", "map"])).status == 400
        assert (await client.put("/world", data=b"{nope")).status == 400

        ticks(runner, clock, 1)
        debug = await (await client.get("/debug/pods")).json()
        assert {p["rps"] for p in debug["pods"]} == {150.0}
        assert debug["workloads"][0]["readyPods"] == 2
