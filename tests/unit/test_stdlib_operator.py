"""`operator/` is our source root; `import operator` must still be the standard library, however
the project is run. A shadowing here breaks Kopf, pydantic and half the standard library at once."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import stanch

REPO = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
PROBE = (
    "import operator\n"
    'print("OPERATOR=" + operator.__file__)\n'
    'print("ITEMGETTER=" + str(hasattr(operator, "itemgetter")))\n'
)


def _assert_stdlib(output: str) -> None:
    lines = dict(
        line.split("=", 1) for line in output.splitlines() if line.startswith(("OPERATOR=", "ITEMGETTER="))
    )
    assert "OPERATOR" in lines, output
    assert Path(lines["OPERATOR"]).resolve().parent == STDLIB, output
    assert lines["ITEMGETTER"] == "True", output


def _interactive_after(args: list[str], cwd: Path) -> str:
    # `-i` keeps the very process that ran the command alive and reads the probe from stdin, so the
    # check sees exactly the sys.path that `python -m stanch` or the console script had.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    result = subprocess.run(
        [sys.executable, "-q", "-i", *args],
        input=PROBE,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    return result.stdout + result.stderr


def test_in_process_under_pytest() -> None:
    import operator

    assert Path(operator.__file__).resolve().parent == STDLIB
    assert callable(operator.itemgetter)


def test_source_root_is_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    assert Path(stanch.__file__).resolve().parent == REPO / "operator" / "stanch"


def test_no_module_of_ours_is_named_after_the_standard_library() -> None:
    clashes = [
        str(path.relative_to(REPO))
        for path in (REPO / "operator" / "stanch").rglob("*.py")
        if path.stem in sys.stdlib_module_names and path.stem != "__init__"
    ]
    assert clashes == []


@pytest.mark.parametrize("cwd", [REPO, REPO / "operator"], ids=["repo-root", "operator-dir"])
def test_python_dash_m_stanch(cwd: Path) -> None:
    output = _interactive_after(["-m", "stanch", "version"], cwd)
    assert "stanch " + stanch.__version__ in output
    _assert_stdlib(output)


def test_installed_console_script() -> None:
    script = Path(sys.executable).parent / "stanch"
    if not script.exists():
        pytest.fail(f"console script {script} is missing: run `make dev` (pip install -e .)")
    output = _interactive_after([str(script), "version"], REPO)
    assert "stanch " + stanch.__version__ in output
    _assert_stdlib(output)


def test_python_dash_c_from_repo_root() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    _assert_stdlib(result.stdout)
