"""The command line: usage and configuration errors exit 2 with one line naming the flag."""

from __future__ import annotations

import importlib
import os
import types
from pathlib import Path
from typing import Any

import pytest

import stanch
from stanch.core.settings import Settings
from stanch.wiring import cli

URL = "http://prometheus.monitoring.svc:9090"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STANCH_") or name == "KUBERNETES_SERVICE_HOST":
            monkeypatch.delenv(name)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["version"], capsys)
    assert code == 0
    assert out.startswith(f"stanch {stanch.__version__} (kopf ")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([], capsys)
    assert code == 2
    assert "COMMAND" in err


def test_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "--prometheus", URL], capsys)
    assert code == 2
    assert "--prometheus" in err


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["run", "-A"], ["--prometheus-url", "STANCH_PROMETHEUS_URL", "required"]),
        (["run", "-A", "--prometheus-url", "ftp://p"], ["--prometheus-url", "'ftp'", "http://"]),
        (["run", "-A", "--prometheus-url", "http://"], ["--prometheus-url", "no host"]),
        (["run", "--prometheus-url", URL], ["--namespace", "--all-namespaces"]),
        (["run", "-A", "-n", "shop", "--prometheus-url", URL], ["--namespace", "exclude each other"]),
        (["run", "-n", "Shop_1", "--prometheus-url", URL], ["--namespace", "'Shop_1'"]),
        (["run", "-A", "--prometheus-url", URL, "--liveness", "0.0.0.0"], ["--liveness", "no port"]),
        (["run", "-A", "--prometheus-url", URL, "--metrics-address", "x:99999"], ["--metrics-address"]),
        (["run", "-A", "--prometheus-url", URL, "--standalone", "--peering", "p"], ["--peering"]),
        (["run", "-A", "--prometheus-url", URL, "--priority", "top"], ["--priority", "STANCH_PRIORITY"]),
        (["run", "-A", "--prometheus-url", URL, "--peering-lifetime", "1s"], ["--peering-lifetime", "15s"]),
        (["run", "-n", "t-*", "--prometheus-url", URL, "--peering", "p"], ["--peering", "patterns"]),
        (["run", "-A", "--prometheus-url", URL, "--log-format", "xml"], ["--log-format"]),
        (["run", "-A", "--prometheus-url", URL, "--log-level", "loud"], ["--log-level"]),
    ],
)
def test_run_configuration_errors(
    argv: list[str], names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    for name in names:
        assert name in err
    assert "Traceback" not in err


def test_run_env_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STANCH_PROMETHEUS_URL", URL)
    monkeypatch.setenv("STANCH_ALL_NAMESPACES", "maybe")
    code, _, err = run_cli(["run"], capsys)
    assert code == 2
    assert "STANCH_ALL_NAMESPACES='maybe'" in err


def test_signals_file_errors_name_the_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signals = tmp_path / "signals.yaml"
    signals.write_text("checkout_errors: 'sum(rate(x{namespace=\"{{ns}}\"}[5m]))'\n")
    code, _, err = run_cli(["run", "-A", "--prometheus-url", URL, "--signals", str(signals)], capsys)
    assert code == 2
    assert "--signals" in err
    assert "'checkout_errors'" in err
    assert "{{ns}}" in err


@pytest.mark.parametrize(
    ("content", "problem"),
    [("[1, 2]", "must be a YAML mapping"), ("a: [unclosed", "not valid YAML")],
)
def test_signals_file_shape(
    tmp_path: Path, content: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    signals = tmp_path / "signals.yaml"
    signals.write_text(content)
    code, _, err = run_cli(["run", "-A", "--prometheus-url", URL, "--signals", str(signals)], capsys)
    assert code == 2
    assert problem in err


def test_missing_signals_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["run", "-A", "--prometheus-url", URL, "--signals", str(tmp_path / "no")], capsys)
    assert code == 2
    assert "--signals" in err
    assert "cannot read" in err


def test_run_hands_validated_settings_to_the_operator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Settings] = []
    import stanch.wiring.runner as runner

    def fake_run(config: Settings) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(runner, "run_operator", fake_run)
    code, _, err = run_cli(["run", "-n", "shop", "-n", "team-*", "--prometheus-url", URL + "/"], capsys)
    assert code == 0, err
    (config,) = seen
    assert config.namespaces == ("shop", "team-*")
    assert config.prometheus_url == URL
    assert config.standalone is True
    assert config.liveness_endpoint == "http://127.0.0.1:8080/healthz"


def test_report_dispatches_with_its_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from stanch.wiring import report_command

    calls: list[tuple[str, str, dict[str, Any]]] = []

    def fake(namespace: str, name: str, **kwargs: Any) -> int:
        calls.append((namespace, name, kwargs))
        return 1

    monkeypatch.setattr(report_command, "report_command", fake)
    argv = [
        "report",
        "shop/checkout-5xx",
        "--out",
        str(tmp_path / "r.md"),
        "--chart",
        str(tmp_path / "c.png"),
    ]
    code, _, _ = run_cli(argv, capsys)
    assert code == 1, "the command's own exit code is passed through"
    ((namespace, name, kwargs),) = calls
    assert (namespace, name) == ("shop", "checkout-5xx")
    assert kwargs["out"] == tmp_path / "r.md"
    assert kwargs["chart"] == tmp_path / "c.png"
    assert kwargs["alerts"] is None


def test_report_argument_shape(capsys: pytest.CaptureFixture[str]) -> None:
    # NAME with -n (kubectl's way) and NAMESPACE/NAME both work; anything else is a usage error.
    code, _, err = run_cli(["report", "shop/checkout/5xx"], capsys)
    assert code == 2
    assert "NAMESPACE/NAME" in err


def test_crds_dispatches_to_the_generator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Path, bool]] = []

    def crds_command(out: Path, check: bool) -> int:
        calls.append((out, check))
        return 3

    fake = types.SimpleNamespace(crds_command=crds_command)
    monkeypatch.setattr(importlib, "import_module", lambda name: fake)
    code, _, _ = run_cli(["crds", "--check", "--out", "/tmp/x"], capsys)
    assert code == 3
    assert calls == [(Path("/tmp/x"), True)]


def test_crds_without_the_generator_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", missing)
    code, _, err = run_cli(["crds"], capsys)
    assert code == 1
    assert "stanch.wiring.crds_command" in err


def test_prog_name_as_kubectl_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["/usr/local/bin/kubectl-stanch"])
    assert cli.build_parser().prog == "kubectl stanch"


def test_the_cli_builds_and_answers_version_without_importing_kopf() -> None:
    """Every `kubectl stanch` verb parses with this parser; Kopf's import cost seconds on a loaded
    node, and only `stanch run` needs it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from stanch.wiring import cli\n"
        "cli.build_parser().parse_args(['version'])\n"
        "print(sorted(m for m in sys.modules if m == 'kopf' or m.startswith('kopf.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
