"""Who the real-cluster suite acts as: the operator as its shipped ServiceAccount, people as
themselves by impersonation, never the operator as admin.

The operator's identity is installed from manifests/ exactly as a cluster admin installs it (the
namespace, the ServiceAccount, the ClusterRole and its binding, and the user roles), and the
operator runs with a token of that ServiceAccount: a permission the shipped RBAC lacks fails the
test that needs it, as it would fail in production. The install is the same whoever makes it
(server-side apply of unchanged files), so it is a harness write, allowed beside other tests, like
the CRDs.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster import WorldInfo
from e2e.kube import Kube
from e2e.shared import GUARD

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
IDENTITY_MANIFESTS = ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "user-roles.yaml")
SERVICE_ACCOUNT = "stanch"
SA_NAMESPACE = "stanch-system"
OPERATOR_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SERVICE_ACCOUNT}"
# Long enough for any one test file; a new token is minted well before it runs out.
TOKEN_SECONDS = 2 * 3600
TOKEN_REUSE_SECONDS = 3600

_lock = threading.Lock()
_minted: dict[str, tuple[float, str]] = {}


def install_operator_identity(kube: Kube) -> None:
    """The shipped namespace, ServiceAccount, operator RBAC and user roles, as an admin applies them."""
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager", "stanch-e2e-harness"]
    for name in IDENTITY_MANIFESTS:
        args += ["-f", str(MANIFESTS / name)]
    with GUARD.harness():
        try:
            kube.run(*args)
        except AssertionError:
            # Workers starting together may race to create the namespace; the second apply
            # finds it and converges.
            time.sleep(1)
            kube.run(*args)
    kube.wait_for(
        lambda: kube.ok("get", "serviceaccount", SERVICE_ACCOUNT, "-n", SA_NAMESPACE), 30, "the stanch SA"
    )


def operator_kubeconfig(world: WorldInfo) -> str:
    """A kubeconfig for the world's API server that authenticates as the shipped ServiceAccount
    (a bound token from the TokenRequest API, as a Pod of the Deployment gets). Minted once per
    process and world, again after an hour."""
    with _lock:
        minted = _minted.get(world.kubeconfig)
        if minted is not None and time.monotonic() - minted[0] < TOKEN_REUSE_SECONDS:
            return minted[1]
        kube = Kube(world.kubectl, world.kubeconfig)
        install_operator_identity(kube)
        token = kube.run(
            "create", "token", SERVICE_ACCOUNT, "-n", SA_NAMESPACE, f"--duration={TOKEN_SECONDS}s"
        ).strip()
        # One file per process: parallel workers each mint their own token.
        directory = Path(world.state_dir or tempfile.gettempdir())
        path = directory / f"operator-sa-{os.getpid()}-{_safe(world.kubeconfig)}.kubeconfig"
        path.touch(mode=0o600)
        # The token is good for two hours: leave no credential behind in the shared state directory.
        atexit.register(path.unlink, missing_ok=True)
        path.write_text(yaml.safe_dump(token_kubeconfig(world.kubeconfig, token)))
        _minted[world.kubeconfig] = (time.monotonic(), str(path))
        return str(path)


def token_kubeconfig(admin_kubeconfig: str, token: str) -> dict[str, Any]:
    """The admin kubeconfig's current cluster (server and CA) with a token user instead of admin's."""
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts[config["current-context"]]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    cluster = dict(clusters[context["cluster"]])
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "world", "cluster": cluster}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "world", "user": SERVICE_ACCOUNT}}],
        "current-context": "operator",
    }


def is_token_kubeconfig(kubeconfig: str) -> bool:
    """Whether the kubeconfig's current user authenticates with a bearer token only (no client
    certificate: the local world's admin has one)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    user = users.get(contexts.get(config.get("current-context"), {}).get("user"), {})
    return bool(user.get("token")) and not (
        user.get("client-certificate") or user.get("client-certificate-data")
    )


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")[-60:]
