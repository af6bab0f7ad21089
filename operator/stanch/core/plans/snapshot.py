"""The pre-change record (``status.snapshot``), typed.

It holds only what the plans need to compute the change, check it landed, detect drift and revert
it: the target's identity, versions and spec, the few annotations the lock and the GitOps switch
read, the HPA's bounds, and each action's own part. Never the whole object: managedFields, status
and unrelated annotations can make a Deployment hundreds of KB, and a copy of that in status would
push the Mitigation past etcd's object size limit (design invariant 8).

snake_case in Python, camelCase only on the wire (:meth:`Snapshot.to_status`). The reader is
tolerant: a snapshot written by an older Stanch (``version`` absent: full copies of the target and
the HPA) reads into the same types, so a Mitigation in flight across an upgrade carries on.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

from stanch.core.models import FLUX_RECONCILE_ANNOTATION, LOCK_ANNOTATION

SNAPSHOT_VERSION = 2
"""Wire shape of ``status.snapshot``. 1 (no ``version`` key): full copies of target and HPA."""

KEPT_ANNOTATIONS = (LOCK_ANNOTATION, FLUX_RECONCILE_ANNOTATION)
"""Target annotations every action keeps: the lock (who holds it) and the GitOps switch held with it."""


class SnapshotPart(BaseModel):
    """Base of the snapshot's pieces: immutable, camelCase on the wire, unknown keys ignored (a
    reader must accept what a newer or older writer left)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class ObjectRef(SnapshotPart):
    """An object we delete or evict: by name, and only while it still has this uid."""

    name: str
    uid: str | None = None


class TargetSnapshot(SnapshotPart):
    """The target Deployment as the plans need it. ``spec`` is whole: drift compares the whole spec
    with what our patch left, and the diff shows a human what changed."""

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] | None = None
    """Only :data:`KEPT_ANNOTATIONS` (None: the target had no annotations map at all)."""
    spec: dict[str, Any] = {}
    template_replica_set: ObjectRef | None = None
    """The ReplicaSet holding exactly ``spec.template`` when the snapshot was taken: where the
    template's secret-looking values, never persisted, are restored from (see ``sealing``)."""

    @model_validator(mode="before")
    @classmethod
    def _from_object(cls, value: Any) -> Any:
        """A Kubernetes object (the live target, or an old snapshot's full copy) → these fields."""
        if not isinstance(value, Mapping) or "metadata" not in value:
            return value
        meta = _meta(value)
        annotations = meta.get("annotations")
        return {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "generation": meta.get("generation"),
            "resource_version": meta.get("resourceVersion"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": None
            if annotations is None
            else {k: v for k, v in annotations.items() if k in KEPT_ANNOTATIONS},
            "spec": copy.deepcopy(dict(value.get("spec") or {})),
        }

    def as_object(self, generation: int | None = None) -> dict[str, Any]:
        """The Deployment shape the JSON-patch helpers work on (``generation`` overrides ours)."""
        meta: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "generation": self.generation if generation is None else generation,
            "resourceVersion": self.resource_version,
        }
        if self.labels:
            meta["labels"] = dict(self.labels)
        if self.annotations is not None:
            meta["annotations"] = dict(self.annotations)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": copy.deepcopy(self.spec),
        }


class HpaSnapshot(SnapshotPart):
    """The HorizontalPodAutoscaler that owns the target's replicas: a scale moves its bounds."""

    name: str
    namespace: str | None = None
    uid: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_object(cls, value: Any) -> Any:
        if not isinstance(value, Mapping) or "metadata" not in value:
            return value
        meta, spec = _meta(value), value.get("spec") or {}
        return {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "min_replicas": spec.get("minReplicas"),
            "max_replicas": spec.get("maxReplicas"),
        }

    def as_object(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"maxReplicas": self.max_replicas}
        if self.min_replicas is not None:
            spec["minReplicas"] = self.min_replicas
        return {"metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}, "spec": spec}


class CommonSnapshot(SnapshotPart):
    """What every action's snapshot holds."""

    taken_at: str
    """RFC 3339, second precision: also the restart's ``restartedAt`` (a re-run writes the same)."""
    target: TargetSnapshot
    hpa: HpaSnapshot | None = None
    """Kept for every action: it owns ``spec.replicas``, which drift checks must then ignore."""
    locked_generation: int | None = None
    """The target's generation once our lock is on it (every precondition of the plan uses it)."""
    held_annotations: dict[str, str] | None = None
    """Annotations set with the lock and kept until the end (a GitOps switch)."""


class ActionSnapshot(SnapshotPart):
    """Base of an action's own part. Its fields sit at the top level of ``status.snapshot``, beside
    the common ones, so the wire keys never collide with :class:`CommonSnapshot`'s."""


class NoSnapshot(ActionSnapshot):
    """For actions that need nothing beyond the common part (scale, pause)."""


PartT = TypeVar("PartT", bound=ActionSnapshot)
PartT_co = TypeVar("PartT_co", bound=ActionSnapshot, covariant=True)


@dataclass(frozen=True)
class Snapshot(Generic[PartT_co]):
    """The whole snapshot: the common part and the action's own."""

    common: CommonSnapshot
    action: PartT_co

    @property
    def target(self) -> TargetSnapshot:
        return self.common.target

    @property
    def taken_at(self) -> str:
        return self.common.taken_at

    @property
    def held(self) -> dict[str, str]:
        return dict(self.common.held_annotations or {})

    def target_object(self) -> dict[str, Any]:
        """The target as we locked it: our lock annotation bumped its generation (annotation changes
        do), so every precondition is on the Deployment as locked, not as first read."""
        return self.target.as_object(self.common.locked_generation)

    def locked(self, generation: int | None, held: Mapping[str, str]) -> Snapshot[PartT_co]:
        update = {"locked_generation": generation, "held_annotations": dict(held) or None}
        return replace(self, common=self.common.model_copy(update=update))

    def to_status(self) -> dict[str, Any]:
        """The wire form for ``status.snapshot``, values included: the wiring seals it where it
        writes status (``sealing.seal``), after the machine has used it."""
        return {"version": SNAPSHOT_VERSION, **self.common.wire(), **self.action.wire()}
