"""Policy decisions: evaluation of Mitigations against MitigationPolicies, semantic validation of
policies, automatic mitigation from Incident hypotheses, and notification grouping. Pure: the
caller passes objects in (as read by ``stanch.adapters.policies``) and the time."""

from stanch.core.policy.audit import REQUESTED_BY_ANNOTATION, requested_by
from stanch.core.policy.auto import (
    CREATED_BY_LABEL,
    INCIDENT_LABEL,
    AutoMitigation,
    AutoOutcome,
    auto_mitigation,
    mitigation_name,
)
from stanch.core.policy.evaluation import (
    CREATED_BY_ANNOTATION,
    LimitViolation,
    MitigationRequest,
    application_manages,
    argo_application,
    evaluate,
    limit_violations,
    matching_policies,
    request_from,
    with_application,
)
from stanch.core.policy.facts import GitOpsOwner, GitOpsTool, TargetFacts, gitops_owner, target_facts
from stanch.core.policy.history import PastMitigation, past_mitigation
from stanch.core.policy.loading import LoadedPolicy, load_policy
from stanch.core.policy.validation import VALID, Problem, validity_conditions

__all__ = [
    "CREATED_BY_ANNOTATION",
    "CREATED_BY_LABEL",
    "INCIDENT_LABEL",
    "REQUESTED_BY_ANNOTATION",
    "VALID",
    "AutoMitigation",
    "AutoOutcome",
    "GitOpsOwner",
    "GitOpsTool",
    "LimitViolation",
    "LoadedPolicy",
    "MitigationRequest",
    "PastMitigation",
    "Problem",
    "TargetFacts",
    "application_manages",
    "argo_application",
    "auto_mitigation",
    "evaluate",
    "gitops_owner",
    "limit_violations",
    "load_policy",
    "matching_policies",
    "mitigation_name",
    "past_mitigation",
    "request_from",
    "requested_by",
    "target_facts",
    "validity_conditions",
    "with_application",
]
