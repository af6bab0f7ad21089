"""Turn a policy object as the API server returns it into something evaluation can always use.

The schema and CEL rules reject malformed policies at admission, but a policy can still fail to
parse here (a CRD older than this operator, a rule only the Python twin enforces). Such a policy is
never dropped silently, because dropping it would drop its restrictions too: each part is read on its
own, unreadable restrictions are kept in their strictest form, and the policy is marked invalid so
its allowances are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from stanch.core.models.base import error_paths
from stanch.core.models.policy import (
    ActionRule,
    ApprovalTier,
    FreezeWindow,
    GitOpsSettings,
    MitigationPolicySpec,
    PolicySelector,
    RateLimits,
)
from stanch.core.policy.validation import Problem, semantic_problems

_M = TypeVar("_M", PolicySelector, ActionRule, FreezeWindow, RateLimits, GitOpsSettings)
PolicyKind = Literal["MitigationPolicy", "ClusterMitigationPolicy"]


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy ready for evaluation. ``unreadable_windows`` counts freeze windows that could not be
    read; each counts as active all the time."""

    kind: PolicyKind
    name: str
    namespace: str | None
    spec: MitigationPolicySpec
    problems: tuple[Problem, ...] = ()
    generation: int | None = None
    unreadable_windows: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def cluster_scoped(self) -> bool:
        return self.kind == "ClusterMitigationPolicy"

    @property
    def ref(self) -> str:
        """``MitigationPolicy/<namespace>/<name>`` or ``ClusterMitigationPolicy/<name>``."""
        return (
            f"{self.kind}/{self.name}" if self.cluster_scoped else f"{self.kind}/{self.namespace}/{self.name}"
        )

    @property
    def short(self) -> str:
        """``payments/default`` or ``cluster/defaults``, for sentences."""
        return f"cluster/{self.name}" if self.cluster_scoped else f"{self.namespace}/{self.name}"

    @property
    def actor_ref(self) -> str:
        """How an auto-created Mitigation names its creator: ``policy:<namespace>/<name>`` or
        ``policy:<name>`` for a cluster policy."""
        return f"policy:{self.name}" if self.cluster_scoped else f"policy:{self.namespace}/{self.name}"


def load_policy(obj: Mapping[str, Any], *, now: datetime) -> LoadedPolicy:
    kind: PolicyKind = (
        "ClusterMitigationPolicy" if obj.get("kind") == "ClusterMitigationPolicy" else "MitigationPolicy"
    )
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    namespace = None if kind == "ClusterMitigationPolicy" else meta.get("namespace")
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    raw = obj.get("spec") or {}
    try:
        spec = MitigationPolicySpec.model_validate(raw)
    except ValidationError as exc:
        spec, problems, unreadable = _salvage(raw, exc)
        return LoadedPolicy(kind, name, namespace, spec, tuple(problems), generation, tuple(unreadable))
    problems = semantic_problems(spec, cluster_scoped=kind == "ClusterMitigationPolicy", now=now)
    return LoadedPolicy(kind, name, namespace, spec, tuple(problems), generation)


def _salvage(
    raw: Mapping[str, Any], exc: ValidationError
) -> tuple[MitigationPolicySpec, list[Problem], list[str]]:
    problems = [
        Problem(f"spec.{path}" if path else "spec", "Unreadable", err["msg"])
        for path, err in zip(error_paths(exc), exc.errors(), strict=True)
    ]
    # An unreadable selector selects everything in scope: the restrictions then apply more widely,
    # never less.
    selector = _parse(PolicySelector, raw.get("selector", {})) or PolicySelector()
    rules: dict[str, ActionRule] = {}
    for item in raw.get("actions") or ():
        rule = _parse(ActionRule, item)
        if rule is None and isinstance(item, Mapping) and isinstance(item.get("action"), str):
            # We know the action but not its limits: forbid it rather than guess.
            rule = _parse(ActionRule, {"action": item["action"], "tier": ApprovalTier.FORBIDDEN.value})
        known = rules.get(rule.action.value) if rule is not None else None
        if rule is not None and (known is None or rule.tier is ApprovalTier.FORBIDDEN):
            rules[rule.action.value] = rule
    windows: list[FreezeWindow] = []
    unreadable: list[str] = []
    for i, item in enumerate(raw.get("freezeWindows") or ()):
        window = _parse(FreezeWindow, item)
        if window is None:
            label = item.get("name") if isinstance(item, Mapping) else None
            unreadable.append(str(label or f"freezeWindows[{i}]"))
        else:
            windows.append(window)
    reason = raw.get("rollbackForbiddenReason")
    spec = MitigationPolicySpec(
        selector=selector,
        actions=list(rules.values()),
        rate_limits=_parse(RateLimits, raw.get("rateLimits", {})) or RateLimits(),
        freeze_windows=windows,
        rollback_forbidden_reason=(str(reason)[:1024] or "rollback forbidden")
        if reason is not None
        else None,
        gitops=_parse(GitOpsSettings, raw.get("gitops", {})) or GitOpsSettings(),
    )
    return spec, problems, unreadable


def _parse(model: type[_M], value: Any) -> _M | None:
    try:
        return model.model_validate(value)
    except ValidationError:
        return None
