"""Per-action planning: the change, the "is it applied?" check, the revert and drift detection.

One module per action (:mod:`.rollback`, :mod:`.scale`, :mod:`.restart`, :mod:`.canary`,
:mod:`.config_toggle`, :mod:`.evacuate`, :mod:`.pause`, :mod:`.autoscaler`), each implementing
:class:`~stanch.core.plans.protocol.Action`, listed in :data:`~stanch.core.plans.table.ACTIONS`.
"""

from stanch.core.plans.canary import canary_manifest, canary_name
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
from stanch.core.plans.diff import unified_diff
from stanch.core.plans.planning import (
    AnySnapshot,
    plan,
    read_snapshot,
    reads,
    revert_effects,
    starts_pods,
    take_snapshot,
)
from stanch.core.plans.protocol import Action
from stanch.core.plans.rollback import (
    ANNOTATIONS_TO_SKIP,
    choose_replica_set,
    equal_ignore_hash,
    rollback_annotations,
)
from stanch.core.plans.snapshot import Snapshot
from stanch.core.plans.table import ACTIONS, action_for
from stanch.core.plans.verify import detect_drift, expected_after, is_applied, preconditions_hold

__all__ = [
    "ACTIONS",
    "ANNOTATIONS_TO_SKIP",
    "CANARY_LABEL",
    "CORDONED_BY",
    "RESTARTED_AT",
    "Action",
    "ActionPlan",
    "AnySnapshot",
    "MutatingEffect",
    "PlanError",
    "Snapshot",
    "action_for",
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
    "preconditions_hold",
    "read_snapshot",
    "reads",
    "revert_effects",
    "rollback_annotations",
    "starts_pods",
    "take_snapshot",
    "unified_diff",
    "unlock_patch",
]
