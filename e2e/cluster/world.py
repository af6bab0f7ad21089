"""The local Kubernetes world: a real control plane (via kwokctl, binary runtime), fake nodes and
pod lifecycles from kwok, a real Prometheus and the workload simulator — all on loopback.

Used by `python -m e2e.cluster up|down|status` (and so `make cluster-up`/`cluster-down`) and by the
pytest fixtures. `up` is idempotent: on a healthy world it is a no-op; stale state from a killed run is
torn down first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from e2e.cluster import processes, prometheus, stages
from e2e.cluster.config import binaries, kwok_module_dir, read_versions, state_dir

CLUSTER_NAME = "stanch"
NODE_COUNT = 3
# Every fake node answers on 127.0.0.1: the apiserver dials a node's InternalIP for logs, and kwok
# serves all nodes from one loopback listener. Distinct 127.0.0.x addresses would need kwok to
# listen on 0.0.0.0, which would expose it beyond loopback.
NODE_IP = "127.0.0.1"
# Pod IPs are only data here (no kube-proxy, nothing dials them); EndpointSlices reject loopback
# addresses, so pods get a private range that nothing ever connects to.
POD_CIDR = "10.244.0.1/16"


class WorldError(RuntimeError):
    """The local world cannot be brought up; the message says what to do."""


@dataclass
class WorldInfo:
    kubeconfig: str
    kubectl: str
    prometheus_url: str
    simulator_url: str | None
    state_dir: str
    nodes: list[str]
    startup_seconds: float

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": self.kubeconfig, "STANCH_PROMETHEUS_URL": self.prometheus_url}


def _log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


class LocalWorld:
    def __init__(self, state: Path | None = None, seed: int = 42) -> None:
        self.state = state or state_dir()
        self.versions = read_versions()
        self.bins = binaries(self.versions)
        self.seed = seed

    # ---- paths -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def info_file(self) -> Path:
        return self.state / "world.json"

    def _kwok_env(self) -> dict[str, str]:
        return {**os.environ, "KWOK_WORKDIR": str(self.state / "kwok")}

    # ---- kubectl -----------------------------------------------------------------------------
    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bins.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise WorldError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    # ---- health ------------------------------------------------------------------------------
    def _apiserver_ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        proc = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def load_info(self) -> WorldInfo | None:
        if not self.info_file.exists():
            return None
        return WorldInfo(**json.loads(self.info_file.read_text()))

    def healthy(self) -> WorldInfo | None:
        info = self.load_info()
        if info is None or not self._apiserver_ready():
            return None
        if not (self.state / prometheus.RULES_DIR).is_dir():
            return None  # a world from before rule files: Prometheus would not load any
        if not self._http_ok(f"{info.prometheus_url}/-/ready"):
            return None
        if info.simulator_url and not self._scraped(info.prometheus_url):
            return None
        if info.simulator_url and not self._http_ok(f"{info.simulator_url}/healthz"):
            return None
        return info

    # ---- lifecycle ---------------------------------------------------------------------------
    def up(self) -> WorldInfo:
        existing = self.healthy()
        if existing is not None:
            _log(f"already up (kubeconfig {existing.kubeconfig}); nothing to do")
            return existing
        missing = self.bins.missing()
        if missing:
            raise WorldError(
                "control-plane binaries are missing ("
                + ", ".join(str(m) for m in missing)
                + "): run `make cluster-binaries` first"
            )
        if self.state.exists():
            _log("found stale state from an earlier run; cleaning it up")
            self.down()
        start = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        self._create_control_plane()
        self._wait(self._apiserver_ready, 60, "kube-apiserver /readyz")
        self._wait_for_kwok_crds()
        self.apply(stages.all_stages(kwok_module_dir(self.versions["KWOK_VERSION"])))
        nodes = [f"kwok-node-{i}" for i in range(NODE_COUNT)]
        self.apply([node_manifest(n, i) for i, n in enumerate(nodes)])
        self._wait(lambda: self._nodes_ready(nodes), 60, "all nodes Ready")
        self._wait_for_default_serviceaccount()
        startup = time.monotonic() - start
        simulator_url = self._start_simulator()
        prometheus_url = self._start_prometheus(simulator_url)
        info = WorldInfo(
            kubeconfig=str(self.kubeconfig),
            kubectl=str(self.bins.kubectl),
            prometheus_url=prometheus_url,
            simulator_url=simulator_url,
            state_dir=str(self.state),
            nodes=nodes,
            startup_seconds=round(startup, 2),
        )
        self.info_file.write_text(json.dumps(asdict(info), indent=2))
        _log(f"up in {time.monotonic() - start:.1f}s (control plane to nodes Ready: {startup:.1f}s)")
        return info

    def down(self) -> None:
        for name in ("prometheus", "simulator"):
            processes.stop(name, self.state)
        if (self.state / "kwok").exists():
            subprocess.run(
                [
                    str(self.bins.kwokctl),
                    "--name",
                    CLUSTER_NAME,
                    "delete",
                    "cluster",
                    "--kubeconfig",
                    str(self.kubeconfig),
                ],
                env=self._kwok_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        self._kill_leftovers()
        shutil.rmtree(self.state, ignore_errors=True)
        _log("down")

    def _kill_leftovers(self) -> None:
        """Kill control-plane processes whose working directory is inside our state directory.

        A run that was killed mid-way can leave etcd or the apiserver running without pid files.
        """
        root = str(self.state.resolve()) if self.state.exists() else str(self.state)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd.startswith(root) and int(proc.name) != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), 9)

    def _create_control_plane(self) -> None:
        cfg = self.state / "kwokctl.yaml"
        cfg.write_text(yaml.safe_dump_all(kwokctl_config(self.bins, self.versions)))
        proc = subprocess.run(
            [
                str(self.bins.kwokctl),
                "--name",
                CLUSTER_NAME,
                "--config",
                str(cfg),
                "create",
                "cluster",
                "--kubeconfig",
                str(self.kubeconfig),
                "--wait",
                "60s",
                "--timeout",
                "120s",
            ],
            env=self._kwok_env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if proc.returncode != 0:
            raise WorldError(f"kwokctl create cluster failed:\n{proc.stderr[-4000:]}")

    def _wait_for_kwok_crds(self) -> None:
        def ok() -> bool:
            out = self.kubectl("get", "crd", "-o", "name", check=False).stdout
            return "stages.kwok.x-k8s.io" in out and "logs.kwok.x-k8s.io" in out

        self._wait(ok, 60, "kwok CRDs")

    def _wait_for_default_serviceaccount(self) -> None:
        self._wait(
            lambda: self.kubectl("get", "sa", "default", "-n", "default", check=False).returncode == 0,
            60,
            "default ServiceAccount (controller-manager running)",
        )

    def _nodes_ready(self, nodes: list[str]) -> bool:
        proc = self.kubectl("get", "nodes", "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        ready = set()
        for item in json.loads(proc.stdout)["items"]:
            for c in item.get("status", {}).get("conditions", []):
                if c["type"] == "Ready" and c["status"] == "True":
                    ready.add(item["metadata"]["name"])
        return set(nodes) <= ready

    @staticmethod
    def _wait(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.25)
        raise WorldError(f"timed out after {timeout:.0f}s waiting for {what}")

    def _start_simulator(self) -> str | None:
        if os.environ.get("STANCH_SIMULATOR", "on") == "off":
            _log("STANCH_SIMULATOR=off: not starting the workload simulator")
            return None
        if importlib.util.find_spec("e2e.simulator") is None:
            _log("workload simulator not available; metrics will be empty")
            return None
        port = processes.free_loopback_port()
        logs_dir = self.state / "pod-logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        repo = Path(__file__).resolve().parents[2]
        processes.start_detached(
            "simulator",
            [
                sys.executable,
                "-m",
                "e2e.simulator",
                "--kubeconfig",
                str(self.kubeconfig),
                "--listen",
                f"127.0.0.1:{port}",
                "--logs-dir",
                str(logs_dir),
                "--seed",
                str(self.seed),
            ],
            self.state,
            env={"PYTHONPATH": str(repo)},
        )
        url = f"http://127.0.0.1:{port}"
        self._wait(lambda: self._http_ok(f"{url}/healthz"), 30, "workload simulator /healthz")
        return url

    def _start_prometheus(self, simulator_url: str | None) -> str:
        port = processes.free_loopback_port()
        target = simulator_url.removeprefix("http://") if simulator_url else f"127.0.0.1:{port}"
        config = self.state / "prometheus.yml"
        rules = self.state / prometheus.RULES_DIR
        rules.mkdir(parents=True, exist_ok=True)
        config.write_text(prometheus.render_config(target, rules_dir=rules))
        data = self.state / "prometheus-data"
        data.mkdir(parents=True, exist_ok=True)
        binary = prometheus.find_prometheus()
        processes.start_detached("prometheus", prometheus.command(binary, config, data, port), self.state)
        url = f"http://127.0.0.1:{port}"
        self._wait(lambda: self._http_ok(f"{url}/-/ready"), 30, "Prometheus /-/ready")
        if simulator_url:
            # /-/ready only means the TSDB is open; tests query straight away, so the world is up
            # once the first scrape of the simulator has landed.
            self._wait(lambda: self._scraped(url), 30, "Prometheus first scrape of the simulator")
        return url

    @staticmethod
    def _scraped(prometheus_url: str) -> bool:
        try:
            reply = httpx.get(
                f"{prometheus_url}/api/v1/query", params={"query": 'up{job="workloads"} == 1'}, timeout=2
            )
            return reply.status_code == 200 and bool(reply.json()["data"]["result"])
        except (httpx.HTTPError, ValueError, KeyError):
            return False


def node_manifest(name: str, index: int) -> dict[str, Any]:
    zone = "abc"[index % 3]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "topology.kubernetes.io/zone": f"zone-{zone}",
            },
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "500"},
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "500"},
        },
    }


def kwokctl_config(bins: Any, versions: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeVersion": versions["K8S_VERSION"],
                "etcdVersion": versions["ETCD_VERSION"].lstrip("v"),
                "kubeApiserverBinary": str(bins.kube_apiserver),
                "kubeControllerManagerBinary": str(bins.kube_controller_manager),
                "kubeSchedulerBinary": str(bins.kube_scheduler),
                "kubectlBinary": str(bins.kubectl),
                "kwokControllerBinary": str(bins.kwok),
                "etcdBinary": str(bins.etcd),
                "enableCRDs": ["Stage", "Logs", "ClusterLogs"],
                "kubeAuthorization": True,
                "kubeAdmission": True,
            },
            "componentsPatches": [
                {
                    # The apiserver reaches "kubelets" (kwok) for logs by the node's InternalIP only;
                    # the default order tries the Hostname first, which means a DNS lookup off-box.
                    "name": "kube-apiserver",
                    "extraArgs": [{"key": "kubelet-preferred-address-types", "value": "InternalIP"}],
                },
                {
                    "name": "kwok-controller",
                    "extraArgs": [
                        {"key": "manage-all-nodes", "value": "false"},
                        {"key": "manage-nodes-with-annotation-selector", "value": "kwok.x-k8s.io/node=fake"},
                        {"key": "node-ip", "value": NODE_IP},
                        {"key": "cidr", "value": POD_CIDR},
                    ],
                },
            ],
        },
    ]
