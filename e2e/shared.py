"""What the tests of the real-cluster suite share, and the guard that keeps them honest about it.

`make e2e` runs the suite in parallel workers, each test in its own namespace, and then the tests
marked ``serial(...)`` one at a time with nothing beside them. A test that writes something every
test shares (a node, a cluster-scoped object, the world's processes or its cluster-wide keys)
without the mark would make other tests flake far from the cause; instead its write fails at once,
naming the test, what it touched and the mark to add. The decision is pure (``shared_write``); the
harness asks it before every kubectl call and every simulator world patch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# What a test marked ``serial(thing, ...)`` may write; the keys are the mark's arguments.
SHARED: dict[str, str] = {
    "nodes": "the nodes kwok-node-0..2 (cordons, labels that fault them, simulator node faults):"
    " every test's pods run on them",
    "cluster-objects": "cluster-scoped objects other than namespaces and nodes (CRDs,"
    " ClusterMitigationPolicies, admission policies, cluster roles): they apply to every namespace",
    "world-processes": "the local world's processes and their configuration (the shared Prometheus's"
    " rule files and reloads, restarts of the control plane)",
    "world-keys": "the simulator's cluster-wide world keys (traffic.default, clients.default, images):"
    " they change every namespace's workloads",
}

_MUTATING = frozenset(
    {
        "apply",
        "create",
        "replace",
        "patch",
        "delete",
        "label",
        "annotate",
        "cordon",
        "uncordon",
        "drain",
        "taint",
        "edit",
        "scale",
        "set",
        "rollout",
        "autoscale",
        "expose",
    }
)
_NODE_VERBS = frozenset({"cordon", "uncordon", "drain", "taint"})
# kubectl flags that take a value as the next argument (the rest are booleans or --flag=value).
_VALUE_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "-l",
        "--selector",
        "-p",
        "--patch",
        "--type",
        "-o",
        "--output",
        "-f",
        "--filename",
        "-k",
        "--kustomize",
        "--for",
        "--timeout",
        "--field-manager",
        "-c",
        "--container",
        "--context",
        "--kubeconfig",
        "--subresource",
        "--as",
        "--as-group",
        "--replicas",
        "--to-revision",
        "--grace-period",
    }
)
_NODE_NAMES = frozenset({"node", "nodes", "no"})
# Cluster-scoped kinds a test might write (Namespace is each test's own: not listed).
_CLUSTER_KINDS = frozenset(
    {
        "customresourcedefinition",
        "clustermitigationpolicy",
        "validatingadmissionpolicy",
        "validatingadmissionpolicybinding",
        "mutatingadmissionpolicy",
        "mutatingadmissionpolicybinding",
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
        "clusterrole",
        "clusterrolebinding",
        "priorityclass",
        "storageclass",
        "persistentvolume",
        "apiservice",
        "runtimeclass",
        "ingressclass",
        "stage",
        "clusterlogs",
        "clusterexec",
        "clusterattach",
        "clusterportforward",
        "clusterresourceusage",
    }
)
_RESOURCE_ALIASES = {"crd": "customresourcedefinition", "crds": "customresourcedefinition"}
WORLD_NAMESPACE = "stanch-sim"
WORLD_CONFIG_MAP = "world"
_GLOBAL_WORLD_KEYS = frozenset({"traffic.default", "clients.default", "images"})


def _singular(resource: str) -> str:
    """``nodes/kwok-node-0`` or ``clustermitigationpolicies.stanch.dev`` -> the kind in lower case."""
    name = resource.lower().split("/", 1)[0].split(".", 1)[0]
    name = _RESOURCE_ALIASES.get(name, name)
    if name in _NODE_NAMES:
        return "node"
    if name.endswith("ies") and name[:-3] + "y" in _CLUSTER_KINDS:
        return name[:-3] + "y"
    if name.endswith("s") and name[:-1] in _CLUSTER_KINDS:
        return name[:-1]
    return name


def _kind_touches(kind: str) -> str | None:
    singular = _singular(kind)
    if singular == "node":
        return "nodes"
    if singular in _CLUSTER_KINDS:
        return "cluster-objects"
    return None


def world_keys_touch(keys: Iterable[str]) -> str | None:
    """What a patch of these simulator world keys touches beyond one namespace, or None."""
    for key in keys:
        if key.startswith("node."):
            return "nodes"
        if key in _GLOBAL_WORLD_KEYS:
            return "world-keys"
    return None


@dataclass(frozen=True)
class _Args:
    verb: str = ""
    positionals: tuple[str, ...] = ()
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _parse(args: Sequence[str]) -> _Args:
    positionals: list[str] = []
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            if eq:
                flags.setdefault(name, []).append(value)
            elif name in _VALUE_FLAGS and i + 1 < len(args):
                flags.setdefault(name, []).append(args[i + 1])
                i += 1
            else:
                flags.setdefault(name, []).append("")
        else:
            positionals.append(arg)
        i += 1
    verb = positionals[0] if positionals else ""
    return _Args(verb, tuple(positionals[1:]), {k: tuple(v) for k, v in flags.items()})


def _documents(stdin: str | None, paths: Iterable[str]) -> Iterator[Mapping[str, Any]]:
    texts: list[str] = []
    for path in paths:
        if path == "-":
            texts.append(stdin or "")
            continue
        p = Path(path)
        files = sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
        texts.extend(f.read_text(encoding="utf-8") for f in files if f.is_file())
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, Mapping):
                yield doc


def _world_patch_keys(parsed: _Args) -> list[str]:
    keys: list[str] = []
    for patch in parsed.flags.get("-p", ()) + parsed.flags.get("--patch", ()):
        with contextlib.suppress(yaml.YAMLError):
            body = yaml.safe_load(patch)
            if isinstance(body, Mapping) and isinstance(body.get("data"), Mapping):
                keys.extend(str(k) for k in body["data"])
    return keys


def shared_write(args: Sequence[str], stdin: str | None = None) -> str | None:
    """What shared thing (a key of SHARED) the kubectl command ``args`` writes, or None when it
    reads, or writes only namespaced objects. A server-side or client dry run writes nothing."""
    parsed = _parse(args)
    if parsed.verb not in _MUTATING:
        return None
    if any(v in ("server", "client", "") for v in parsed.flags.get("--dry-run", ())):
        return None
    if parsed.verb in _NODE_VERBS:
        return "nodes"
    sources = parsed.flags.get("-f", ()) + parsed.flags.get("--filename", ())
    sources += parsed.flags.get("-k", ()) + parsed.flags.get("--kustomize", ())
    if sources:
        for doc in _documents(stdin, sources):
            touched = _kind_touches(str(doc.get("kind", "")))
            if touched:
                return touched
            if doc.get("kind") == "ConfigMap" and _is_world(doc.get("metadata") or {}):
                touched = world_keys_touch(doc.get("data") or {})
                if touched:
                    return touched
        return None
    resources = [r for p in parsed.positionals[:1] for r in p.split(",")]
    for resource in resources:
        touched = _kind_touches(resource)
        if touched:
            return touched
    if resources and resources[0].lower().partition("/")[0] in ("configmap", "configmaps", "cm"):
        namespace = (parsed.flags.get("-n") or parsed.flags.get("--namespace") or ("",))[-1]
        name = parsed.positionals[1] if len(parsed.positionals) > 1 else resources[0].partition("/")[2]
        if namespace == WORLD_NAMESPACE and name == WORLD_CONFIG_MAP:
            return world_keys_touch(_world_patch_keys(parsed))
    return None


def _is_world(meta: Mapping[str, Any]) -> bool:
    return meta.get("namespace") == WORLD_NAMESPACE and meta.get("name") == WORLD_CONFIG_MAP


class SharedWriteError(AssertionError):
    """A test wrote something every test shares without declaring it."""


class SharedGuard:
    """Which shared things the running test declared with ``serial(...)``. Outside a test (session
    fixtures, harness set-up) or inside ``harness()`` every write is allowed."""

    def __init__(self) -> None:
        self.test: str | None = None
        self.declared: frozenset[str] = frozenset()
        self._harness = 0

    @contextlib.contextmanager
    def running(self, test: str, declared: Iterable[str]) -> Iterator[None]:
        self.test, self.declared = test, frozenset(declared)
        try:
            yield
        finally:
            self.test, self.declared = None, frozenset()

    @contextlib.contextmanager
    def harness(self) -> Iterator[None]:
        """Writes the harness makes on every test's behalf, the same whoever runs (the CRDs from
        crds/, the cleanup of a test's own cordons)."""
        self._harness += 1
        try:
            yield
        finally:
            self._harness -= 1

    def allow(self, touched: str | None, what: str) -> None:
        if touched is None or self.test is None or self._harness or touched in self.declared:
            return
        raise SharedWriteError(
            f"{self.test} writes {what!r}, which touches {touched} ({SHARED[touched]}), but is not marked"
            f' @pytest.mark.serial("{touched}"): add the mark so that make e2e runs it alone'
        )


GUARD = SharedGuard()
"""One per process: an xdist worker runs one test at a time."""
