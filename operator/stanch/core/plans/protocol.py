"""What one action is, as the reducer sees it: the protocol every action module implements.

An action module says what the reducer must read for it, what its snapshot holds, what it writes
(each write recomputed from the snapshot alone, and recognisable once applied), how it is undone,
whether it starts pods, and where its objects are in what was read. Adding an action is one module
implementing this and one entry in :data:`stanch.core.plans.table.ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from stanch.core.effects import ObjectKey, Reads
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.common import ActionPlan, MutatingEffect
from stanch.core.plans.snapshot import PartT, Snapshot
from stanch.core.world import K8sObject, World


class Action(Protocol[PartT]):
    """One action kind. ``PartT``: its own part of the snapshot."""

    kind: ActionKind
    part: type[PartT]
    """The action's typed part of ``status.snapshot``."""

    def reads(self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[PartT] | None) -> Reads:
        """What ``ObserveTarget`` must read for this action (the target and HPA always)."""
        ...

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> PartT:
        """The action's part of the pre-change record, from what was read. Raises PlanError."""
        ...

    def read(self, raw: Mapping[str, Any]) -> PartT:
        """The action's part from a persisted ``status.snapshot`` (any version Stanch wrote)."""
        ...

    def plan(
        self, spec: MitigationSpec, snapshot: Snapshot[PartT], *, mitigation: str, mitigation_uid: str
    ) -> ActionPlan:
        """The change, from the snapshot alone (a re-run after a crash computes the same writes)."""
        ...

    def revert(
        self, plan: ActionPlan, snapshot: Snapshot[PartT], *, applied_generation: int | None, at: datetime
    ) -> tuple[MutatingEffect, ...]:
        """Undo ``plan.apply`` back to the snapshot, each write conditional on what we wrote.

        Per write: the revert of ``plan`` with ``apply=(w,)`` undoes ``w`` alone (at most one write),
        and the revert of the whole plan is those in order, so a half-applied change is undone
        exactly (:func:`~stanch.core.plans.planning.revert_pairs`)."""
        ...

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[PartT]) -> bool:
        """Whether the change makes new pods start (whose cold start the guard lets settle)."""
        ...

    def live(self, world: World, key: ObjectKey) -> K8sObject | None:
        """The live object a write of this action targets, from what was read (None = absent)."""
        ...
