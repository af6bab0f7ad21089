"""plugins/stanch.yaml is a valid krew Plugin manifest (krew's own structural rules:
internal/index/validation in krew) whose sha256 is that of the archive scripts/krew_package.py builds
from plugins/kubectl-stanch today, and the launcher in it runs the CLI."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import stanch

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "plugins" / "stanch.yaml"
# semver with krew's required leading v
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def package_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("krew_package", REPO / "scripts" / "krew_package.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def krew_problems(name: str, plugin: dict[str, Any]) -> list[str]:
    """krew's ValidatePlugin, rule by rule."""
    problems = []
    if plugin.get("apiVersion") != "krew.googlecontainertools.github.com/v1alpha2":
        problems.append(f"apiVersion {plugin.get('apiVersion')!r}")
    if plugin.get("kind") != "Plugin":
        problems.append(f"kind {plugin.get('kind')!r}")
    if not re.match(r"^[\w-]+$", name):
        problems.append(f"unsafe name {name!r}")
    if (plugin.get("metadata") or {}).get("name") != name:
        problems.append("metadata.name must match the file name")
    spec = plugin.get("spec") or {}
    short = spec.get("shortDescription") or ""
    if not short or "\n" in short or "\r" in short:
        problems.append("shortDescription: one line, required")
    if not SEMVER.match(spec.get("version") or ""):
        problems.append(f"version {spec.get('version')!r} is not v-prefixed semver")
    platforms = spec.get("platforms") or []
    if not platforms:
        problems.append("no platforms")
    for p in platforms:
        if not p.get("uri"):
            problems.append("platform without uri")
        if not re.match(r"^[a-f0-9]{64}$", p.get("sha256") or ""):
            problems.append(f"sha256 {p.get('sha256')!r}")
        if not p.get("bin"):
            problems.append("platform without bin")
        files = p.get("files")
        if files is not None and (not files or any(not f.get("from") or not f.get("to") for f in files)):
            problems.append("files: from and to on every entry")
        selector = p.get("selector")
        if not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions")):
            problems.append("empty selector")
        else:
            keys = list(selector.get("matchLabels") or {}) + [
                e.get("key") for e in selector.get("matchExpressions") or []
            ]
            problems += [f"selector key {k!r}" for k in keys if k not in ("os", "arch")]
    return problems


def test_the_manifest_passes_krews_rules() -> None:
    plugin = yaml.safe_load(MANIFEST.read_text())
    assert krew_problems(MANIFEST.stem, plugin) == []
    assert plugin["spec"]["version"] == f"v{stanch.__version__}"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p["spec"].update(version="0.1.0"), "not v-prefixed semver"),
        (lambda p: p["spec"]["platforms"][0].update(sha256="abc"), "sha256"),
        (lambda p: p["metadata"].update(name="other"), "must match the file name"),
        (lambda p: p["spec"].update(shortDescription="two\nlines"), "one line"),
        (
            lambda p: p["spec"]["platforms"][0].update(selector={"matchLabels": {"distro": "x"}}),
            "selector key",
        ),
    ],
)
def test_the_rules_catch_what_krew_refuses(change: Any, problem: str) -> None:
    plugin = yaml.safe_load(MANIFEST.read_text())
    change(plugin)
    assert any(problem in p for p in krew_problems("stanch", plugin))


def test_the_sha256_is_that_of_a_fresh_build() -> None:
    data, text = package_script().render()
    assert text == MANIFEST.read_text(), "plugins/stanch.yaml is stale: run scripts/krew_package.py"
    plugin = yaml.safe_load(MANIFEST.read_text())
    assert plugin["spec"]["platforms"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert package_script().build_archive() == data, "the archive is not reproducible"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode) == (plugin["spec"]["platforms"][0]["bin"], 0o755)


def test_the_launcher_runs_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "STANCH_PYTHON": sys.executable}
    out = subprocess.run(
        ["sh", str(REPO / "plugins" / "kubectl-stanch"), "get", "pods"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith("kubectl stanch get: error:"), out.stderr
    missing = subprocess.run(
        ["/bin/sh", str(REPO / "plugins" / "kubectl-stanch"), "version"],
        env={"PATH": str(tmp_path), "STANCH_PYTHON": "/nonexistent"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "pip install stanch" in missing.stderr
