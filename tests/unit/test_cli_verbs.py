"""The on-call verbs' command line: kubectl's flags, exit 2 for usage, exit 1 and one line for what
goes wrong at run time (no tracebacks), ``--version``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stanch.adapters import credentials
from stanch.wiring.cli import main


@pytest.fixture(autouse=True)
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kubeconfig whose server refuses connections; each test starts with fresh credentials."""
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("STANCH_DEBUG", raising=False)
    credentials.select(credentials.Selection())
    yield config
    credentials.select(credentials.Selection())


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["--version"], capsys)
    assert code == 0
    assert out.startswith("stanch ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a COMMAND is required"),
        (["get", "pods"], "RESOURCE 'pods': use incidents (inc) or mitigations (mit)"),
        (["get", "inc", "x", "-A"], "-A/--all-namespaces lists; it takes no NAME"),
        (["describe", "inc", "shop/x", "-n", "other"], "names namespace shop, but -n says other"),
        (["describe", "inc", "Bad_Name"], "is not a valid object name"),
        (["describe", "inc", "x", "--timeline", "some"], "--timeline 'some'"),
        (["describe", "mit", "x", "--watch"], "describe watches Incidents"),
        (["mitigate", "x", "--hypothesis", "0"], "numbered from 1"),
        (["report", "a/b/c"], "neither NAME nor NAMESPACE/NAME"),
        (["get", "inc", "-o", "table"], "invalid choice"),
        (["audit"], "the following arguments are required"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(argv, capsys)
    assert code == 2, err
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "incidents"],
        ["get", "mit", "-A", "-o", "wide"],
        ["describe", "incident", "checkout-5xx", "-n", "shop"],
        ["mitigate", "checkout-5xx", "--yes"],
        ["abort", "checkout-rollback", "--yes"],
        ["audit", "checkout-rollback", "-o", "json"],
        ["approve", "checkout-rollback"],
        ["report", "-n", "shop", "checkout-5xx"],  # "unrecognized arguments: -n" before
    ],
)
def test_an_unreachable_server_is_one_line_exit_1(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(argv, capsys)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "cannot connect to the API server" in lines[0]
    assert "https://127.0.0.1:9" in lines[0]
    assert "Traceback" not in err


def test_context_and_kubeconfig_flags_are_used(no_cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["get", "inc", "--context", "nope"], capsys)
    assert (code, err.count("\n")) == (1, 1)
    assert "--context 'nope' is not defined (contexts: x)" in err
    code, _, err = cli(["get", "inc", "--kubeconfig", str(no_cluster) + ".missing"], capsys)
    assert code == 1
    assert "no such file" in err


def test_kubectl_runs_it_under_its_plugin_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["/usr/local/bin/kubectl-stanch"])
    code, _, err = cli(["get", "pods"], capsys)
    assert code == 2
    assert err.startswith("kubectl stanch get: error:")
