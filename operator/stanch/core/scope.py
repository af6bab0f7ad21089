"""One namespace (design invariant 11): what a Mitigation or an Incident may name, and whose lock is
on a target.

Stanch's own rights are cluster-wide; a tenant's are not. If a Mitigation in ``dev`` could name
``kube-system/coredns``, Stanch would lend its rights to whoever may create Mitigations in ``dev``
(a confused deputy). So an object acts, reads and is judged only in its own namespace: a
``spec.target.namespace`` is accepted only when it is empty or equal to the object's namespace.

The API server refuses the rest at admission (the ValidatingAdmissionPolicy in
``manifests/vap-target-namespace.yaml``: CRD CEL cannot see ``metadata.namespace``), and the
operator checks again with :func:`target_scope_problem`, since an admission policy can be missing,
unbound or newer than the object.

The lock annotation names its holder as ``<namespace>/<name>``. Locks written before this rule hold a
bare name; such a name means a Mitigation in the target's namespace, the only one that may hold it
now (:func:`lock_holder`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stanch.core.models.common import TargetRef

CROSS_NAMESPACE_TARGET = "CrossNamespaceTarget"
"""Event and condition reason: ``spec.target.namespace`` names another namespace."""


def target_scope_problem(kind: str, namespace: str, target: TargetRef) -> str | None:
    """Why ``target`` is out of scope for a ``kind`` object in ``namespace``, naming the field and the
    fix; None when it is in scope (no namespace, or the object's own)."""
    if target.namespace is None or target.namespace == namespace:
        return None
    return (
        f"spec.target.namespace {target.namespace!r} is not this {kind}'s namespace {namespace!r}: a {kind}"
        f" acts only on workloads in its own namespace; create the {kind} in namespace"
        f" {target.namespace!r} (with the rights you hold there) and leave spec.target.namespace unset"
    )


@dataclass(frozen=True, order=True)
class LockHolder:
    """The Mitigation a lock annotation names."""

    namespace: str
    name: str

    @property
    def value(self) -> str:
        """The annotation's value: ``<namespace>/<name>``."""
        return f"{self.namespace}/{self.name}"

    def display(self) -> str:
        return self.value


def lock_holder(value: str | None, target_namespace: str) -> LockHolder | None:
    """The holder a lock annotation names on a target in ``target_namespace``: ``<namespace>/<name>``
    as written, a bare name (a lock from before namespaces were recorded) as a Mitigation in the
    target's namespace. None when there is no lock (or an empty value)."""
    if not value:
        return None
    namespace, sep, name = value.partition("/")
    if not sep:
        return LockHolder(target_namespace, value)
    return LockHolder(namespace, name)


def holds_lock(value: str | None, target_namespace: str, namespace: str, name: str) -> bool:
    """Whether the lock annotation ``value`` on a target in ``target_namespace`` names the Mitigation
    ``namespace/name``, compared as namespace and name (never the bare name alone: a Mitigation of the
    same name in another namespace is someone else)."""
    return lock_holder(value, target_namespace) == LockHolder(namespace, name)


def write_scope_problem(
    kind: str, name: str, object_namespace: str | None, namespace: str, allowed: frozenset[str] = frozenset()
) -> str | None:
    """Why a write to ``kind`` ``object_namespace/name`` is out of scope for a Mitigation in
    ``namespace``; None when it is cluster-scoped (a Node), in ``namespace``, or one of ``allowed``
    (``Kind/namespace/name``: an Argo CD Application checked to manage the target). The last check
    before any write leaves the operator, whatever planned it."""
    if object_namespace is None or object_namespace == namespace:
        return None
    if f"{kind}/{object_namespace}/{name}" in allowed:
        return None
    return (
        f"refused to write {kind} {object_namespace}/{name}: outside the Mitigation's namespace"
        f" {namespace!r} (a Mitigation acts only in its own namespace)"
    )
