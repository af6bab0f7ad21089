"""Who may approve: the ``approval`` sections of the policies that matched, combined at decision time
and recorded with the decision (``status.policy.approval``), so the rule an approval is judged by is
the one in force when the Mitigation was held."""

from __future__ import annotations

from collections.abc import Sequence

from stanch.core.models import ApprovalRequirements, ApproverGroups
from stanch.core.policy.loading import LoadedPolicy


def approval_requirements(matching: Sequence[LoadedPolicy]) -> ApprovalRequirements:
    """The strictest of each setting: self-approval only when every matching policy allows it (an
    invalid policy's allowance counts for nothing, like its other allowances), and every policy's
    approver groups must be satisfied (a restriction holds even in an invalid policy)."""
    allow_self = bool(matching) and all(p.valid and p.spec.approval.allow_self_approval for p in matching)
    groups = [
        ApproverGroups(policy=p.ref, groups=list(p.spec.approval.approver_groups))
        for p in matching
        if p.spec.approval.approver_groups
    ]
    return ApprovalRequirements(allow_self_approval=allow_self, approver_groups=groups)
