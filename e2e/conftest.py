"""pytest fixtures for the real-cluster suite.

The session brings the local world up (or reuses one that is already healthy, e.g. after
`make cluster-up`), gives each test its own namespace, and tears down only what it started.
`E2E_CLUSTER=kind` runs the same suite against the cluster of the current KUBECONFIG (a kind cluster
where Docker exists); Prometheus and the simulator must then be provided (see docs/local-cluster.md).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster import LocalWorld, WorldInfo
from e2e.kube import Kube, release_nodes
from e2e.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenarios: the public scenario suite, about 8 minutes (in make test; alone: make scenarios-test;"
        " without it: pytest e2e/tests -m 'not scenarios')",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def world() -> Iterator[WorldInfo]:
    if os.environ.get("E2E_CLUSTER") == "kind":
        kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        yield WorldInfo(
            kubeconfig=kubeconfig,
            kubectl=os.environ.get("KUBECTL", "kubectl"),
            prometheus_url=os.environ["STANCH_PROMETHEUS_URL"],
            simulator_url=os.environ.get("STANCH_SIMULATOR_URL"),
            state_dir="",
            nodes=[],
            startup_seconds=0.0,
        )
        return
    local = LocalWorld()
    reused = local.healthy()
    info = reused or local.up()
    yield info
    if reused is None and os.environ.get("E2E_KEEP_CLUSTER") != "1":
        local.down()


@pytest.fixture(scope="session")
def kube(world: WorldInfo) -> Kube:
    return Kube(world.kubectl, world.kubeconfig)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    kube.run("create", "namespace", name)
    kube.wait_for(lambda: kube.ok("get", "serviceaccount", "default", "-n", name), 30, "default SA")
    yield name
    release_nodes(kube, name)
    kube.run("delete", "namespace", name, "--wait=false")


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


@pytest.fixture(scope="session")
def crds_installed(kube: Kube) -> None:
    """Stanch's CRDs, applied from crds/ exactly as a cluster admin would."""
    kube.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
    kube.run(
        "wait",
        "--for",
        "condition=established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=stanch",
        "--timeout=60s",
    )


@pytest.fixture
def operator(
    world: WorldInfo, namespace: str, crds_installed: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`stanch run` scoped to the test's namespace; killed and restartable by the test."""
    proc = OperatorProcess(world.kubeconfig, world.prometheus_url, [namespace], tmp_path / "operator")
    proc.start()
    yield proc
    proc.stop()
