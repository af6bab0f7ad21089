"""Semantic checks of a policy: what the schema and CEL cannot see.

Each problem names the field so the ``Valid`` condition tells the author exactly what to fix in Git.
An invalid policy is still read (its restrictions apply); only its allowances are ignored, see
:mod:`stanch.core.policy.evaluation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.core.conditions import set_condition
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, TemplateError, placeholders_of
from stanch.core.models.actions import ActionKind
from stanch.core.models.guard import GuardError, GuardLayer, ResolvedGuard
from stanch.core.models.policy import ApprovalTier, MitigationPolicySpec
from stanch.core.policy.windows import overlap, stamp, zone_of

VALID = "Valid"


@dataclass(frozen=True)
class Problem:
    """One reason a policy is invalid: the field (``spec.signals[0].query``), a CamelCase reason and
    a sentence."""

    field: str
    reason: str
    message: str

    def describe(self) -> str:
        return f"{self.field}: {self.message}"


def semantic_problems(spec: MitigationPolicySpec, *, cluster_scoped: bool, now: datetime) -> list[Problem]:
    return [
        *_selector_problems(spec, cluster_scoped),
        *_signal_problems(spec),
        *_guard_problems(spec),
        *_freeze_problems(spec, now),
        *_contradictions(spec),
    ]


def _selector_problems(spec: MitigationPolicySpec, cluster_scoped: bool) -> list[Problem]:
    if cluster_scoped or not spec.selector.namespaces:
        return []
    # Its author meant to narrow the policy to other namespaces; applying it to its own would grant
    # allowances nobody asked for.
    return [
        Problem(
            "spec.selector.namespaces",
            "NamespacesInNamespacedPolicy",
            "a MitigationPolicy only applies to its own namespace; use a ClusterMitigationPolicy"
            " to select namespaces",
        )
    ]


def _signal_problems(spec: MitigationPolicySpec) -> list[Problem]:
    problems: list[Problem] = []
    for i, template in enumerate(spec.signals):
        try:
            placeholders_of(template.name, template.query)
        except TemplateError as exc:
            reason = "UnknownPlaceholder" if "unknown placeholder" in exc.problem else "InvalidSignalTemplate"
            problems.append(Problem(f"spec.signals[{i}].query", reason, exc.problem))
    known = {t.name for t in spec.signals} | set(DEFAULT_SIGNAL_TEMPLATES)
    for i, ref in enumerate(spec.guard_defaults.signals):
        if ref.name not in known:
            problems.append(
                Problem(
                    f"spec.guardDefaults.signals[{i}].name",
                    "UnknownSignal",
                    f"signal {ref.name!r} is neither in spec.signals nor a built-in template",
                )
            )
    criteria = spec.guard_defaults.success_criteria
    if criteria is not None and criteria.signal not in known:
        problems.append(
            Problem(
                "spec.guardDefaults.successCriteria.signal",
                "UnknownSignal",
                f"signal {criteria.signal!r} is neither in spec.signals nor a built-in template",
            )
        )
    return problems


GUARD_DEFAULTS = "spec.guardDefaults"


def _guard_problems(spec: MitigationPolicySpec) -> list[Problem]:
    """``guardDefaults`` over the built-in defaults must make a valid guard. Each field can be in
    range while the merge is not (``interval: 10m`` alone against the built-in 5m ``bakeTime``), and
    then every Mitigation the policy allowed that does not set the field itself would end Failed
    (``InvalidGuard``). Refusing the policy's grants instead says so once, where the fault is. The
    rule is the merge's own (``ResolvedGuard.resolve``), so the two cannot disagree."""
    try:
        ResolvedGuard.resolve(GuardLayer(GUARD_DEFAULTS, spec.guard_defaults))
    except GuardError as err:
        return [
            Problem(
                f"{GUARD_DEFAULTS}.{err.problem.field}",
                "InvalidGuardDefaults",
                f"{err.problem.message} (as it is, a Mitigation that does not set these fields in its"
                " own spec.guard could never run under this policy)",
            )
        ]
    return []


def _freeze_problems(spec: MitigationPolicySpec, now: datetime) -> list[Problem]:
    problems: list[Problem] = []
    usable = []
    for i, window in enumerate(spec.freeze_windows):
        if window.schedule is not None and zone_of(window.schedule) is None:
            problems.append(
                Problem(
                    f"spec.freezeWindows[{i}].schedule.timeZone",
                    "UnknownTimeZone",
                    f"{window.schedule.time_zone!r} is not an IANA time zone (e.g. Europe/Berlin);"
                    " until fixed the window counts as active in every UTC offset",
                )
            )
        else:
            usable.append((i, window))
    for n, (i, a) in enumerate(usable):
        for j, b in usable[n + 1 :]:
            both = overlap(a, b, now)
            if both is not None:
                problems.append(
                    Problem(
                        f"spec.freezeWindows[{j}]",
                        "OverlappingFreezeWindows",
                        f"{b.name!r} overlaps {a.name!r} (spec.freezeWindows[{i}]) from {stamp(both[0])}"
                        " to "
                        f"{stamp(both[1])}; merge them so it is clear which allowActions apply",
                    )
                )
    return problems


def _contradictions(spec: MitigationPolicySpec) -> list[Problem]:
    problems: list[Problem] = []
    tiers: dict[ActionKind, ApprovalTier] = {rule.action: rule.tier for rule in spec.actions}
    index = {rule.action: i for i, rule in enumerate(spec.actions)}
    for i, rule in enumerate(spec.actions):
        allowed = rule.tier is not ApprovalTier.FORBIDDEN
        if rule.action is ActionKind.EVACUATE and allowed and rule.limits.evacuate_nodes is None:
            problems.append(
                Problem(
                    f"spec.actions[{i}].limits.evacuateNodes",
                    "ContradictoryLimits",
                    f"Evacuate is {rule.tier.value} but evacuateNodes is unset, so no node may be"
                    " evacuated; list the nodes or make it Forbidden",
                )
            )
        limits = rule.limits
        # The same rule as for Evacuate: an allowed action whose limits allow nothing is a policy
        # that says one thing and does another, so its author hears about it here, not at 3 a.m.
        if (
            rule.action is ActionKind.CANARY
            and allowed
            and not (limits.canary_images or limits.canary_env or limits.canary_args)
        ):
            problems.append(
                Problem(
                    f"spec.actions[{i}].limits.canaryImages",
                    "ContradictoryLimits",
                    f"Canary is {rule.tier.value} but canaryImages and canaryEnv are empty and canaryArgs"
                    " is false, so no canary is allowed; list the images (and env names) a canary may"
                    " run, or make it Forbidden",
                )
            )
        if rule.action is ActionKind.CONFIG_TOGGLE and allowed and not limits.config_maps:
            problems.append(
                Problem(
                    f"spec.actions[{i}].limits.configMaps",
                    "ContradictoryLimits",
                    f"ConfigToggle is {rule.tier.value} but configMaps is empty, so no ConfigMap may be"
                    " toggled; list the ConfigMaps and keys, or make it Forbidden",
                )
            )
        if (
            limits.max_replicas is not None
            and limits.min_replicas is not None
            and limits.min_replicas > limits.max_replicas
        ):
            problems.append(
                Problem(
                    f"spec.actions[{i}].limits",
                    "ContradictoryLimits",
                    f"minReplicas {limits.min_replicas} exceeds maxReplicas {limits.max_replicas}",
                )
            )
    for i, auto in enumerate(spec.auto_mitigation):
        tier = tiers.get(auto.action)
        field = f"spec.autoMitigation[{i}].action"
        # rollbackForbiddenReason is not a contradiction here: it is meant to be set for a while on
        # top of a normal policy (after a schema migration) and evaluation already denies rollback.
        if tier is ApprovalTier.FORBIDDEN:
            problems.append(
                Problem(
                    field,
                    "AutoMitigationForbidden",
                    f"auto-mitigation creates {auto.action.value}, which spec.actions[{index[auto.action]}]"
                    " forbids",
                )
            )
        elif tier is None:
            problems.append(
                Problem(
                    field,
                    "AutoMitigationNotAllowed",
                    f"auto-mitigation creates {auto.action.value}, which spec.actions does not allow,"
                    " so every Mitigation it creates would be denied",
                )
            )
    for i, window in enumerate(spec.freeze_windows):
        for action in window.allow_actions:
            if tiers.get(action) is ApprovalTier.FORBIDDEN:
                problems.append(
                    Problem(
                        f"spec.freezeWindows[{i}].allowActions",
                        "ContradictoryFreezeWindow",
                        f"{action.value} is allowed during {window.name!r} but Forbidden in spec.actions",
                    )
                )
    return problems


def validity_conditions(
    conditions: Sequence[Mapping[str, Any]] | None,
    problems: Sequence[Problem],
    *,
    generation: int | None,
    summary: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """The ``Valid`` condition: True with what is in force, or False with the first problem's reason
    and every problem with its field."""
    if problems:
        details = "; ".join(p.describe() for p in problems)
        return set_condition(
            conditions,
            type_=VALID,
            status="False",
            reason=problems[0].reason,
            message=f"allowances ignored, restrictions still apply; {len(problems)} problem(s): {details}",
            observed_generation=generation,
            now=now,
        )
    return set_condition(
        conditions,
        type_=VALID,
        status="True",
        reason="Valid",
        message=summary,
        observed_generation=generation,
        now=now,
    )
