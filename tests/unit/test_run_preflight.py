"""`stanch run` without credentials, or with an API server that does not answer, stops at once with
one line (it used to log a multi-kilobyte traceback every 60 s from Kopf's login)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

STANCH = [sys.executable, "-m", "stanch"]
ARGS = [
    "run",
    "-A",
    "--prometheus-url",
    "http://127.0.0.1:9",
    "--metrics-address",
    "off",
    "--liveness",
    "off",
]


def run(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return subprocess.run(
        [*STANCH, *ARGS, "--log-format", "json", *extra],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_credentials(tmp_path: Path) -> None:
    result = run({"HOME": str(tmp_path)})
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "no Kubernetes credentials found; pass --kubeconfig FILE" in lines[0]
    assert "Traceback" not in lines[0]


def test_an_api_server_that_does_not_answer(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t0ps3cr3t-token-value"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = run({"HOME": str(tmp_path)}, "--kubeconfig", str(config))
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "cannot connect to the API server" in lines[0]
    assert "https://127.0.0.1:9" in lines[0]
    assert f"--kubeconfig {config}" in lines[0]
    assert "t0ps3cr3t" not in lines[0]


def test_a_context_that_does_not_exist(tmp_path: Path) -> None:
    result = run({"HOME": str(tmp_path)}, "--kubeconfig", str(tmp_path / "none"))
    assert result.returncode == 1
    assert f"--kubeconfig {tmp_path / 'none'}: no such file" in result.stdout + result.stderr
