"""Prometheus for the local world: our own process, a generated config, loopback only."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml

from e2e.shared import GUARD

SCRAPE_INTERVAL = "1s"


def find_prometheus() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise RuntimeError(
            "prometheus is not installed: run `make cluster-deps` (installs the Debian package 'prometheus')"
        )
    return path


RULES_DIR = "prometheus-rules"
"""Under the world's state directory: rule files Prometheus loads (``load_rules``), none by default."""


def render_config(
    simulator_target: str, operator_target: str | None = None, rules_dir: Path | None = None
) -> str:
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
    config: dict[str, Any] = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": scrape_configs,
    }
    if rules_dir is not None:
        config["rule_files"] = [str(rules_dir / "*.yaml")]
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


def load_rules(state_dir: Path, prometheus_url: str, name: str, rules: dict[str, Any] | None) -> None:
    """Give the world's Prometheus a rule file (``None`` removes it) and reload its configuration.

    Raises RuntimeError when Prometheus refuses the rules or was started without a rules directory
    (a world from before rule support: restart it)."""
    GUARD.allow("world-processes", f"load rule file {name!r} into the world's Prometheus and reload it")
    directory = state_dir / RULES_DIR
    if not directory.is_dir():
        raise RuntimeError(f"{directory} does not exist: restart the world (python -m e2e.cluster down; up)")
    path = directory / f"{name}.yaml"
    if rules is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
    reply = httpx.post(f"{prometheus_url}/-/reload", timeout=30)
    if reply.status_code != 200:
        raise RuntimeError(f"Prometheus refused the reload ({reply.status_code}): {reply.text[:500]}")
