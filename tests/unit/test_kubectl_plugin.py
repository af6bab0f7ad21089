"""`kubectl-stanch`, the second console script: installed beside `stanch`, keeps the standard
library's `operator`, and is found by kubectl's plugin mechanism (`kubectl stanch ...`)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import stanch

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT = BIN / "kubectl-stanch"
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
PROBE = 'import operator\nprint("OPERATOR=" + operator.__file__)\n'


def _script() -> Path:
    if not SCRIPT.exists():
        pytest.fail(f"console script {SCRIPT} is missing: run `make dev` (pip install -e .)")
    return SCRIPT


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_plugin_script_keeps_the_stdlib_operator() -> None:
    # `-i` keeps the process that ran the script alive and reads the probe from stdin: the probe sees
    # exactly the sys.path the console script had.
    result = subprocess.run(
        [sys.executable, "-q", "-i", str(_script()), "version"],
        input=PROBE,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=False,
    )
    output = result.stdout + result.stderr
    assert f"stanch {stanch.__version__}" in output
    (line,) = [x for x in output.splitlines() if x.startswith("OPERATOR=")]
    assert Path(line.removeprefix("OPERATOR=")).resolve().parent == STDLIB, output


def test_plugin_usage_names_the_kubectl_command() -> None:
    result = subprocess.run(
        [str(_script()), "--help"], capture_output=True, text=True, timeout=60, env=_env(), check=True
    )
    assert result.stdout.startswith("usage: kubectl stanch ")


def test_kubectl_dispatches_to_the_plugin(kubectl: str) -> None:
    _script()
    # Plugin dispatch is client-side: no cluster and no kubeconfig are needed.
    result = subprocess.run(
        [kubectl, "stanch", "version"], capture_output=True, text=True, timeout=60, env=_env(), check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"stanch {stanch.__version__} ")
