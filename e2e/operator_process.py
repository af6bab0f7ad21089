"""Run the Stanch operator as a real process against the local world, the way it runs in production
(`stanch run`), scoped to one test namespace so tests never see each other's objects.

Tests can kill it at any moment (SIGKILL, no cleanup) and start it again, to prove crash safety.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from e2e.cluster.processes import free_loopback_port
from e2e.identity import OPERATOR_USER, is_token_kubeconfig

REPO = Path(__file__).resolve().parents[1]


class OperatorProcess:
    """``kubeconfig`` authenticates as the shipped ServiceAccount (``e2e.identity.operator_kubeconfig``):
    the operator never runs as admin, so a permission missing from manifests/rbac.yaml fails here."""

    def __init__(
        self,
        kubeconfig: str,
        prometheus_url: str,
        namespaces: list[str],
        log_dir: Path,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.prometheus_url = prometheus_url
        self.namespaces = namespaces
        self.log_dir = log_dir
        self.extra_args = extra_args or []
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.liveness_port = 0

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, timeout: float = 30.0) -> None:
        if not is_token_kubeconfig(self.kubeconfig):
            raise AssertionError(
                f"{self.kubeconfig} is not a token kubeconfig: run the operator as {OPERATOR_USER}"
                " (e2e.identity.operator_kubeconfig(world)), never with admin credentials"
            )
        self.starts += 1
        self.liveness_port = free_loopback_port()
        args = [sys.executable, "-m", "stanch", "run", "--standalone", "--log-format", "json"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += [
            "--prometheus-url", self.prometheus_url,
            "--liveness", f"127.0.0.1:{self.liveness_port}/healthz",
            "--metrics-address", "off",
            *self.extra_args,
        ]  # fmt: skip
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, **self.env}
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        # A process that never became live is nobody's to stop later (the fixture that started it
        # never reaches its teardown): left running, it would keep acting on the test's namespace.
        self.kill()
        raise AssertionError(f"operator not live after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no finalisers, no graceful shutdown — a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for path in sorted(self.log_dir.glob("operator-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records
