"""The generated CRDs on a real kube-apiserver: accepted (structural, CEL compiles within the cost
budget), the examples pass server-side dry run, CEL rules reject what the unit tests say they
reject, the target and dryRun are immutable, status keeps Kopf's state and prunes everything untyped."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import Kube, install_crds
from stanch.core import crdgen

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crds(kube: Kube) -> None:
    install_crds(kube)
    names = [f"crd/{r.name}" for r in crdgen.RESOURCES]
    kube.run("wait", "--for", "condition=established", *names, "--timeout=60s")


def dry_run(kube: Kube, obj: dict[str, Any]) -> tuple[bool, str]:
    proc_ok = True
    try:
        out = kube.run("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(kube.as_requester(obj)))
    except AssertionError as exc:
        proc_ok, out = False, str(exc)
    return proc_ok, out


def examples() -> list[tuple[str, dict[str, Any]]]:
    """Every example under manifests/examples/, subdirectories (policies/) included, named by its
    path there. Each document is dry-run on its own and nothing persists, so no example depends on
    another; the CRDs they need come first from the fixture."""
    root = REPO / "manifests" / "examples"
    docs = []
    for path in sorted(root.rglob("*.yaml")):
        name = path.relative_to(root).as_posix()
        docs += [(name, d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


@pytest.mark.usefixtures("crds")
def test_examples_pass_server_side_dry_run(kube: Kube, namespace: str) -> None:
    docs = examples()
    assert any(name.startswith("policies/") for name, _ in docs), "the policy guide's examples too"
    for name, doc in docs:
        doc = copy.deepcopy(doc)
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        # The examples' alice/bob stand for "you": the admission policy accepts only your own name.
        for who in ("requester", "approver"):
            if who in doc.get("spec", {}):
                doc["spec"][who] = {"username": kube.username()}
        ok, out = dry_run(kube, doc)
        assert ok, f"{name}: {out}"


def mit(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"target": {"name": "checkout"}, "dryRun": True, **spec},
    }


@pytest.mark.usefixtures("crds")
def test_cel_rules_reject_on_the_server(kube: Kube, namespace: str) -> None:
    cases = [
        (mit(namespace), "exactly one action must be set"),
        (
            mit(namespace, scale={"replicas": 2, "factor": 1.5}),
            "scale needs exactly one of replicas or factor",
        ),
        (mit(namespace, canary={"replicas": 2}), "canary needs an image, an env patch or args"),
        (mit(namespace, rollback={}, guard={"bakeTime": "10s", "interval": "1m"}), "at least one interval"),
        (mit(namespace, rollback={}, guard={"interval": "0s"}), "interval must be between 1s and 1h"),
        (
            mit(namespace, rollback={}, guard={"baselineWindow": "0s"}),
            "baselineWindow must be between 10s and 6h",
        ),
        (
            {
                "apiVersion": "stanch.dev/v1alpha1",
                "kind": "MitigationPolicy",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {
                    "freezeWindows": [
                        {"name": "a", "start": "2025-12-01T00:00:00Z", "end": "2025-11-01T00:00:00Z"}
                    ]
                },
            },
            "end must be after start",
        ),
    ]
    for obj, message in cases:
        ok, out = dry_run(kube, obj)
        assert not ok, obj
        assert message in out


@pytest.mark.usefixtures("crds")
def test_target_immutable_and_status_pruned_except_kopf(kube: Kube, namespace: str) -> None:
    kube.apply(mit(namespace, pause={}))
    with pytest.raises(AssertionError, match="target is immutable"):
        kube.run(
            "patch", "mit", "probe", "-n", namespace, "--type=merge", "-p", '{"spec":{"target":{"name":"x"}}}'
        )
    # The policy decided on dryRun: a dry run turned real would act without any policy allowing it.
    with pytest.raises(AssertionError, match="dryRun is immutable: the policy decided on it"):
        kube.run("patch", "mit", "probe", "-n", namespace, "--type=merge", "-p", '{"spec":{"dryRun":false}}')
    kube.run("patch", "mit", "probe", "-n", namespace, "--type=merge", "-p", '{"spec":{"dryRun":true}}')
    status = '{"status":{"phase":"Pending","kopf":{"progress":{"h":{"retries":1}}},"handlerResult":{"a":1}}}'
    kube.run("patch", "mit", "probe", "-n", namespace, "--subresource=status", "--type=merge", "-p", status)
    got = kube.get("mit", "probe", namespace)
    assert got["status"] == {"phase": "Pending", "kopf": {"progress": {"h": {"retries": 1}}}}
    assert got["spec"]["revertOnDelete"] is True  # defaults applied by the server
    kube.run("delete", "mit", "probe", "-n", namespace)
