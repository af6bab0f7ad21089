"""Hypothesis rules: each a small pure function ``rule(ctx) -> Hypothesis | None``.

A rule encodes one correlation an on-call engineer knows ("errors right after a deploy", "only one
node"), lists the evidence for and against it, and names the first safe mitigation — or none when
nothing Stanch can do would help (a failing dependency, an expired certificate, a blip). Add a rule
by writing the function and listing it in :data:`RULES`; ranking and merging happen elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.rules.capacity import (
    resource_exhaustion,
    scaled_down,
    scheduling_capacity,
    traffic_surge,
)
from stanch.core.investigation.analysis.rules.config import config_change, key_change, key_flip, switched_off
from stanch.core.investigation.analysis.rules.dependencies import dependency_failure
from stanch.core.investigation.analysis.rules.deploys import (
    new_revision_failing,
    new_revision_worse,
    recent_deploy,
)
from stanch.core.investigation.analysis.rules.logs import credential_expiry
from stanch.core.investigation.analysis.rules.nodes import node_problem
from stanch.core.investigation.analysis.rules.outliers import pod_outlier
from stanch.core.investigation.analysis.rules.transient import transient_blip
from stanch.core.models import Hypothesis

Rule = Callable[[RuleContext], Hypothesis | None]

RULES: tuple[Rule, ...] = (
    recent_deploy,
    new_revision_worse,
    new_revision_failing,
    config_change,
    resource_exhaustion,
    scheduling_capacity,
    scaled_down,
    traffic_surge,
    node_problem,
    pod_outlier,
    dependency_failure,
    credential_expiry,
    transient_blip,
)

__all__ = [
    "RULES",
    "Rule",
    "config_change",
    "credential_expiry",
    "dependency_failure",
    "key_change",
    "key_flip",
    "new_revision_failing",
    "new_revision_worse",
    "node_problem",
    "pod_outlier",
    "recent_deploy",
    "resource_exhaustion",
    "scaled_down",
    "scheduling_capacity",
    "switched_off",
    "traffic_surge",
    "transient_blip",
]
