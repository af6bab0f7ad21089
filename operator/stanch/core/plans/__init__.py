"""Per-action planning: the change, the "is it applied?" check, the revert and drift detection."""

from stanch.core.plans.actions import (
    canary_manifest,
    canary_name,
    detect_drift,
    expected_after,
    is_applied,
    plan,
    revert_effects,
    starts_pods,
    take_snapshot,
    unified_diff,
)
from stanch.core.plans.common import (
    CANARY_LABEL,
    CORDONED_BY,
    RESTARTED_AT,
    ActionPlan,
    MutatingEffect,
    PlanError,
    lock_patch,
    locked_generation,
    unlock_patch,
)
from stanch.core.plans.rollback import (
    ANNOTATIONS_TO_SKIP,
    choose_replica_set,
    equal_ignore_hash,
    rollback_annotations,
)

__all__ = [
    "ANNOTATIONS_TO_SKIP",
    "CANARY_LABEL",
    "CORDONED_BY",
    "RESTARTED_AT",
    "ActionPlan",
    "MutatingEffect",
    "PlanError",
    "canary_manifest",
    "canary_name",
    "choose_replica_set",
    "detect_drift",
    "equal_ignore_hash",
    "expected_after",
    "is_applied",
    "lock_patch",
    "locked_generation",
    "plan",
    "revert_effects",
    "rollback_annotations",
    "starts_pods",
    "take_snapshot",
    "unified_diff",
    "unlock_patch",
]
