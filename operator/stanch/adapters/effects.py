"""Execute the mitigation machine's mutating effects against the API server, mechanically.

The reducer already decided what to change and under which precondition; this module sends exactly
that and reports what the API server said, typed, so the machine can tell "someone else changed the
target" (conflict: stop, never retry over it) from "the API server hiccuped" (transient: retry the
same conditional request). It never inspects the object to decide whether a change is "ours".

Idempotency comes from the preconditions themselves: a replayed patch whose ``test`` ops no longer
hold is refused by the API server, a replayed create finds our own object (ownerReference to the
Mitigation's uid), a replayed delete finds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx2 as httpx

from stanch.adapters.kube import KubeClient, KubeError
from stanch.core.effects import Create, Delete, Evict, ObjectKey, Patch, Precondition

Mutation = Patch | Create | Delete | Evict


class Outcome(StrEnum):
    """What happened to one mutation."""

    APPLIED = "Applied"
    """The API server accepted it (or, for a delete, the object was already gone; for a create, our
    own object already existed)."""
    CONFLICT = "Conflict"
    """A precondition failed: the object is not what the plan was computed from (drift)."""
    NOT_FOUND = "NotFound"
    """The object to patch does not exist."""
    FORBIDDEN = "Forbidden"
    """RBAC refused it; retrying will not help."""
    INVALID = "Invalid"
    """The API server rejected the request itself (422 from validation or an admission policy, 400):
    retrying will not help. A failed JSON-patch ``test`` is a 422 too, but a bare one (no details):
    :meth:`KubeClient.patch` reports that as a conflict."""
    TRANSIENT = "Transient"
    """Timeouts, 5xx, 429, connection errors: the same conditional request may be retried."""


@dataclass(frozen=True)
class EffectResult:
    """The API server's answer to one mutation, and the object's version afterwards."""

    effect: Mutation
    outcome: Outcome
    message: str = ""
    resource_version: str | None = None
    generation: int | None = None
    obj: Mapping[str, Any] | None = None
    """The object as the API server returned it after the change (absent for deletes)."""
    code: int | None = None
    """The HTTP status of a failure (0: no answer, None: not from the API server's reply)."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.APPLIED

    @property
    def retriable(self) -> bool:
        return self.outcome is Outcome.TRANSIENT

    @property
    def conflict(self) -> bool:
        return self.outcome is Outcome.CONFLICT

    def describe(self) -> str:
        what = self.effect.description or f"{type(self.effect).__name__} {self.effect.key.display()}"
        return f"{what}: {self.outcome.value}" + (f" ({self.message})" if self.message else "")


class EffectExecutor:
    """Runs :class:`Patch`, :class:`Create`, :class:`Delete` and :class:`Evict` effects with their
    preconditions. An eviction refused by a PodDisruptionBudget (429) is Transient: retried later by
    the machine, never replaced by a delete."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def run(self, effect: Mutation) -> EffectResult:
        try:
            if isinstance(effect, Patch):
                return await self._patch(effect)
            if isinstance(effect, Create):
                return await self._create(effect)
            if isinstance(effect, Evict):
                return await self._evict(effect)
            return await self._delete(effect)
        except KubeError as exc:
            return EffectResult(effect, _classify(exc), exc.message[:500], code=exc.status)
        except (httpx.HTTPError, OSError) as exc:
            return EffectResult(effect, Outcome.TRANSIENT, f"{type(exc).__name__}: {exc}"[:500])

    async def _patch(self, effect: Patch) -> EffectResult:
        key = effect.key
        obj = await self._kube.patch(key.kind, key.name, key.namespace, effect.wire_ops(), "json")
        return _applied(effect, obj)

    async def _create(self, effect: Create) -> EffectResult:
        manifest = dict(effect.manifest)
        try:
            obj = await self._kube.create(manifest)
        except KubeError as exc:
            if exc.status != 409 or exc.reason != "AlreadyExists":
                raise
            key = effect.key
            existing = await self._kube.get(key.kind, key.name, key.namespace)
            if existing is None:
                # Deleted between our create and our read: the retry creates it afresh.
                return EffectResult(effect, Outcome.TRANSIENT, "object vanished right after AlreadyExists")
            owners = existing.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == effect.owner_uid for ref in owners):
                return _applied(effect, existing, "already created by this Mitigation")
            return EffectResult(
                effect,
                Outcome.CONFLICT,
                f"{key.display()} exists and is not owned by uid {effect.owner_uid}",
            )
        return _applied(effect, obj)

    async def _evict(self, effect: Evict) -> EffectResult:
        key = effect.key
        assert key.namespace is not None
        evicted = await self._kube.evict(key.name, key.namespace, uid=effect.precondition.uid)
        return EffectResult(effect, Outcome.APPLIED, "" if evicted else "already gone")

    async def _delete(self, effect: Delete) -> EffectResult:
        key = effect.key
        pre = effect.precondition
        resource_version = pre.resource_version
        if pre.generation is not None or pre.tests:
            # DeleteOptions can only check uid and resourceVersion. Check the value tests on a fresh
            # read and delete conditionally on *that* read's resourceVersion, so nothing can change
            # between the check and the delete.
            current = await self._kube.get(key.kind, key.name, key.namespace)
            if current is None:
                return EffectResult(effect, Outcome.APPLIED, "already gone")
            failed = failed_tests(current, pre)
            if failed:
                return EffectResult(effect, Outcome.CONFLICT, f"precondition failed: {failed}")
            current_rv = current.get("metadata", {}).get("resourceVersion")
            if resource_version is not None and current_rv != resource_version:
                return EffectResult(
                    effect, Outcome.CONFLICT, f"resourceVersion is {current_rv}, expected {resource_version}"
                )
            resource_version = current_rv
        deleted = await self._kube.delete(
            key.kind, key.name, key.namespace, uid=pre.uid, resource_version=resource_version
        )
        return EffectResult(effect, Outcome.APPLIED, "" if deleted else "already gone")


def _applied(effect: Mutation, obj: Mapping[str, Any], message: str = "") -> EffectResult:
    meta = obj.get("metadata", {})
    return EffectResult(
        effect,
        Outcome.APPLIED,
        message,
        resource_version=meta.get("resourceVersion"),
        generation=meta.get("generation"),
        obj=obj,
    )


def _classify(exc: KubeError) -> Outcome:
    if exc.conflict:
        return Outcome.CONFLICT
    if exc.not_found:
        return Outcome.NOT_FOUND
    if exc.forbidden:
        return Outcome.FORBIDDEN
    if exc.status == 429 or exc.status >= 500 or exc.status == 0:
        return Outcome.TRANSIENT
    return Outcome.INVALID


_MISSING = object()


def resolve_pointer(obj: Any, pointer: str) -> Any:
    """The value at an RFC 6901 pointer, or a sentinel when any part is missing."""
    if pointer == "":
        return obj
    current = obj
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def failed_tests(obj: Mapping[str, Any], pre: Precondition) -> str:
    """The first value test of ``pre`` that ``obj`` fails, described; empty when all hold.

    Same semantics as the API server's JSON-patch ``test``: ``None`` expects the member to be absent
    (or null)."""
    checks: list[tuple[str, Any]] = []
    if pre.uid is not None:
        checks.append(("/metadata/uid", pre.uid))
    if pre.generation is not None:
        checks.append(("/metadata/generation", pre.generation))
    checks.extend(pre.tests)
    for path, expected in checks:
        actual = resolve_pointer(obj, path)
        if expected is None:
            if actual is not _MISSING and actual is not None:
                return f"{path} is {actual!r}, expected absent"
        elif actual is _MISSING or actual != expected:
            shown = "absent" if actual is _MISSING else repr(actual)
            return f"{path} is {shown}, expected {expected!r}"
    return ""


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """The key of an object as the API server returned it."""
    meta = obj.get("metadata", {})
    return ObjectKey(
        obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("name", ""), meta.get("namespace")
    )
