"""``kubectl stanch`` against the real API server, as on-call people (played by impersonation, with
the shipped user roles bound in the test's namespace) use it: read an Incident, turn its suggestion
into a Mitigation, approve it as someone else, read its audit, abort it mid-bake (the change is
reverted), and watch an Incident change. And one credential source: the operator logs in through
an exec plugin (EKS/GKE style), and with both KUBECONFIG and a ServiceAccount present, Kopf and
Stanch's client both reach the KUBECONFIG's server, as kubectl would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.cluster import WorldInfo
from e2e.cluster.processes import free_loopback_port
from e2e.identity import SA_NAMESPACE, SERVICE_ACCOUNT, install_operator_identity
from e2e.kube import Kube, deployment
from e2e.tests.mitigation_world import FAST_SIGNALS, fast_operator, settle, shutdown, wait_phase
from e2e.tests.test_workloads import ready_pods

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

ALICE = "alice"  # on call: views and requests (stanch-view via view, stanch-request)
BOB = "bob"  # approves (stanch-approve), in the on-call group
ONCALL = "sre-oncall"
REPO = Path(__file__).resolve().parents[2]


def stanch(
    kube: Kube, *args: str, user: str | None = None, groups: tuple[str, ...] = (), timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """The CLI as ``user`` (impersonated by the admin kubeconfig, as ``kubectl --as`` does)."""
    identity = [f"--as={user}", *(f"--as-group={g}" for g in groups)] if user else []
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "stanch", *args, "--kubeconfig", kube.kubeconfig, *identity],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


def bind(kube: Kube, namespace: str, user: str, role: str) -> None:
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{role}-{user}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
        namespace=namespace,
    )


def investigated(namespace: str) -> dict[str, Any]:
    """What an investigation would write: two hypotheses, the second suggesting a scale-up. Written
    by the test (status subresource, as admin) so the verbs are tested on known content; the
    investigation itself is tested elsewhere."""
    return {
        "status": {
            "phase": "Investigating",
            "topHypothesis": "TrafficChange 40%: more traffic than usual",
            "hypotheses": [
                {
                    "category": "TrafficChange",
                    "statement": "more traffic than usual",
                    "confidence": 40,
                    "supporting": ["request rate 1.8x the hour before"],
                    "contradicting": ["no errors on the older revision"],
                },
                {
                    "category": "ResourceExhaustion",
                    "statement": "too few replicas for the load",
                    "confidence": 35,
                    "supporting": ["CPU near the limit on every pod"],
                    "suggestedMitigation": {
                        "scale": {"replicas": 3},
                        "target": {"kind": "Deployment", "name": "web", "namespace": namespace},
                        "summary": "scale web to 3 replicas",
                    },
                },
            ],
        }
    }


def policy(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": "oncall", "namespace": namespace},
        "spec": {
            "actions": [{"action": "Scale", "tier": "Manual", "limits": {"maxReplicas": 5}}],
            "approval": {"approverGroups": [ONCALL]},
            # Long enough that the abort lands mid-bake.
            "guardDefaults": {
                "signals": [{"name": "error_ratio"}],
                "baselineWindow": "20s",
                "bakeTime": "5m",
                "interval": "3s",
                "failureLimit": 2,
            },
        },
    }


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("crds_installed")
def test_on_call_verbs(world: WorldInfo, kube: Kube, namespace: str, tmp_path: Path) -> None:
    kube.apply(deployment("web", replicas=2), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "web")) == 2, 60, "2 ready pods")
    bind(kube, namespace, ALICE, "view")  # the built-in role: Events, and stanch-view by aggregation
    bind(kube, namespace, ALICE, "stanch-request")
    bind(kube, namespace, BOB, "stanch-view")
    bind(kube, namespace, BOB, "stanch-approve")
    kube.apply(policy(namespace))
    kube.apply(
        {
            "apiVersion": "stanch.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "web-slow"},
            "spec": {"target": {"name": "web"}, "summary": "web is slow", "severity": "SEV2"},
        },
        namespace=namespace,
    )
    kube.run(
        "patch", "incident", "web-slow", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(investigated(namespace)),
    )  # fmt: skip

    # The Incident in the terminal, as alice; the suggestion comes with its command.
    view = ok(stanch(kube, "describe", "incident", "web-slow", "-n", namespace, user=ALICE))
    assert "Target:       Deployment " + f"{namespace}/web" in view, view
    assert "  2. ResourceExhaustion (35%): too few replicas for the load" in view, view
    assert "       - no errors on the older revision" in view, view
    assert f"kubectl stanch mitigate web-slow -n {namespace} --hypothesis 2" in view, view
    assert "--hypothesis 1" not in view
    as_json = json.loads(
        ok(stanch(kube, "describe", "inc", f"{namespace}/web-slow", "-o", "json", user=ALICE))
    )
    assert as_json["metadata"]["name"] == "web-slow"
    assert "managedFields" not in as_json["metadata"]

    # Usage and refusals: one line each, the right exit code, nothing created.
    refused = stanch(kube, "mitigate", "web-slow", "-n", namespace, "--hypothesis", "1", "--yes", user=ALICE)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "suggests no mitigation" in refused.stderr
    unconfirmed = stanch(kube, "mitigate", "web-slow", "-n", namespace, user=ALICE)
    assert unconfirmed.returncode == 1
    assert "pass --yes" in unconfirmed.stderr
    dry = ok(stanch(kube, "mitigate", "web-slow", "-n", namespace, "--dry-run=server", user=ALICE))
    assert "(server dry run)" in dry
    client = yaml.safe_load(
        ok(stanch(kube, "mitigate", "web-slow", "-n", namespace, "--dry-run", user=ALICE))
    )
    assert client["spec"]["scale"] == {"replicas": 3}
    assert kube.items("mitigations", namespace) == []

    # Create it from the suggestion, as alice: the admission policy accepts her as the requester.
    created = ok(stanch(kube, "mitigate", "web-slow", "-n", namespace, "--yes", user=ALICE))
    name = created.split()[0].split("/", 1)[1]
    again = ok(stanch(kube, "mitigate", "web-slow", "-n", namespace, "--yes", user=ALICE))
    assert "already exists" in again
    obj = kube.get("mitigation", name, namespace)
    assert obj["spec"]["requester"] == {"username": ALICE}
    assert obj["spec"]["incidentRef"] == {"name": "web-slow"}
    assert obj["spec"]["scale"] == {"replicas": 3}
    assert [m["metadata"]["name"] for m in kube.items("mitigations", namespace)] == [name]

    settle()
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        wait_phase(kube, namespace, name, {"AwaitingApproval"}, 60)
        table = ok(stanch(kube, "get", "mitigations", "-n", namespace, "-o", "wide", user=ALICE))
        header, row = table.splitlines()[:2]
        assert header.split()[:3] == ["NAME", "PHASE", "ACTION"]
        assert row.split()[:4] == [name, "AwaitingApproval", "Scale", "web"]
        everywhere = ok(stanch(kube, "get", "mit", "-A"))
        assert any(line.split()[:2] == [namespace, name] for line in everywhere.splitlines())
        assert ok(stanch(kube, "get", "inc", "-n", namespace, "-o", "name", user=ALICE)) == (
            "incident.stanch.dev/web-slow\n"
        )

        # Bob approves, as himself, through the identity mechanism (a MitigationApproval).
        approved = ok(
            stanch(kube, "approve", name, "-n", namespace, "--group", ONCALL, user=BOB, groups=(ONCALL,))
        )
        assert "approved by bob" in approved
        wait_phase(kube, namespace, name, {"Baking"}, 90)
        kube.wait_for(
            lambda: kube.get("deployment", "web", namespace)["spec"]["replicas"] == 3, 30, "scaled to 3"
        )

        # The audit: the status history and the Events, in time order, as alice.
        lines = json.loads(ok(stanch(kube, "audit", name, "-n", namespace, "-o", "json", user=ALICE)))
        times = [
            datetime.fromisoformat(line["time"].replace("Z", "+00:00")) for line in lines if line["time"]
        ]
        assert times == sorted(times)
        assert {line["source"] for line in lines} == {"status", "event"}, lines
        actors = {line["actor"] for line in lines if line["source"] == "status"}
        assert ALICE in " ".join(actors) or BOB in " ".join(actors), lines
        text = ok(stanch(kube, "describe", "mitigation", name, "-n", namespace, user=ALICE))
        assert "Approved by:  bob" in text, text
        assert "Requested by: alice" in text, text

        # Abort mid-bake, as alice (stanch-request may delete): the change is reverted first.
        aborted = ok(
            stanch(kube, "abort", name, "-n", namespace, "--yes", "--timeout", "120", user=ALICE, timeout=150)
        )
        assert "aborted" in aborted.splitlines()[-1], aborted
        assert kube.items("mitigations", namespace) == []
        assert kube.get("deployment", "web", namespace)["spec"]["replicas"] == 2
        reasons = [e.get("reason") for e in kube.events(namespace) if e["involvedObject"].get("name") == name]
        assert "Reverting" in reasons or "Reverted" in reasons, reasons
        gone = stanch(kube, "abort", name, "-n", namespace, "--yes", user=ALICE)
        assert (gone.returncode, gone.stderr.count("\n")) == (1, 1)
        assert "not found" in gone.stderr
    finally:
        kube.ok("delete", "incidents", "--all", "-n", namespace, "--timeout=30s")
        shutdown(operator, kube, namespace)


@pytest.mark.usefixtures("crds_installed")
def test_describe_watch_shows_each_change(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "stanch.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "watched"},
            "spec": {"target": {"name": "nothing-here"}, "summary": "first words"},
        },
        namespace=namespace,
    )
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stanch", "describe", "inc", "watched", "-n", namespace, "--watch",
         "--kubeconfig", kube.kubeconfig],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        # A cold start of the CLI on a loaded machine takes seconds (Python, pydantic, Kopf's import).
        kube.wait_for(lambda: any("first words" in line for line in seen), 90, "the first view")
        kube.run("patch", "incident", "watched", "-n", namespace, "--type=merge", "-p",
                 '{"spec":{"summary":"second words"}}')  # fmt: skip
        kube.wait_for(lambda: any("second words" in line for line in seen), 60, "the view again")
        assert any(line.startswith("--- ") for line in seen), seen
        assert proc.poll() is None, "--watch keeps going"
    finally:
        proc.terminate()
        proc.wait(10)


# ---- one credential source -------------------------------------------------------------------


class Decoy:
    """A loopback listener standing in for a second API server: it only counts connections."""

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def decoy() -> Iterator[Decoy]:
    d = Decoy()
    yield d
    d.close()


def exec_kubeconfig(world: WorldInfo, kube: Kube, directory: Path) -> tuple[Path, Path]:
    """A kubeconfig for the world's API server whose user is an exec plugin (a script printing an
    ExecCredential with a token of the shipped ServiceAccount), and the plugin's call log."""
    install_operator_identity(kube)
    token = kube.run("create", "token", SERVICE_ACCOUNT, "-n", SA_NAMESPACE, "--duration=3600s").strip()
    directory.mkdir(parents=True, exist_ok=True)
    calls = directory / "plugin-calls"
    token_file = directory / "plugin-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    plugin = directory / "stanch-test-credential"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(calls)!r}, 'a').write(os.environ.get('KUBERNETES_EXEC_INFO', '') + '\\n')\n"
        f"token = open({str(token_file)!r}).read().strip()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        " 'status': {'token': token}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    admin = yaml.safe_load(Path(world.kubeconfig).read_text())
    contexts = {c["name"]: c["context"] for c in admin["contexts"]}
    clusters = {c["name"]: c["cluster"] for c in admin["clusters"]}
    cluster = clusters[contexts[admin["current-context"]]["cluster"]]
    config = directory / "exec.kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "world", "cluster": cluster}],
                "users": [
                    {
                        "name": "via-plugin",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": str(plugin),
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "plugin", "context": {"cluster": "world", "user": "via-plugin"}}],
                "current-context": "plugin",
            }
        )
    )
    return config, calls


def start_operator(
    world: WorldInfo, namespace: str, kubeconfig: Path, log: Path, decoy_port: int
) -> subprocess.Popen[bytes]:
    """`stanch run` with KUBECONFIG *and* an in-cluster ServiceAccount pointing at the decoy: the
    ServiceAccount directory exists only in a private mount namespace of the process (a tmpfs over
    /run, where /var/run/secrets/kubernetes.io/serviceaccount lives), so nothing else sees it."""
    signals = log.parent / "signals.yaml"
    signals.write_text(yaml.safe_dump(FAST_SIGNALS))
    liveness = free_loopback_port()
    sa = "/run/secrets/kubernetes.io/serviceaccount"
    script = (
        f"mount -t tmpfs stanch-test /run && mkdir -p {sa} && printf decoy-token > {sa}/token"
        f' && printf {namespace} > {sa}/namespace && exec "$@"'
    )
    argv = [
        "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
        sys.executable, "-m", "stanch", "run", "--standalone", "--log-format", "json",
        "--namespace", namespace, "--prometheus-url", world.prometheus_url, "--signals", str(signals),
        "--liveness", f"127.0.0.1:{liveness}/healthz", "--metrics-address", "off",
    ]  # fmt: skip
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(decoy_port),
        "STANCH_INVESTIGATION_INTERVAL": "3s",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"operator exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if (
                httpx.get(f"http://127.0.0.1:{liveness}/healthz", timeout=1, trust_env=False).status_code
                == 200
            ):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"operator not live:\n{log.read_text()[-3000:]}")


@pytest.mark.usefixtures("crds_installed")
def test_kopf_and_the_client_share_one_credential_source(
    world: WorldInfo, kube: Kube, namespace: str, tmp_path: Path, decoy: Decoy
) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to give the operator a private ServiceAccount directory")
    kubeconfig, calls = exec_kubeconfig(world, kube, tmp_path / "creds")
    kube.apply(deployment("api", replicas=1), namespace=namespace)
    kube.wait_for(lambda: len(ready_pods(kube, namespace, "api")) == 1, 60, "1 ready pod")
    log = tmp_path / "operator.log"
    proc = start_operator(world, namespace, kubeconfig, log, decoy.port)
    try:
        kube.apply(
            {
                "apiVersion": "stanch.dev/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": "api-errors"},
                "spec": {"target": {"name": "api"}},
            },
            namespace=namespace,
        )

        def target_found() -> bool:
            # Kopf saw the Incident (its watch) and Stanch's client read the Deployment: the
            # TargetMissing condition says the target exists only after a real read.
            conditions = (kube.get("incident", "api-errors", namespace).get("status") or {}).get("conditions")
            return any(c["type"] == "TargetMissing" and c["status"] == "False" for c in conditions or [])

        kube.wait_for(target_found, 60, "the Incident investigated with its target read")
        records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        server = next(r for r in records if r.get("event") == "api server")
        admin = yaml.safe_load(Path(world.kubeconfig).read_text())
        assert server["server"] == admin["clusters"][0]["cluster"]["server"]
        assert server["source"] == f"KUBECONFIG={kubeconfig}"
        # The exec plugin ran (Kopf's login and the client share it), told it cannot prompt.
        infos = [json.loads(line) for line in calls.read_text().splitlines()]
        assert infos
        assert all(i["spec"] == {"interactive": False} for i in infos), infos
        # Nothing went to the in-cluster address: one server for both.
        assert decoy.connections == 0
        assert not [r for r in records if r.get("level") == "error"], [
            r for r in records if r.get("level") == "error"
        ]
    finally:
        # While the operator can still remove its finalizer, or the namespace hangs in Terminating.
        kube.ok("delete", "incidents", "--all", "-n", namespace, "--timeout=30s")
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
