"""Who asked and who approved: identities the API server vouched for (design invariant 12).

Kubernetes stores no creator on an object, and a ValidatingAdmissionPolicy can check a request but
not change it. So the requester and the approver *state* who they are in a field, and the
``stanch-identity`` admission policy (``manifests/identity-admission.yaml``, built from
:mod:`stanch.core.identity`) refuses the request unless the field is exactly the authenticated
user (``request.userInfo.username``) and every group it names is one of the user's groups. The
fields are immutable afterwards, so what the operator reads is what the API server checked.

Approval is a separate resource, ``MitigationApproval``, so RBAC can grant it on its own: approvers
get ``create`` on ``mitigationapprovals``, requesters do not. This is the shape of Kubernetes' own
CertificateSigningRequest approval (a separate ``approval`` subresource with its own verb), rather
than Argo Rollouts' or Flagger's promotion, which is any write to the rollout (or a webhook's
answer) and records no approver at all.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from stanch.core.models.base import Capped, CelRule, StanchModel
from stanch.core.models.common import ObjectName, Text
from stanch.core.models.meta import ObjectMeta

Username = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""An authenticated user name as the API server reports it, e.g. ``alice@example.com`` or
``system:serviceaccount:stanch-system:stanch``."""
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A group of the authenticated user, e.g. ``sre-oncall`` or ``system:authenticated``."""

IMMUTABLE_APPROVAL = (
    "a MitigationApproval is immutable: delete it and create a new one (the admission policy checks"
    " the approver at creation)"
)
REQUESTER_IMMUTABLE = "requester is immutable: it is set (and checked against your identity) at creation"


class UserIdentity(StanchModel):
    """An authenticated user, as stated by that user and checked at creation by the ``stanch-identity``
    admission policy: ``username`` must equal the requesting user's name, and each group listed must be
    one of the requesting user's groups (list only the ones a policy asks for). ``kubectl auth whoami``
    shows both."""

    username: Username
    """The user name, exactly as ``kubectl auth whoami`` shows it."""
    groups: Annotated[list[GroupName], Field(max_length=32)] = []
    """Groups of that user that a policy may ask for (``approval.approverGroups``); others may be
    left out."""


class MitigationRef(StanchModel):
    """The Mitigation an approval is for, by name and uid: an approval never carries over to a new
    Mitigation created under the same name."""

    name: ObjectName
    """Name of the Mitigation (same namespace)."""
    uid: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Its ``metadata.uid`` (``kubectl get mitigation NAME -o jsonpath='{.metadata.uid}'``)."""


class MitigationApprovalSpec(StanchModel):
    """One approver's approval of one Mitigation. Immutable; checked at creation by the
    ``stanch-identity`` admission policy."""

    mitigation_ref: MitigationRef
    """The Mitigation approved."""
    approver: UserIdentity
    """Who approves: must be the user creating this object."""
    reason: Text = ""
    """Why, for the audit trail."""

    cel_rules = (CelRule(rule="self == oldSelf", message=IMMUTABLE_APPROVAL),)


class MitigationApproval(StanchModel):
    """A whole MitigationApproval object."""

    api_version: Literal["stanch.dev/v1alpha1"] = "stanch.dev/v1alpha1"
    """API version."""
    kind: Literal["MitigationApproval"] = "MitigationApproval"
    """Kind."""
    metadata: ObjectMeta = ObjectMeta()
    """Object metadata."""
    spec: MitigationApprovalSpec
    """The approval."""


class ApprovalPolicy(StanchModel):
    """Who may approve a Mitigation that this policy holds for approval (tier Manual, GitOps-managed
    targets, Manual auto-mitigation rules)."""

    allow_self_approval: bool = False
    """Whether the requester may approve their own Mitigation. Off by default: approval means a second
    person looked."""
    approver_groups: Annotated[list[GroupName], Field(max_length=32)] = []
    """When set, the approver must list (in ``spec.approver.groups`` of the MitigationApproval) at least
    one of these groups; the admission policy has checked that the approver is in it."""


class ApproverGroups(StanchModel):
    """One policy's approver groups (the approver must be in one of them)."""

    policy: Annotated[str, StringConstraints(max_length=320)]
    """The policy, as ``MitigationPolicy/<namespace>/<name>`` or ``ClusterMitigationPolicy/<name>``."""
    groups: Annotated[list[GroupName], Field(max_length=32)] = []
    """Its ``approval.approverGroups``."""


class ApprovalRequirements(StanchModel):
    """What an approval must satisfy, from every matching policy at decision time (the strictest of
    each)."""

    allow_self_approval: bool = False
    """True only when every matching policy allows self-approval."""
    approver_groups: Annotated[list[ApproverGroups], Capped(10, keep="first")] = []
    """Each entry must be satisfied: the approver is in at least one of its groups."""


class ApprovalRecord(StanchModel):
    """The approval that let the Mitigation act."""

    approver: UserIdentity
    """Who approved (checked by the admission policy)."""
    approval: ObjectName
    """The MitigationApproval object."""
    reason: Text = ""
    """The approver's reason."""
    approved_at: AwareDatetime | None = None
    """When Stanch accepted it."""
