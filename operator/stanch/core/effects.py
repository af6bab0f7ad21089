"""Intended effects of the mitigation state machine: plain data an adapter performs mechanically.

The reducer in :mod:`stanch.core.machine` decides; an adapter only executes. Every rule an adapter
needs is written here, so it never has to decide anything:

- Effects of one :class:`~stanch.core.machine.reducer.Transition` run in order. The wiring persists
  ``transition.state.status`` *before* running any effect of that transition.
- :class:`PersistIntent` is the write-ahead record: persist the status (which already holds the
  snapshot, the plan and the intent), then feed back ``IntentPersisted``. The reducer emits a
  mutating effect only in reply to ``IntentPersisted`` (or on resume from a persisted intent).
- Mutating effects (:class:`Patch`, :class:`Create`, :class:`Delete`) carry their precondition.
  A :class:`Patch` is always an RFC 6902 JSON patch: send :meth:`Patch.wire_ops` as
  ``application/json-patch+json``. Its leading ``test`` ops make the API server reject it atomically
  (a bare HTTP 422 that names no object) when the object is not what the plan was computed from;
  409 and a gone object likewise. Report those as ``ApplyFailed(conflict=True)``; a 422 naming the
  object (validation, an admission policy) or a 403 as a refusal (neither flag: never retried);
  5xx, 429 and timeouts as ``retriable``. Always with the HTTP status and the failed write's key.
- ``Delete`` sends ``DeleteOptions.preconditions`` (uid, resourceVersion); NotFound counts as done.
- ``Evict`` creates a ``policy/v1`` Eviction with the uid precondition; NotFound counts as done, a
  429 (a PodDisruptionBudget allows no disruption now) is retriable and its message names the budget.
- ``Create`` treats AlreadyExists as done only when the existing object carries an ownerReference
  with ``uid == owner_uid``; otherwise it is ``ApplyFailed(conflict=True)``.
- ``best_effort`` effects (lock release) are fire-and-forget: a failed precondition means there is
  nothing to do, and no observation is fed back.

These types live outside :mod:`stanch.core.machine` because the adapters may use core data but never
core decisions (an import-linter contract); :mod:`stanch.core.machine.effects` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from stanch.core.models import StepIntent


class Step(StrEnum):
    """The write-ahead steps a mutation belongs to (``StepIntent.step``, ``Patch.step``,
    ``ChangeApplied.step``). A StrEnum, so status and Events carry the same strings as before."""

    LOCK = "Lock"
    """Take the target's lock annotation (with a held GitOps switch, in the same write)."""
    SUSPEND = "Suspend"
    """Turn off an Argo CD Application's self-heal after the lock."""
    APPLY = "Apply"
    """The change itself."""
    EVICT = "Evict"
    """Evacuate only: the evictions, after the cordon."""
    PROMOTE = "Promote"
    """Canary only: the fix into the workload, then the canary removed."""
    REVERT = "Revert"
    """Undo the change back to the snapshot."""
    UNLOCK = "Unlock"
    """Release the lock (best effort)."""
    RESUME = "Resume"
    """Restore the GitOps self-heal suspended with the lock."""


JsonPatchOp = Mapping[str, Any]
"""One RFC 6902 operation: ``{"op": "replace", "path": "/spec/replicas", "value": 4}``."""


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer from unescaped parts: ``pointer("metadata", "annotations", "a/b")``
    → ``/metadata/annotations/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class ObjectKey:
    """Which object an effect acts on."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def display(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


@dataclass(frozen=True)
class Precondition:
    """What must still hold for a mutation to apply (design invariant 2).

    ``tests`` are (JSON pointer, expected value) pairs, sent as JSON-patch ``test`` ops; an expected
    value of ``None`` means "absent" (the API server's JSON-patch ``test`` with ``null`` succeeds on a
    missing member). ``generation`` becomes a test on ``/metadata/generation``: a Deployment's
    resourceVersion moves with every status update, its generation only when the spec changes.
    ``resource_version`` and ``uid`` are used as is (a ``test`` op, or DeleteOptions.preconditions).
    """

    resource_version: str | None = None
    generation: int | None = None
    uid: str | None = None
    tests: tuple[tuple[str, Any], ...] = ()

    def test_ops(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        if self.uid is not None:
            ops.append({"op": "test", "path": "/metadata/uid", "value": self.uid})
        if self.resource_version is not None:
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": self.resource_version})
        if self.generation is not None:
            ops.append({"op": "test", "path": "/metadata/generation", "value": self.generation})
        ops.extend({"op": "test", "path": path, "value": value} for path, value in self.tests)
        return ops

    def describe(self) -> str:
        parts = []
        if self.uid is not None:
            parts.append(f"uid={self.uid}")
        if self.resource_version is not None:
            parts.append(f"resourceVersion={self.resource_version}")
        if self.generation is not None:
            parts.append(f"generation={self.generation}")
        parts.extend(f"{path}=={value!r}" for path, value in self.tests)
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Patch:
    """A conditional JSON patch of one object."""

    key: ObjectKey
    ops: tuple[JsonPatchOp, ...]
    precondition: Precondition
    step: str
    """The write-ahead step this belongs to (``Lock``, ``Apply``, ``Revert``, ``Promote``, ``Unlock``)."""
    description: str = ""
    best_effort: bool = False

    def wire_ops(self) -> list[dict[str, Any]]:
        """The body to send: precondition tests first, then the change."""
        return [*self.precondition.test_ops(), *(dict(op) for op in self.ops)]


@dataclass(frozen=True)
class Create:
    """Create an object we own (a canary Deployment). ``owner_uid`` identifies our own leftover."""

    manifest: Mapping[str, Any]
    owner_uid: str
    step: str
    description: str = ""

    @property
    def key(self) -> ObjectKey:
        meta = self.manifest["metadata"]
        return ObjectKey(
            self.manifest["apiVersion"], self.manifest["kind"], meta["name"], meta.get("namespace")
        )


@dataclass(frozen=True)
class Delete:
    """Delete one object, conditionally; NotFound counts as done."""

    key: ObjectKey
    precondition: Precondition
    step: str
    description: str = ""
    propagation: str = "Background"
    """``DeleteOptions.propagationPolicy``. Never ``Orphan``: an orphaned canary ReplicaSet matches the
    stable Deployment's selector and would be adopted into its rollout history."""


@dataclass(frozen=True)
class Evict:
    """Evict one pod through the Eviction API (``policy/v1``, the ``pods/eviction`` subresource), so
    its PodDisruptionBudgets apply — never a plain delete around them. ``precondition.uid`` goes into
    the Eviction's ``deleteOptions.preconditions`` (a replacement pod with the same name is not
    evicted). NotFound counts as done; a refusal (429, a budget that allows no disruption now) is a
    transient failure whose message names the budget: retry later, never force it."""

    key: ObjectKey
    precondition: Precondition
    step: str
    description: str = ""


@dataclass(frozen=True)
class PersistIntent:
    """Write-ahead: persist the status (holding snapshot, plan and this intent), then feed
    ``IntentPersisted(step, attempt)``. Nothing is mutated before that confirmation."""

    intent: StepIntent


@dataclass(frozen=True)
class Reads:
    """What an :class:`ObserveTarget` must read (absent → not needed)."""

    target: ObjectKey
    replica_sets: bool = False
    """All ReplicaSets in the namespace controlled by the target (ownerReference controller uid)."""
    hpa: bool = False
    """The HorizontalPodAutoscaler whose ``scaleTargetRef`` names the target, if any."""
    config_map: ObjectKey | None = None
    node: ObjectKey | None = None
    pods: tuple[str, ...] = ()
    """Read these pods by name (absent ones are simply left out)."""
    pods_on_node: str | None = None
    """List the target's pods (by its selector) running on this node."""
    canary: ObjectKey | None = None
    lock_holder: bool = True
    """Whether the Mitigation named by the target's lock annotation exists and is not terminal."""


@dataclass(frozen=True)
class ObserveTarget:
    """Read the target and related objects, then feed ``TargetObserved``."""

    reads: Reads


@dataclass(frozen=True)
class QuerySignals:
    """Query each named signal template over ``[start, end]`` at ``step`` resolution, then feed
    ``BaselineCollected`` (when ``purpose == "baseline"``) or ``GuardSample``. A failed or empty
    query is reported per signal as no data, never dropped."""

    signals: tuple[str, ...]
    start: datetime
    end: datetime
    step_seconds: float
    purpose: str
    """``baseline`` or ``check``."""


@dataclass(frozen=True)
class EvaluatePolicy:
    """Ask the policy evaluator for a decision on this Mitigation, then feed ``PolicyDecided``."""


@dataclass(frozen=True)
class WakeAt:
    """Feed ``Tick`` at (or soon after) this time."""

    at: datetime


@dataclass(frozen=True)
class Finish:
    """The machine is done (terminal phase): the wiring may drop the finalizer if deletion was
    requested, and report the outcome to the Incident."""

    phase: str
    release_finalizer: bool = field(default=True)


Effect = (
    Patch
    | Create
    | Delete
    | Evict
    | PersistIntent
    | ObserveTarget
    | QuerySignals
    | EvaluatePolicy
    | WakeAt
    | Finish
)
"""Everything the reducer can ask for."""

MUTATING = (Patch, Create, Delete, Evict)
"""Effect types that change the cluster; each carries a precondition and a write-ahead step."""
