"""What the wiring feeds the reducer: typed events, one per thing that happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stanch.core.effects import ObjectKey
from stanch.core.identity import OfferedApproval
from stanch.core.models import PolicyDecision

# Re-exported: the wiring builds a World for TargetObserved.
from stanch.core.world import K8sObject as K8sObject
from stanch.core.world import World as World


@dataclass(frozen=True)
class SignalSeries:
    """One signal over a query window. ``points is None`` means no data (``error`` says why)."""

    signal: str
    points: tuple[float, ...] | None
    error: str | None = None


@dataclass(frozen=True)
class PolicyDecided:
    decision: PolicyDecision


@dataclass(frozen=True)
class Approved:
    """A MitigationApproval naming this Mitigation (name and uid). Only an offer: the reducer judges it
    against the requester, the decision's approval requirements and ``admission`` (why identities are
    unverified right now, None when the ``stanch-identity`` admission policy is in force)."""

    approval: OfferedApproval
    admission: str | None = None


@dataclass(frozen=True)
class LegacyApprovalSeen:
    """The Mitigation carries an approval of the old kind (``state.legacy_approval``)."""


@dataclass(frozen=True)
class TargetObserved:
    world: World


@dataclass(frozen=True)
class BaselineCollected:
    start: datetime
    end: datetime
    series: tuple[SignalSeries, ...]


@dataclass(frozen=True)
class IntentPersisted:
    step: str
    attempt: int


@dataclass(frozen=True)
class ChangeApplied:
    """Every mutating effect of ``step`` succeeded; rv/generation of the step's primary object after."""

    step: str
    resource_version: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class ApplyFailed:
    """A write of ``step`` was not applied (the ones before it in the step were). Three classes,
    which the reducer treats differently:

    - ``conflict``: a precondition failed (409, a failed JSON-patch ``test``, the object gone): the
      object is not what the plan was computed from. Observe it: done already, re-issue, or drift.
    - ``retriable``: transient (5xx, 429, a timeout, a lost connection): the same conditional write
      may succeed later. Retried with a backoff, at most ``MAX_ATTEMPTS`` times per step.
    - neither (:attr:`refused`): the API server refused the write itself (422 from validation or an
      admission policy, 403, 400): deterministic, retrying cannot help. It ends the step visibly.
    """

    step: str
    reason: str
    retriable: bool = False
    conflict: bool = False
    """A precondition failed (HTTP 409/422 on a test op): the object is not what we planned from."""
    code: int | None = None
    """The API server's HTTP status (0: no answer at all; None: unknown)."""
    key: ObjectKey | None = None
    """The object whose write failed (None: unknown). The step's writes before it were applied."""

    @property
    def refused(self) -> bool:
        """A deterministic refusal: neither a failed precondition nor a transient failure."""
        return not self.retriable and not self.conflict


@dataclass(frozen=True)
class GuardSample:
    at: datetime
    series: tuple[SignalSeries, ...]


@dataclass(frozen=True)
class RevertApplied:
    resource_version: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class DeleteRequested:
    pass


@dataclass(frozen=True)
class IncidentResolved:
    pass


@dataclass(frozen=True)
class Tick:
    """Time passed (a timer, a resume after restart, a ``WakeAt``)."""


@dataclass(frozen=True)
class PassesFailed:
    """The wiring's passes over this Mitigation raised ``attempts`` times in a row (not a passing
    outage): its retry budget is spent, and the Mitigation must stop visibly rather than retry."""

    error: str
    attempts: int


Observation = (
    PolicyDecided
    | Approved
    | LegacyApprovalSeen
    | TargetObserved
    | BaselineCollected
    | IntentPersisted
    | ChangeApplied
    | ApplyFailed
    | GuardSample
    | RevertApplied
    | DeleteRequested
    | IncidentResolved
    | Tick
    | PassesFailed
)
"""Everything the reducer reacts to. (Not :class:`stanch.core.models.Observation`, which is one
guard check stored in status.)"""
