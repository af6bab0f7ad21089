"""The world's binaries are the pinned versions: each reports the version `versions.env` names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e.cluster import WorldInfo
from e2e.cluster.config import binaries, read_versions

pytestmark = pytest.mark.local_world("world-processes")


def version_line(binary: Path, *args: str) -> str:
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout + out.stderr


def test_every_binary_reports_its_pinned_version(world: WorldInfo) -> None:
    pinned = read_versions()
    built = binaries(pinned)
    assert not built.missing(), built.missing()
    k8s, etcd, kwok = pinned["K8S_VERSION"], pinned["ETCD_VERSION"], pinned["KWOK_VERSION"]
    for binary in (built.kube_apiserver, built.kube_controller_manager, built.kube_scheduler):
        assert version_line(binary, "--version").strip() == f"Kubernetes {k8s}", binary
    assert f"Client Version: {k8s}" in version_line(built.kubectl, "version", "--client")
    assert f"etcd Version: {etcd.removeprefix('v')}" in version_line(built.etcd, "--version")
    for binary in (built.kwok, built.kwokctl):
        assert f"version {kwok} " in version_line(binary, "--version"), binary
