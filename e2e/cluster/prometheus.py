"""Prometheus for the local world: our own process, a generated config, loopback only."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

SCRAPE_INTERVAL = "1s"


def find_prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise RuntimeError(
            "prometheus is not installed: run `make cluster-deps` (installs the Debian package 'prometheus')"
        )
    return path


def render_config(simulator_target: str, operator_target: str | None = None) -> str:
    """A config that scrapes the workload simulator (and optionally Stanch's own metrics) every second.

    ``honor_labels`` keeps the simulator's namespace/pod labels: it exports series on behalf of every
    simulated pod, like a federation endpoint or kube-state-metrics does.
    """
    scrape_configs = [
        {
            "job_name": "workloads",
            "honor_labels": True,
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "static_configs": [{"targets": [simulator_target]}],
        }
    ]
    if operator_target:
        scrape_configs.append(
            {
                "job_name": "stanch",
                "scrape_interval": "5s",
                "static_configs": [{"targets": [operator_target]}],
            }
        )
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": scrape_configs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def command(binary: str, config: Path, data: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=6h",
        # Query lookback short enough that a stopped pod's series disappear within seconds.
        "--query.lookback-delta=30s",
        "--web.enable-lifecycle",
    ]
