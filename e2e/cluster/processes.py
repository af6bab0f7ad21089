"""Detached helper processes (Prometheus, the simulator) that outlive `make cluster-up`.

Each one is recorded by a pid file next to its log; stopping checks the pid still runs the command
we started, so a recycled pid never gets a signal meant for our process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_detached(name: str, argv: list[str], state: Path, env: dict[str, str] | None = None) -> int:
    logs = state / "logs"
    pids = state / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (pids / f"{name}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
    return proc.pid


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(name: str, state: Path) -> int | None:
    pidfile = state / "pids" / f"{name}.pid"
    if not pidfile.exists():
        return None
    lines = pidfile.read_text().split("\n")
    pid, exe = int(lines[0]), lines[1] if len(lines) > 1 else ""
    cmd = _cmdline(pid)
    if not cmd or (exe and exe not in cmd):
        return None
    return pid


def stop(name: str, state: Path, timeout: float = 10.0) -> None:
    pid = running(name, state)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _cmdline(pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    (state / "pids" / f"{name}.pid").unlink(missing_ok=True)
