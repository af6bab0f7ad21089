"""Where the local world's binaries and state live, and which versions it runs.

Versions come from ``versions.env`` beside this file, the same file the build script reads, so the
Python harness and the shell build can never disagree about what is pinned.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        versions[key.strip()] = value.strip()
    return versions


def cache_dir() -> Path:
    return Path(os.environ.get("STANCH_CACHE", str(Path.home() / ".cache" / "stanch")))


@dataclass(frozen=True)
class Binaries:
    """Paths of the built control-plane binaries for the pinned versions."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwokctl: Path

    def missing(self) -> list[Path]:
        return [p for p in self.__dict__.values() if not os.access(p, os.X_OK)]


def binaries(versions: dict[str, str] | None = None) -> Binaries:
    v = versions or read_versions()
    bindir = cache_dir() / "bin"
    k8s = bindir / f"kubernetes-{v['K8S_VERSION']}"
    kwok = bindir / f"kwok-{v['KWOK_VERSION']}"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        etcd=bindir / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        kwok=kwok / "kwok",
        kwokctl=kwok / "kwokctl",
    )


def helm(versions: dict[str, str] | None = None) -> Path:
    """The pinned helm, built by the same script (`build-binaries.sh helm`). Not one of the world's
    Binaries: the world runs without it; only the chart's tests use it."""
    v = versions or read_versions()
    return cache_dir() / "bin" / f"helm-{v['HELM_VERSION']}" / "helm"


def state_dir() -> Path:
    """Runtime state of the running world (kubeconfig, pids, logs). Outside the repository."""
    return Path(os.environ.get("STANCH_CLUSTER_DIR", str(cache_dir() / "cluster")))


def kwok_module_dir(version: str) -> Path:
    """The kwok module in the Go module cache; its built-in Stages are read from here at run time."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=str(HERE),
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    ).stdout
    return Path(json.loads(out)["Dir"])
