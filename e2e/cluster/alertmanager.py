"""A real Alertmanager (and the Prometheus that fires into it) owned by one test: loopback only,
gossip off, state in the test's own directory, stopped when the test ends.

Debian packages Alertmanager as ``prometheus-alertmanager`` (``make cluster-deps`` installs it);
an upstream build is called ``alertmanager``. Neither is part of the shared world: a test that
needs alerts starts its own pair, so nothing it loads can fire into another test.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from e2e.cluster.processes import free_loopback_port
from e2e.cluster.prometheus import SCRAPE_INTERVAL, find_prometheus

BINARIES = ("prometheus-alertmanager", "alertmanager")


def find_alertmanager() -> str:
    for name in BINARIES:
        path = shutil.which(name)
        if path is not None:
            return path
    raise RuntimeError(
        "Alertmanager is not installed: run `make cluster-deps` (installs the Debian package"
        " 'prometheus-alertmanager')"
    )


def webhook_config(
    url: str,
    token_file: Path,
    *,
    group_by: list[str],
    group_wait: str = "1s",
    group_interval: str = "2s",
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """An Alertmanager config with one route to Stanch's receiver, as docs/alertmanager.md shows it
    (with short waits: a test cannot sit through the 30s/5m defaults)."""
    http_config: dict[str, Any] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    if ca_file is not None:
        http_config["tls_config"] = {"ca_file": str(ca_file)}
    return {
        "route": {
            "receiver": "stanch",
            "group_by": group_by,
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "stanch",
                "webhook_configs": [
                    {"url": url, "send_resolved": True, "max_alerts": 50, "http_config": http_config}
                ],
            }
        ],
    }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def _process(name: str, argv: list[str], workdir: Path, url: str) -> Iterator[str]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
        )
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        _stop(proc)


@contextlib.contextmanager
def alertmanager(config: dict[str, Any], workdir: Path) -> Iterator[str]:
    """Run Alertmanager with ``config`` on a loopback port; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_loopback_port()
    argv = [
        find_alertmanager(),
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # No gossip: an empty address disables clustering (the default listens on 0.0.0.0:9094).
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    with _process("alertmanager", argv, workdir, f"http://127.0.0.1:{port}") as url:
        yield url


@contextlib.contextmanager
def alerting_prometheus(
    scrape_target: str, alertmanager_url: str, rules: dict[str, Any], workdir: Path
) -> Iterator[str]:
    """A Prometheus that scrapes ``scrape_target`` (the world's simulator, labels kept), evaluates
    ``rules`` every second and sends its alerts to ``alertmanager_url``; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "workloads",
                "honor_labels": True,
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": [scrape_target]}],
            }
        ],
        "rule_files": [str(workdir / "rules.yaml")],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}]
        },
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_loopback_port()
    argv = [
        find_prometheus(),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--query.lookback-delta=30s",
        # Firing alerts are re-sent this often (default 1m); resolved ones are sent at once.
        "--rules.alert.resend-delay=2s",
    ]
    with _process("prometheus", argv, workdir, f"http://127.0.0.1:{port}") as url:
        yield url
