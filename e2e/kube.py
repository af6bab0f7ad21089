"""A small kubectl driver for the harness and the real-cluster tests.

Tests drive the cluster the way an operator would, with the kubectl built for this world, so what
they prove holds for the real API server's behaviour, not a client library's idea of it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from e2e.shared import GUARD, shared_write
from stanch.core.plans import CORDONED_BY

REPO = Path(__file__).resolve().parents[1]


class Kube:
    def __init__(self, kubectl: str, kubeconfig: str) -> None:
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig
        self._username: str | None = None

    def username(self) -> str:
        """Who this kubeconfig authenticates as (``kubectl auth whoami``)."""
        if self._username is None:
            review = json.loads(self.run("auth", "whoami", "-o", "json"))
            self._username = str(review["status"]["userInfo"]["username"])
        return self._username

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        GUARD.allow(shared_write(args, stdin), "kubectl " + " ".join(args))
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def ok(self, *args: str) -> bool:
        GUARD.allow(shared_write(args), "kubectl " + " ".join(args))
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, timeout=60
        )
        return proc.returncode == 0

    def apply(self, *objects: dict[str, Any], namespace: str | None = None) -> None:
        """Apply, as a user would: a Mitigation that names no requester names this kubeconfig's user
        (the stanch-identity admission policy refuses any other). Tests of the refusal itself use
        ``run("apply", ...)`` and write the requester they mean."""
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.run(*args, stdin=yaml.safe_dump_all([self.as_requester(o) for o in objects]))

    def as_requester(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("kind") != "Mitigation" or "requester" in (obj.get("spec") or {}):
            return obj
        return {**obj, "spec": {**obj.get("spec", {}), "requester": {"username": self.username()}}}

    def get(self, kind: str, name: str | None = None, namespace: str | None = None, **selectors: str) -> Any:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selectors.get("selector"):
            args += ["-l", selectors["selector"]]
        return json.loads(self.run(*args))

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(kind, namespace=namespace, selector=selector or "")["items"]
        return result

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.items("events", namespace)

    @staticmethod
    def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def deployment(
    name: str,
    replicas: int = 2,
    image: str = "registry.example/app:1.0",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    memory_limit: str = "256Mi",
) -> dict[str, Any]:
    """A Deployment manifest for the simulated world (images are never pulled: kwok runs no containers)."""
    pod_labels = {"app": name, "sim.stanch.dev/workload": name, **(labels or {})}
    container: dict[str, Any] = {
        "name": "app",
        "image": image,
        "resources": {
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": memory_limit},
        },
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations or {}},
                "spec": spec,
            },
        },
    }


def release_nodes(kube: Kube, namespace: str) -> list[str]:
    """Uncordon the nodes that Mitigations of ``namespace`` cordoned. A Succeeded evacuation keeps
    its cordon, as it should in production, but nodes are shared by every test and scenario."""
    released = []
    for node in kube.get("nodes")["items"]:
        meta = node["metadata"]
        if (meta.get("annotations") or {}).get(CORDONED_BY, "").startswith(f"{namespace}/"):
            kube.run("uncordon", meta["name"])
            kube.run("annotate", "node", meta["name"], f"{CORDONED_BY}-")
            released.append(meta["name"])
    return released


def install_crds(kube: Kube) -> None:
    """Stanch's CRDs from crds/ and its admission policies (stanch-identity,
    stanch-target-in-own-namespace), as a cluster admin applies them. Every worker applies the same
    files (server-side: an unchanged object is not written again), so it is a harness write, allowed
    beside other tests."""
    with GUARD.harness():
        kube.run("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
        kube.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "manifests" / "identity-admission.yaml"),
            "-f",
            str(REPO / "manifests" / "vap-target-namespace.yaml"),
        )
    kube.run(
        "wait",
        "--for",
        "condition=established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=stanch",
        "--timeout=60s",
    )


APPROVER_ROLE = "stanch-e2e-approver"


def approve(
    kube: Kube,
    namespace: str,
    mitigation: str,
    user: str,
    groups: tuple[str, ...] = (),
    *,
    name: str | None = None,
    reason: str = "e2e approval",
) -> str:
    """Create a MitigationApproval of ``mitigation`` as ``user`` (impersonated, in ``groups``), who is
    granted ``create`` on approvals in ``namespace`` only (a namespaced Role: no cluster-scoped write).
    Returns the approval's name."""
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": APPROVER_ROLE},
            "rules": [
                {
                    "apiGroups": ["stanch.dev"],
                    "resources": ["mitigationapprovals"],
                    "verbs": ["create", "get"],
                },
                {"apiGroups": ["stanch.dev"], "resources": ["mitigations"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{APPROVER_ROLE}-{user}"[:63]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APPROVER_ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
        namespace=namespace,
    )
    uid = kube.get("mitigation", mitigation, namespace)["metadata"]["uid"]
    approval_name = name or f"{mitigation}-{user}"[:63]
    doc = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationApproval",
        "metadata": {"name": approval_name, "namespace": namespace},
        "spec": {
            "mitigationRef": {"name": mitigation, "uid": uid},
            "approver": {"username": user, **({"groups": list(groups)} if groups else {})},
            "reason": reason,
        },
    }
    as_user = [f"--as={user}", *(f"--as-group={g}" for g in groups)]
    kube.run("create", "-f", "-", *as_user, stdin=yaml.safe_dump(doc))
    return approval_name
