"""Every package that Stanch's own code imports is declared in pyproject.toml, and every declared
runtime dependency is imported by something (or says why not). A package that arrives only as
someone else's dependency (httpx2 through lightkube, msgspec through lightkube) can vanish or change
major version under us with a lightkube upgrade."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "operator" / "stanch"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

# Declared but not imported by name, each for a reason.
NOT_IMPORTED: dict[str, str] = {}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def imported_top_level() -> dict[str, list[str]]:
    """Top-level module names imported anywhere in operator/stanch (lazy imports included), with
    where; standard library and stanch itself left out."""
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("stanch", "__future__"):
                    continue
                line = getattr(node, "lineno", 0)
                found.setdefault(top, []).append(f"{path.relative_to(REPO)}:{line}")
    return found


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Every installed distribution that provides ``module`` (lightkube and lightkube-models both
    install into ``lightkube``)."""
    dists = _providers().get(module)
    assert dists, f"{module} is imported but no installed distribution provides it"
    return {d.lower().replace("_", "-") for d in dists}


def test_the_scan_sees_the_imports() -> None:
    # It would pass vacuously if it found nothing.
    assert {"kopf", "pydantic", "lightkube", "httpx2", "structlog", "yaml"} <= set(imported_top_level())


def test_every_imported_package_is_declared() -> None:
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    optional = {
        extra: {_name(r) for r in reqs}
        for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()
        if extra != "dev"
    }
    missing = []
    for module, where in sorted(imported_top_level().items()):
        dists = distributions_of(module)
        if dists & declared:
            continue
        extras = [extra for extra, names in optional.items() if dists & names]
        if extras:
            # An optional feature's package may only be imported lazily, inside a function.
            continue
        missing.append(f"{'/'.join(sorted(dists))} (import {module}: {', '.join(where[:3])})")
    assert not missing, "imported but not declared in [project] dependencies:\n" + "\n".join(missing)


def test_every_declared_dependency_is_used() -> None:
    used = set().union(*(distributions_of(m) for m in imported_top_level()))
    unused = [
        name
        for name in (_name(r) for r in PYPROJECT["project"]["dependencies"])
        if name not in used and name not in NOT_IMPORTED
    ]
    assert not unused, f"declared but never imported by operator/stanch: {unused}"


def test_optional_packages_are_imported_lazily() -> None:
    optional = {
        _name(r)
        for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()
        if extra != "dev"
        for r in reqs
    }
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    top = name.split(".")[0]
                    if top and top not in sys.stdlib_module_names and top != "stanch" and top != "__future__":
                        assert not distributions_of(top) & optional, (
                            f"{path.relative_to(REPO)}: {top} is optional ([project.optional-dependencies]);"
                            " import it inside the function that needs it"
                        )
