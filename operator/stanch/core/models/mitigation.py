"""The Mitigation resource: one guarded change to a workload, and its audit trail."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from stanch.core.models.actions import ActionKind, ActionSet
from stanch.core.models.base import Capped, CelRule, StanchModel
from stanch.core.models.common import (
    Conditions,
    Duration,
    ObjectName,
    TargetRef,
    Text,
    preserve_unknown,
)
from stanch.core.models.guard import GuardSpec, ResolvedGuard
from stanch.core.models.identity import (
    REQUESTER_IMMUTABLE,
    ApprovalRecord,
    ApprovalRequirements,
    UserIdentity,
)
from stanch.core.models.meta import ObjectMeta

APPROVED_BY_ANNOTATION = "stanch.dev/approved-by"
"""Formerly granted manual approval. It approves nothing any more (anyone who can edit the Mitigation
could set it); a MitigationApproval does. Kept so the operator can say so on old objects."""
PRE_APPROVED = (
    "spec.approval no longer approves anything: remove approved and approvedBy; an approver creates a"
    " MitigationApproval naming this Mitigation (see docs/policy-guide.md, Approval)"
)
LOCK_ANNOTATION = "stanch.dev/active-mitigation"
"""Annotation on the target naming the Mitigation holding its lock (one active mitigation per target)."""

FLUX_RECONCILE_ANNOTATION = "kustomize.toolkit.fluxcd.io/reconcile"
"""Flux's documented per-object switch: with the value ``disabled`` on the live object,
kustomize-controller neither applies nor prunes it until the annotation is gone."""
FLUX_RECONCILE_DISABLED = "disabled"

DRY_RUN_IMMUTABLE = (
    "dryRun is immutable: the policy decided on it; delete this Mitigation and create one with the dryRun"
    " you want"
)

DRY_RUN_RULE = "dryRun"
"""The ``rule`` of a dry run's policy decision (``status.policy.rule``): a Mitigation runs, and counts
against rate limits, as the dry run or the real change the policy decided on."""

Actor = Annotated[str, StringConstraints(max_length=256)]
"""A user name, a service account, or ``policy:<namespace>/<name>#<rule>``."""

EDITABLE_AFTER_DECISION = ("approval", "keep_on_resolve", "revert_on_delete")
"""Spec fields that may change once the policy has decided: none of them changes what is done to the
target (approving is what a RequireApproval decision waits for; keepOnResolve keeps a temporary
change as a permanent one would be kept; revertOnDelete only says whether deleting undoes it).
Everything else is frozen (design invariant 12: what runs is exactly what the policy allowed)."""

SPEC_FROZEN = (
    "spec is frozen once the policy has decided (status.policy): only approval, keepOnResolve and"
    " revertOnDelete may change; delete this Mitigation and create a new one with the change"
)

# --- spec ---------------------------------------------------------------------------------------


class IncidentRef(StanchModel):
    """The Incident a Mitigation belongs to (same namespace)."""

    name: ObjectName
    """Name of the Incident."""


class Approval(StanchModel):
    """Deprecated: approval in the Mitigation's own spec was written by the requester, so it proved
    nothing. ``approved`` and ``approvedBy`` are refused on new objects; Stanch ignores them on old
    ones. Approve with a MitigationApproval."""

    approved: bool = False
    """Refused when true: a Mitigation never arrives approved."""
    approved_by: Actor | None = None
    """Refused: the approver is the user who creates the MitigationApproval."""
    reason: Text = ""
    """Ignored."""

    cel_rules = (CelRule(rule="!self.approved && !has(self.approvedBy)", message=PRE_APPROVED),)


class MitigationSpec(ActionSet):
    """What to change, how to watch it and how to undo it. Exactly one action must be set."""

    incident_ref: IncidentRef | None = None
    """The Incident this mitigates, if any; its status will show the outcome."""
    target: TargetRef = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "target is immutable"},
            ]
        }
    )
    """The workload to act on. Immutable."""
    guard: GuardSpec = GuardSpec()
    """Guard settings; unset fields come from the policy's guardDefaults."""
    dry_run: bool = Field(
        default=False,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": DRY_RUN_IMMUTABLE}]
        },
    )
    """Only record the exact change that would be made (always allowed, never touches the target).
    Immutable: the policy decided on it, so a dry run switched to a real one would act without any
    policy having allowed it."""
    approval: Approval | None = None
    """Deprecated, approves nothing (see MitigationApproval)."""
    requester: UserIdentity | None = Field(
        default=None,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": REQUESTER_IMMUTABLE}]
        },
    )
    """Who asks: your own user name (``kubectl auth whoami``). The ``stanch-identity`` admission policy
    requires it on every new Mitigation and refuses any name but the requesting user's; Mitigations
    Stanch creates carry its ServiceAccount. Immutable."""
    temporary: bool = False
    """Undo this mitigation (under the same guard) when the Incident is resolved."""
    keep_on_resolve: bool = False
    """For a temporary mitigation: keep it anyway when the Incident is resolved."""
    revert_on_delete: bool = True
    """Deleting the Mitigation mid-flight reverts the change first (finalizer)."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="!self.keepOnResolve || self.temporary",
            message="keepOnResolve only applies to temporary mitigations",
            field_path=".keepOnResolve",
        ),
        # A field-level transition rule only runs when the field is on both sides; this one stops a
        # requester being added to (or removed from) an existing Mitigation.
        CelRule(rule="has(self.requester) == has(oldSelf.requester)", message=REQUESTER_IMMUTABLE),
    )

    @model_validator(mode="after")
    def _keep_only_temporary(self) -> MitigationSpec:
        if self.keep_on_resolve and not self.temporary:
            raise ValueError("keepOnResolve only applies to temporary mitigations")
        return self


# --- status -------------------------------------------------------------------------------------


class MitigationPhase(StrEnum):
    """Lifecycle of a Mitigation."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    REJECTED = "Rejected"
    BASELINE = "Baseline"
    APPLYING = "Applying"
    BAKING = "Baking"
    SUCCEEDED = "Succeeded"
    REVERTING = "Reverting"
    REVERTED = "Reverted"
    FAILED = "Failed"
    NEEDS_ATTENTION = "NeedsAttention"


TERMINAL_PHASES = frozenset(
    {
        MitigationPhase.REJECTED,
        MitigationPhase.SUCCEEDED,
        MitigationPhase.REVERTED,
        MitigationPhase.FAILED,
        MitigationPhase.NEEDS_ATTENTION,
    }
)
"""Phases after which Stanch no longer acts on its own."""


class PolicyDecisionKind(StrEnum):
    """Outcome of policy evaluation."""

    ALLOW = "Allow"
    DENY = "Deny"
    REQUIRE_APPROVAL = "RequireApproval"


class AutoSyncRequest(StanchModel):
    """A policy's request to suspend the GitOps controller's self-heal while the Mitigation runs
    (``gitops.suspendAutoSync``)."""

    tool: Annotated[str, StringConstraints(max_length=64)]
    """``ArgoCD`` or ``Flux``."""
    app: Text
    """What reconciles the target, e.g. ``Kustomization flux-system/apps``."""
    policy: Annotated[str, StringConstraints(max_length=320)]
    """The policy that asked for it."""
    application: Annotated[str, StringConstraints(max_length=320)] | None = None
    """Argo CD: the owning Application as ``<namespace>/<name>``."""
    self_heal: bool | None = None
    """Argo CD: ``spec.syncPolicy.automated.selfHeal`` of the Application when the decision was made
    (None: not found or not readable)."""
    has_annotations: bool | None = None
    """Argo CD: whether the Application had an annotations map (decides how the marker is added)."""
    not_managing: Text | None = None
    """Argo CD: why the Application is not shown to manage the target (its ``status.resources`` does
    not list it); set, the Application is never touched."""


class PolicyDecision(StanchModel):
    """Which policy and rule decided, and why (design invariant 4: no action without it)."""

    decision: PolicyDecisionKind
    """The decision."""
    policy: Annotated[str, StringConstraints(max_length=320)] | None = None
    """Deciding policy as ``MitigationPolicy/<namespace>/<name>`` or ``ClusterMitigationPolicy/<name>``;
    absent when no policy matched (default deny)."""
    rule: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Deciding rule within the policy, e.g. ``actions[Rollback]`` or ``freezeWindows[release]``."""
    reasons: Annotated[list[Text], Capped(10, keep="first")] = []
    """Why, with numbers, e.g. ``scale denied: 40 replicas exceeds max 20``."""
    decided_at: AwareDatetime | None = None
    """When the decision was made."""
    gitops_managed: Annotated[str, StringConstraints(max_length=64)] | None = None
    """The GitOps tool managing the target (``ArgoCD``, ``Flux``), when detected."""
    suspend_auto_sync: AutoSyncRequest | None = None
    """Set when a matching policy asks for the GitOps controller's self-heal to be suspended for the
    duration of the Mitigation (never for dry runs or denied requests)."""
    approval: ApprovalRequirements | None = None
    """For RequireApproval: who may approve, from the matching policies' ``approval`` settings."""
    spec_digest: Annotated[str, StringConstraints(max_length=80)] | None = None
    """``sha256:<hex>`` of the spec the policy decided on (every field but those that may change after
    the decision, see :data:`EDITABLE_AFTER_DECISION`). The CRD refuses a change of those fields
    once this decision exists; should one get through (a CRD older than the rule), the operator sees
    the digest differ and sends the Mitigation back through policy, or stops it, visibly."""


class AutoSyncPhase(StrEnum):
    """Where the suspension of a GitOps controller's self-heal stands."""

    SUSPENDING = "Suspending"
    """Recorded before the change that suspends it (taken together with the target lock)."""
    SUSPENDED = "Suspended"
    NOT_SUSPENDED = "NotSuspended"
    """Asked for but not done; ``reason`` says why (nothing was changed)."""
    RESTORING = "Restoring"
    """The Mitigation ended; the restore is under way (a restarted operator finishes it)."""
    RESTORED = "Restored"
    NOT_RESTORED = "NotRestored"
    """The switch was no longer as Stanch left it (someone changed it); left as it is."""


class AutoSync(StanchModel):
    """What Stanch suspended of a GitOps controller's self-heal, written before it does so, so that a
    restarted operator restores exactly that."""

    tool: Annotated[str, StringConstraints(max_length=64)]
    """``ArgoCD`` or ``Flux``."""
    object: Annotated[str, StringConstraints(max_length=320)]
    """The object carrying the switch, as ``Kind/namespace/name``."""
    field: Annotated[str, StringConstraints(max_length=320)]
    """The switch, e.g. ``metadata.annotations[kustomize.toolkit.fluxcd.io/reconcile]``."""
    value: Annotated[str, StringConstraints(max_length=64)]
    """The value Stanch sets while the Mitigation runs, e.g. ``disabled``."""
    previous: Annotated[str, StringConstraints(max_length=256)] | None = None
    """The value before (absent: none), put back at the end."""
    phase: AutoSyncPhase
    """Where it stands."""
    reason: Text = ""
    """Why, in words."""
    changed_at: AwareDatetime | None = None
    """When ``phase`` last changed."""
    marker: Annotated[str, StringConstraints(max_length=320)] | None = None
    """Argo CD: value of the ``stanch.dev/self-heal-suspended-by`` annotation set on the Application
    with the change; the restore is conditional on it, so only Stanch's own suspension is undone."""


class Plan(StanchModel):
    """The exact change Stanch will make (or, in dry run, would make)."""

    summary: Text = ""
    """Human-readable description, e.g. ``replicas 4 → 8``."""
    changes: Annotated[list[Text], Capped(20, keep="first")] = []
    """Human-readable list of field changes."""
    patch: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    """Machine form: the merge patch to apply to the target. Free-form because it mirrors whatever part
    of an arbitrary Kubernetes object the action changes."""


class StepIntent(StanchModel):
    """Write-ahead record (design invariant 1): persisted before the step touches the target."""

    step: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """The step about to run, e.g. ``Apply``, ``Revert``, ``Promote``, ``Cleanup``."""
    started_at: AwareDatetime
    """When the step was started."""
    attempt: Annotated[int, Field(ge=1, le=1000)] = 1
    """Attempt number (re-runs after a crash increase it)."""
    expected_resource_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    """Target ``resourceVersion`` the mutation is conditional on (design invariant 2)."""
    expected_generation: Annotated[int, Field(ge=0)] | None = None
    """Target ``metadata.generation`` the mutation is conditional on."""


class AppliedChange(StanchModel):
    """What the target looked like right after Stanch's own change; drift is any later change."""

    at: AwareDatetime
    """When the change was applied."""
    resource_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    """Target ``resourceVersion`` after the change."""
    generation: Annotated[int, Field(ge=0)] | None = None
    """Target ``metadata.generation`` after the change."""


class SignalValue(StanchModel):
    """A signal's value at one check (absent value = no data)."""

    signal: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Signal template name."""
    value: float | None = None
    """Value; absent when there was no data."""
    samples: Annotated[int, Field(ge=0)] | None = None
    """Number of samples behind the value."""
    error: Text | None = None
    """Why there is no value (query failed, empty result)."""
    points: Annotated[list[float], Capped(60, keep="last")] = []
    """Baseline only: the window's raw points, kept for the guard's rank test after a restart."""
    failed: bool | None = None
    """Guard checks only: whether this signal failed the check (failures count per signal)."""
    settling: bool | None = None
    """Guard checks only: worse than the baseline while the target's new pods were still settling,
    so not counted as a failure (latency and saturation only)."""


class Baseline(StanchModel):
    """Metric baseline taken before acting."""

    window: Duration
    """Length of the baseline window."""
    start: AwareDatetime
    """Start of the window."""
    end: AwareDatetime
    """End of the window (the moment before acting)."""
    values: Annotated[list[SignalValue], Capped(10, keep="first")] = []
    """Baseline value per signal."""


class CheckVerdict(StrEnum):
    """Result of one guard check."""

    PASS = "Pass"  # noqa: S105 - a verdict, not a password
    FAIL = "Fail"
    NO_DATA = "NoData"
    SETTLING = "Settling"
    """Only latency or saturation was worse, while the target's new pods were starting (or within
    ``settleTime`` of all being available): not a failure, not a pass."""


OBSERVATIONS_MAX = 60


class Observation(StanchModel):
    """One guard check during the bake."""

    time: AwareDatetime
    """When the check ran."""
    values: Annotated[list[SignalValue], Capped(10, keep="first")] = []
    """Observed value per signal."""
    check: CheckVerdict
    """Result of the check."""
    consecutive_failures: Annotated[int, Field(ge=0)] = 0
    """Failed checks in a row, including this one."""
    note: Annotated[str, StringConstraints(max_length=512)] = ""
    """Why the check passed or failed, with the numbers."""


class RolloutProgress(StanchModel):
    """The target's rollout during the bake (the canary's, for a canary), as last read.

    While a rollback's or a scale-up's new pods start, latency and saturation rise for reasons that
    pass on their own; the guard counts those as settling rather than failing (see ``settleTime``).
    """

    desired: Annotated[int, Field(ge=0)] = 0
    """``spec.replicas``."""
    updated: Annotated[int, Field(ge=0)] = 0
    """Pods of the current template (``status.updatedReplicas``)."""
    available: Annotated[int, Field(ge=0)] = 0
    """Available pods (``status.availableReplicas``)."""
    starting: bool = False
    """The controller has seen the current spec and not all desired pods are updated and available."""
    stalled: bool = False
    """``Progressing`` is False with ``ProgressDeadlineExceeded``: no longer settling, judged as is."""
    settled_at: AwareDatetime | None = None
    """When the pods that were starting had all become available."""


class VerdictResult(StrEnum):
    """Outcome of the guard comparison."""

    HEALTHY = "Healthy"
    WORSE = "Worse"
    INCONCLUSIVE = "Inconclusive"
    NO_DATA = "NoData"


class VerdictNumber(StanchModel):
    """One comparison behind a verdict (design invariant 10: every verdict carries its numbers)."""

    signal: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Signal template name."""
    baseline: float | None = None
    """Baseline value."""
    observed: float | None = None
    """Observed value (latest or aggregate)."""
    threshold: float | None = None
    """Threshold the observed value was compared with."""
    test: Annotated[str, StringConstraints(max_length=256)] = ""
    """The comparison made, e.g. ``observed > baseline*(1+0.1)`` or ``mann-whitney p=0.003``."""


class Verdict(StanchModel):
    """The guard verdict and the numbers that produced it."""

    result: VerdictResult
    """Outcome."""
    reason: Text
    """Plain explanation."""
    decided_at: AwareDatetime | None = None
    """When the verdict was reached."""
    checks: Annotated[int, Field(ge=0)] = 0
    """Checks performed."""
    failed_checks: Annotated[int, Field(ge=0)] = 0
    """Checks that failed."""
    numbers: Annotated[list[VerdictNumber], Capped(10, keep="first")] = []
    """Comparisons per signal."""


AUDIT_MAX = 50


class AuditEntry(StanchModel):
    """One append-only audit record: a transition or decision, who caused it, and why."""

    time: AwareDatetime
    """When it happened."""
    actor: Actor
    """Who or what caused it (a user, ``stanch``, or a policy rule)."""
    event: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """What happened, CamelCase, e.g. ``PolicyAllowed``, ``Approved``, ``Applied``, ``Reverted``."""
    from_phase: MitigationPhase | None = None
    """Phase before."""
    to_phase: MitigationPhase | None = None
    """Phase after."""
    reason: Text = ""
    """Why, with numbers."""


class Drift(StanchModel):
    """Someone else changed the target after Stanch acted (design invariant 3)."""

    detected_at: AwareDatetime
    """When the drift was noticed."""
    by: Actor | None = None
    """Field manager of the foreign change, when known."""
    diff: Annotated[str, StringConstraints(max_length=8192)] = ""
    """Unified diff of the changed fields (truncated)."""


class MitigationStatus(StanchModel):
    """Written only by Stanch."""

    phase: MitigationPhase | None = None
    """Lifecycle phase."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` last processed."""
    action: ActionKind | None = None
    """The action, for the printer column."""
    target: Annotated[str, StringConstraints(max_length=320)] | None = None
    """The target as ``Kind/namespace/name``."""
    requested_by: Actor | None = None
    """Who created the Mitigation: a user, or ``policy:<namespace>/<name>#<rule>``."""
    requester: UserIdentity | None = None
    """The requester as checked by the admission policy (``spec.requester``); absent on Mitigations
    created before it existed."""
    approval: ApprovalRecord | None = None
    """The approval that let it act, if it needed one."""
    policy: PolicyDecision | None = None
    """The recorded policy decision."""
    guard: ResolvedGuard | None = None
    """The guard this Mitigation runs under, resolved (``spec.guard`` over the deciding policy's
    ``guardDefaults`` over the built-in defaults) and frozen when the policy decided: a later edit of
    the policy's ``guardDefaults`` does not change the guard of a Mitigation already under way.
    Absent on a Mitigation decided by an older Stanch, which resolves it on every pass as before."""
    plan: Plan | None = None
    """The planned change (also the dry-run result)."""
    snapshot: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    """The pre-change record, written before any mutation: what the action changes and needs to
    verify and revert it (the target's identity, versions and spec, an HPA's bounds, the action's
    own part such as the ConfigMap key or the revision rolled back to), never the whole object.
    Secret-looking values (env such as ``DB_PASSWORD``) are not kept: they read as a placeholder and
    are restored from the live Deployment or its ReplicaSets when a revert needs them.
    Free-form: its shape is Stanch's, versioned by its ``version`` key."""
    intent: StepIntent | None = None
    """Write-ahead record of the step in progress."""
    applied: AppliedChange | None = None
    """The target's version right after Stanch's change."""
    canary: ObjectName | None = None
    """Name of the canary Deployment owned by this Mitigation, if any."""
    baseline: Baseline | None = None
    """Metric baseline."""
    observations: Annotated[list[Observation], Capped(OBSERVATIONS_MAX, keep="last")] = []
    """Guard checks, newest kept."""
    rollout: RolloutProgress | None = None
    """The target's rollout during the bake, as last read (what the guard's settling is based on)."""
    verdict: Verdict | None = None
    """Guard verdict."""
    audit: Annotated[list[AuditEntry], Capped(AUDIT_MAX, keep="last")] = []
    """Append-only audit trail; when full the oldest entries are dropped (Events keep the full record)."""
    drift: Drift | None = None
    """Foreign change detected after acting."""
    auto_sync: AutoSync | None = None
    """The GitOps self-heal suspended for the Mitigation's duration (``gitops.suspendAutoSync``)."""
    message: Text = ""
    """Latest human-readable status."""
    conditions: Conditions = []
    """Conditions, e.g. ``Ready``, ``Approved``, ``Drifted``."""
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    """Kopf's own bookkeeping (handler progress); free-form, not part of the API."""


class Mitigation(StanchModel):
    """A whole Mitigation object as stored in Kubernetes."""

    api_version: Literal["stanch.dev/v1alpha1"] = "stanch.dev/v1alpha1"
    """API version."""
    kind: Literal["Mitigation"] = "Mitigation"
    """Kind."""
    metadata: ObjectMeta = ObjectMeta()
    """Object metadata."""
    spec: MitigationSpec
    """Desired state."""
    status: MitigationStatus | None = None
    """Observed state."""


def frozen_fields() -> tuple[str, ...]:
    """Wire names of the spec fields frozen once the policy has decided (all but
    :data:`EDITABLE_AFTER_DECISION`), in declaration order."""
    return tuple(
        info.alias or name
        for name, info in MitigationSpec.model_fields.items()
        if name not in EDITABLE_AFTER_DECISION
    )


def spec_digest(spec: MitigationSpec) -> str:
    """``sha256:<hex>`` of the frozen part of ``spec``, as JSON with sorted keys and defaults left out
    (a field a newer Stanch adds, at its default, does not make an older decision look stale)."""
    frozen = spec.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude=set(EDITABLE_AFTER_DECISION)
    )
    text = json.dumps(frozen, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def spec_frozen_rule() -> CelRule:
    """The CRD's root rule (root rules see ``status``; a rule on ``spec`` would not): once
    ``status.policy`` exists, every frozen field keeps its presence and its value."""
    same = " && ".join(
        f"(has(self.spec.{f}) ? has(oldSelf.spec.{f}) && self.spec.{f} == oldSelf.spec.{f}"
        f" : !has(oldSelf.spec.{f}))"
        for f in frozen_fields()
    )
    return CelRule(
        rule=f"!has(oldSelf.status) || !has(oldSelf.status.policy) || ({same})",
        message=SPEC_FROZEN,
        field_path=".spec",
    )
