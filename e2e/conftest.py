"""pytest fixtures for the real-cluster suite.

The session brings the local world up (or reuses one that is already healthy, e.g. after
`make cluster-up`), gives each test its own namespace, and tears down only what it started.
`E2E_CLUSTER=kind` runs the same suite against the cluster of the current KUBECONFIG (a kind cluster
where Docker exists) and a Prometheus given by STANCH_PROMETHEUS_URL; the tests marked
``local_world(...)`` need what only the local world has (kwok's pods, nodes and Stages, the
simulator, processes on this host) and are skipped there, naming what they need
(see docs/local-cluster.md).

Parallel: `make e2e` runs the suite in pytest-xdist workers and then, alone, the tests marked
``serial(shared, ...)`` (``python -m e2e.run``). A test that writes what every test shares without
that mark fails at the write (``e2e.shared``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from e2e.cluster import LocalWorld, WorldInfo
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, install_crds, release_nodes
from e2e.operator_process import OperatorProcess
from e2e.scenario import scorecard
from e2e.shared import GUARD, SHARED

REPO = Path(__file__).resolve().parents[1]


# What a test marked ``local_world(need, ...)`` needs that only the local world provides. Under
# E2E_CLUSTER=kind such a test is skipped with these reasons; in the local world it always runs.
LOCAL_WORLD_NEEDS: dict[str, str] = {
    "ready-pods": "Running and Ready pods of the placeholder registry.example/* images"
    " (kwok runs no containers; a real kubelet cannot pull them)",
    "lifecycle-stages": "the kwok Stages behind sim.stanch.dev/lifecycle"
    " (crash loop, OOMKilled, image pull failure, never Ready)",
    "kwok-nodes": "the fake nodes kwok-node-0..2 and their node-not-ready.stage.kwok.x-k8s.io Stage",
    "simulator": "the workload simulator: per-pod series of running pods in Prometheus, world keys,"
    " pod logs served through kwok",
    "prometheus-process": "a Prometheus binary and the world's state directory on this host",
    "world-processes": "the local world's processes on this host (etcd, kube-apiserver, Prometheus)",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenarios: the public scenarios, one test each (in make test; alone: make scenarios-test;"
        " without them: python -m e2e.run -m 'not scenarios')",
    )
    config.addinivalue_line(
        "markers",
        "local_world(*needs): needs what only the local world has (one or more of: "
        + ", ".join(LOCAL_WORLD_NEEDS)
        + "); skipped under E2E_CLUSTER=kind, always run in the local world",
    )
    config.addinivalue_line(
        "markers",
        "serial(*shared): writes what every test shares (one or more of: "
        + ", ".join(SHARED)
        + "); make e2e runs it alone, after the parallel group (pytest -m serial, without -n)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """A run starts a new scorecard, unless it continues one (`make e2e`'s serial group)."""
    if not is_worker(session.config) and os.environ.get("E2E_KEEP_SCORES") != "1":
        scorecard.clear_scores(scorecard.SCORES_DIR)


def is_worker(config: pytest.Config) -> bool:
    """An xdist worker: one of several processes running tests side by side."""
    return hasattr(config, "workerinput")


def serial_shared(marks: Iterable[tuple[object, ...]], where: str) -> list[str]:
    """The shared things named by a test's ``serial`` marks; a mark naming none or an unknown one
    is a usage error."""
    shared: list[str] = []
    for args in marks:
        if not args:
            raise pytest.UsageError(f"{where}: serial() names nothing shared; use some of {list(SHARED)}")
        for thing in args:
            if not isinstance(thing, str) or thing not in SHARED:
                raise pytest.UsageError(f"{where}: unknown serial thing {thing!r}; known: {list(SHARED)}")
            if thing not in shared:
                shared.append(thing)
    return shared


def declared_shared(node: pytest.Item) -> list[str]:
    return serial_shared((m.args for m in node.iter_markers("serial")), node.nodeid)


def local_world_needs(marks: Iterable[tuple[object, ...]], where: str) -> list[str]:
    """The needs named by the arguments of a test's ``local_world`` marks (closest first, without
    repeats); a mark without needs or with an unknown one is a usage error, in every cluster mode."""
    needs: list[str] = []
    for args in marks:
        if not args:
            raise pytest.UsageError(
                f"{where}: local_world() names no need; use some of {list(LOCAL_WORLD_NEEDS)}"
            )
        for need in args:
            if not isinstance(need, str) or need not in LOCAL_WORLD_NEEDS:
                raise pytest.UsageError(
                    f"{where}: unknown local_world need {need!r}; known: {list(LOCAL_WORLD_NEEDS)}"
                )
            if need not in needs:
                needs.append(need)
    return needs


def kind_skip_reason(needs: list[str], cluster: str | None) -> str | None:
    """Why a test with these local-world needs is skipped on ``cluster`` (E2E_CLUSTER), or None:
    only the kind path skips, and only tests that name a need."""
    if cluster != "kind" or not needs:
        return None
    return "E2E_CLUSTER=kind: needs the local world: " + "; ".join(
        f"{need}: {LOCAL_WORLD_NEEDS[need]}" for need in needs
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    cluster = os.environ.get("E2E_CLUSTER")
    for item in items:
        item.add_marker(pytest.mark.cluster)
        declared_shared(item)  # a malformed serial mark is a usage error at collection
        needs = local_world_needs((m.args for m in item.iter_markers("local_world")), item.nodeid)
        reason = kind_skip_reason(needs, cluster)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@contextlib.contextmanager
def _world_lock(local: LocalWorld) -> Iterator[None]:
    """One process at a time checks and brings up the world: parallel workers start together."""
    local.state.parent.mkdir(parents=True, exist_ok=True)
    with (local.state.parent / f"{local.state.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def world(pytestconfig: pytest.Config) -> Iterator[WorldInfo]:
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
    with _world_lock(local):
        reused = local.healthy()
        info = reused or local.up()
    yield info
    # A worker that brought the world up leaves it to the others still running (`make e2e` brings
    # it up before the workers start and down after the serial group).
    if reused is None and not is_worker(pytestconfig) and os.environ.get("E2E_KEEP_CLUSTER") != "1":
        local.down()


@pytest.fixture(scope="session")
def kube(world: WorldInfo) -> Kube:
    return Kube(world.kubectl, world.kubeconfig)


@pytest.fixture(autouse=True)
def _shared_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Writes to what every test shares fail unless the test declared them with ``serial(...)``;
    a serial test fails when run beside others."""
    declared = declared_shared(request.node)
    if declared and is_worker(request.config):
        pytest.fail(
            f"{request.node.nodeid} is marked serial({', '.join(declared)}) but runs in a parallel worker:"
            " run serial tests without -n (make e2e runs them after the parallel group)"
        )
    with GUARD.running(request.node.nodeid, declared):
        yield


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{request.node.name[:30].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")
    kube.run("create", "namespace", name)
    kube.wait_for(lambda: kube.ok("get", "serviceaccount", "default", "-n", name), 30, "default SA")
    yield name
    with GUARD.harness():
        released = release_nodes(kube, name)
    kube.run("delete", "namespace", name, "--wait=false")
    if released and "nodes" not in declared_shared(request.node):
        pytest.fail(
            f"Mitigations of {request.node.nodeid} cordoned {released} but the test is not marked"
            ' @pytest.mark.serial("nodes"): add the mark so that make e2e runs it alone'
        )


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


@pytest.fixture(scope="session")
def crds_installed(kube: Kube) -> None:
    """Stanch's CRDs, applied from crds/ exactly as a cluster admin would."""
    install_crds(kube)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The public scenarios' scorecard, of every scenario scored since the scores were last cleared
    (both groups of `make e2e`): the scorecard is the point of that suite, so it is printed whatever
    the result. Workers write the scores; the controller (or a run without -n) prints them."""
    if is_worker(config):
        return
    scores = scorecard.load_scores(scorecard.SCORES_DIR)
    if not scores:
        return
    md, _ = scorecard.write(scores, scorecard.SCORES_DIR.parent)
    terminalreporter.write_sep("=", f"public scenarios scorecard ({md})")
    terminalreporter.write_line(md.read_text(encoding="utf-8"))


@pytest.fixture
def operator(
    world: WorldInfo, namespace: str, crds_installed: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`stanch run` scoped to the test's namespace; killed and restartable by the test."""
    proc = OperatorProcess(
        operator_kubeconfig(world), world.prometheus_url, [namespace], tmp_path / "operator"
    )
    proc.start()
    yield proc
    proc.stop()
