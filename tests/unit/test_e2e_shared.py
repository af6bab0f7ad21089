"""The parallel real-cluster suite's guard: which kubectl commands and world patches write what every
test shares, that an unmarked test fails at such a write (naming the mark to add), and that the
public suite's serial tests are exactly the ones that touch shared things. Pure: no cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from e2e.conftest import serial_shared
from e2e.run import default_workers
from e2e.shared import SHARED, SharedGuard, SharedWriteError, shared_write, world_keys_touch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "touched"),
    [
        (("label", "node", "kwok-node-2", "node-not-ready.stage.kwok.x-k8s.io=true", "--overwrite"), "nodes"),
        (("uncordon", "kwok-node-0"), "nodes"),
        (("cordon", "kwok-node-0"), "nodes"),
        (("annotate", "node", "kwok-node-1", "stanch.dev/cordoned-by-"), "nodes"),
        (("patch", "nodes/kwok-node-1", "--type", "json", "-p", "[]"), "nodes"),
        (("delete", "crd", "incidents.stanch.dev"), "cluster-objects"),
        (("delete", "clustermitigationpolicies.stanch.dev", "cluster-defaults"), "cluster-objects"),
        (("apply", "-f", "x.yaml", "--dry-run=server"), None),
        (("get", "nodes", "-o", "json"), None),
        (("wait", "--for", "condition=established", "crd", "-l", "a=b"), None),
        (("create", "namespace", "t-one"), None),
        (("delete", "namespace", "t-one", "--wait=false"), None),
        (("patch", "deployment", "web", "-n", "t-one", "-p", "{}"), None),
        (("scale", "deployment", "web", "-n", "t-one", "--replicas", "3"), None),
        (("delete", "mitigations", "--all", "-n", "t-one", "--timeout=60s"), None),
    ],
)
def test_kubectl_commands_are_classified(args: tuple[str, ...], touched: str | None) -> None:
    assert shared_write(args) == touched


def test_manifests_on_stdin_are_classified_by_kind() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    policy = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "ClusterMitigationPolicy",
        "metadata": {"name": "p"},
    }
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kwok-node-9"}}
    assert shared_write(["apply", "-f", "-", "-n", "t"], yaml.safe_dump_all([deployment])) is None
    assert shared_write(["apply", "-f", "-"], yaml.safe_dump_all([deployment, policy])) == "cluster-objects"
    assert shared_write(["create", "-f", "-"], yaml.safe_dump(node)) == "nodes"
    assert shared_write(["apply", "--dry-run=server", "-f", "-"], yaml.safe_dump(policy)) is None


def test_a_kustomization_directory_is_read() -> None:
    assert shared_write(["apply", "--server-side", "-k", str(REPO / "crds")]) == "cluster-objects"


def test_world_keys_beyond_one_namespace_are_shared() -> None:
    assert world_keys_touch(["traffic.t-one.web", "images.t-one", "dependency.t-one.db"]) is None
    assert world_keys_touch(["node.kwok-node-1"]) == "nodes"
    for key in ("images", "traffic.default", "clients.default"):
        assert world_keys_touch([key]) == "world-keys"
    patch = json.dumps({"data": {"node.kwok-node-0": "fail"}})
    assert shared_write(
        ["patch", "configmap", "world", "-n", "stanch-sim", "--type", "merge", "-p", patch]
    ) == ("nodes")
    patch = json.dumps({"data": {"images.t-one": "{}"}})
    assert shared_write(["patch", "cm", "world", "-n", "stanch-sim", "-p", patch]) is None
    assert (
        shared_write(["patch", "cm", "world", "-n", "t-one", "-p", json.dumps({"data": {"images": "{}"}})])
        is None
    )


def test_an_undeclared_shared_write_fails_naming_the_test_and_the_mark() -> None:
    guard = SharedGuard()
    guard.allow("nodes", "outside any test")  # harness and session fixtures
    with guard.running("e2e/tests/test_x.py::test_y", []):
        guard.allow(None, "kubectl get pods")
        with pytest.raises(SharedWriteError) as err:
            guard.allow("nodes", "kubectl cordon kwok-node-0")
        message = str(err.value)
        assert "e2e/tests/test_x.py::test_y" in message
        assert "kubectl cordon kwok-node-0" in message
        assert '@pytest.mark.serial("nodes")' in message
        with guard.harness():
            guard.allow("cluster-objects", "kubectl apply -k crds")
        with pytest.raises(SharedWriteError):
            guard.allow("cluster-objects", "kubectl apply -k crds")
    with guard.running("t", ["nodes"]):
        guard.allow("nodes", "kubectl cordon kwok-node-0")
        with pytest.raises(SharedWriteError, match="world-processes"):
            guard.allow("world-processes", "reload Prometheus")


@pytest.mark.parametrize("args", [(), ("node",), (None,)])
def test_a_serial_mark_without_a_known_shared_thing_is_a_usage_error(args: tuple[object, ...]) -> None:
    with pytest.raises(pytest.UsageError, match="the-test-id"):
        serial_shared([args], "the-test-id")
    assert serial_shared([("nodes",), ("nodes", "world-keys")], "t") == ["nodes", "world-keys"]


def test_the_default_worker_count_is_at_least_two() -> None:
    assert default_workers() >= 2


# Collects e2e/tests in a child pytest and prints the serial tests and what each declares.
PROBE = """
import json
import pytest
from e2e.conftest import declared_shared

class Probe:
    def pytest_collection_finish(self, session):
        self.serial = {i.nodeid: declared_shared(i) for i in session.items if declared_shared(i)}

probe = Probe()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "e2e/tests"], plugins=[probe])
print("PROBE=" + json.dumps({"code": int(code), "serial": probe.serial}))
"""


def test_the_serial_group_is_the_tests_that_touch_nodes_or_the_worlds_processes() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PROBE=")), None)
    assert line is not None, out.stdout + out.stderr
    probe = json.loads(line.removeprefix("PROBE="))
    assert probe["code"] == 0, out.stdout + out.stderr
    serial = probe["serial"]
    assert all(set(things) <= set(SHARED) for things in serial.values())
    by_file: dict[str, set[str]] = {}
    for test, things in serial.items():
        by_file.setdefault(test.split("::")[0], set()).update(things)
    assert by_file == {
        # Deletes and restores the stanch-identity admission policy's binding.
        "e2e/tests/test_identity.py": {"cluster-objects"},
        # Dry-run updates of the CRDs, ClusterRoles and admission policies every test relies on.
        "e2e/tests/test_install.py": {"cluster-objects"},
        "e2e/tests/test_mitigation_evacuate.py": {"nodes"},
        # A ValidatingAdmissionPolicy (bound to the test's namespace) refuses the toggle's write.
        "e2e/tests/test_mitigation_refused.py": {"cluster-objects"},
        "e2e/tests/test_recording_rules.py": {"world-processes"},
        "e2e/tests/test_scenarios.py": {"nodes"},
        "e2e/tests/test_tenancy_scope.py": {"cluster-objects"},
        "e2e/tests/test_workloads.py": {"nodes"},
    }
    scenario_tests = [t for t in serial if t.startswith("e2e/tests/test_scenarios.py")]
    assert scenario_tests == [
        "e2e/tests/test_scenarios.py::test_public_scenario_meets_its_expectations[node-not-ready]"
    ]
