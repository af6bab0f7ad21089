"""The reducer's input state and output transition.

The state is the Mitigation's persisted status plus what the wiring resolves around it (the guard
merged over policy defaults, the signal templates). Nothing lives only in memory: a fresh process
rebuilds the same :class:`MachineState` from the object and the reducer carries on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from stanch.core.effects import Effect
from stanch.core.models import (
    AuditEntry,
    GuardProblem,
    MitigationSpec,
    MitigationStatus,
    ResolvedGuard,
    SignalTemplate,
)
from stanch.core.scope import LockHolder, holds_lock


@dataclass(frozen=True)
class MitigationIdentity:
    """Who we are: the lock annotation's value and the canary's owner."""

    name: str
    namespace: str
    uid: str

    @property
    def lock(self) -> str:
        """The lock annotation's value for us: ``<namespace>/<name>`` (a bare name would let a
        Mitigation of the same name in another namespace pass for us)."""
        return LockHolder(self.namespace, self.name).value

    def holds(self, lock: str | None) -> bool:
        """Whether a lock annotation on our target (always in our namespace) names us."""
        return holds_lock(lock, self.namespace, self.namespace, self.name)


@dataclass(frozen=True)
class MachineState:
    """Everything the reducer decides from."""

    identity: MitigationIdentity
    spec: MitigationSpec
    status: MitigationStatus
    guard: ResolvedGuard
    """The guard with every field resolved (spec over policy ``guardDefaults`` over ``BUILTIN_GUARD``):
    once decided, the one frozen in ``status.guard``; when ``PolicyDecided`` is fed, the one resolved
    under the deciding policy, which that transition freezes."""
    signals: Mapping[str, SignalTemplate] = field(default_factory=dict)
    """Signal templates by name (kind, direction, threshold); a guard signal missing here is no data."""
    deleting: bool = False
    """``metadata.deletionTimestamp`` is set (the finalizer holds the object)."""
    legacy_approval: str | None = None
    """What on the Mitigation itself claims to approve it (the old ``stanch.dev/approved-by``
    annotation, an old stored ``spec.approval.approved``): it approves nothing, and is said so."""
    incident_onset: datetime | None = None
    """The linked Incident's onset (a change point or the reported start), if it has one: the
    baseline never reaches back before it."""
    guard_problem: GuardProblem | None = None
    """Why the merged guard is invalid, if it is; ``guard`` is then the built-in stand-in, never
    judged with: the reducer ends the Mitigation (or reverts its change) first."""


@dataclass(frozen=True)
class KubeEvent:
    """A Kubernetes Event to post on the Mitigation."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    """The reducer's answer: persist ``state.status`` first, then run ``effects`` in order, post
    ``events``. ``audit`` holds the entries appended to ``state.status.audit`` by this transition."""

    state: MachineState
    effects: tuple[Effect, ...] = ()
    audit: tuple[AuditEntry, ...] = ()
    events: tuple[KubeEvent, ...] = ()
