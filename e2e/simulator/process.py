"""Run the simulator as a subprocess, for test fixtures: ``start_simulator(...)`` -> handle.

sim = start_simulator(kubeconfig, port=9464, logs_dir=tmp / "logs", seed=7)
try:
    sim.put_world({"traffic.shop.checkout": "300"})
    ...
finally:
    sim.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class SimulatorError(RuntimeError):
    pass


@dataclass
class SimulatorHandle:
    process: subprocess.Popen[bytes]
    port: int
    logs_dir: Path
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        """What a Prometheus static_config wants."""
        return f"127.0.0.1:{self.port}"

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def metrics(self) -> str:
        with self._client() as c:
            return c.get("/metrics").raise_for_status().text

    def world(self) -> dict[str, str]:
        with self._client() as c:
            body: dict[str, Any] = c.get("/world").raise_for_status().json()
            return dict(body["data"])

    def put_world(self, data: Mapping[str, str]) -> dict[str, Any]:
        with self._client() as c:
            result: dict[str, Any] = c.put("/world", json=dict(data)).raise_for_status().json()
            return result

    def patch_world(self, changes: Mapping[str, str | None]) -> dict[str, Any]:
        with self._client() as c:
            result: dict[str, Any] = c.patch("/world", json=dict(changes)).raise_for_status().json()
            return result

    def debug_pods(self) -> dict[str, Any]:
        with self._client() as c:
            result: dict[str, Any] = c.get("/debug/pods").raise_for_status().json()
            return result

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def start_simulator(
    kubeconfig: str | os.PathLike[str],
    port: int,
    logs_dir: str | os.PathLike[str],
    seed: int = 0,
    *,
    tick: str = "1s",
    startup_timeout: float = 30.0,
    log_file: str | os.PathLike[str] | None = None,
    kwok_logs: bool = True,
) -> SimulatorHandle:
    """Start ``python -m e2e.simulator`` and wait until /healthz answers (caches synced, one tick)."""
    logs = Path(logs_dir).resolve()
    logs.mkdir(parents=True, exist_ok=True)
    out = Path(log_file) if log_file else logs / "simulator.out"
    cmd = [
        sys.executable,
        "-m",
        "e2e.simulator",
        "--kubeconfig",
        str(Path(kubeconfig).resolve()),
        "--listen",
        f"127.0.0.1:{port}",
        "--logs-dir",
        str(logs),
        "--seed",
        str(seed),
        "--tick",
        tick,
    ]
    if not kwok_logs:
        cmd.append("--no-kwok-logs")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with out.open("ab") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    handle = SimulatorHandle(proc, port, logs, out)
    deadline = time.monotonic() + startup_timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SimulatorError(f"simulator exited with {proc.returncode}; see {out}")
            try:
                if client.get(f"{handle.url}/healthz").status_code == 200:
                    return handle
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    handle.stop()
    raise SimulatorError(f"simulator not healthy within {startup_timeout}s; see {out}")
