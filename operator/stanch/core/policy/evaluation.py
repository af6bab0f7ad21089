"""Policy evaluation: may this Mitigation act, wait for approval, or not at all? (design invariant 4)

Every matching policy votes; the strictest vote wins (Deny > RequireApproval > Allow) and the
decision names the policy and rule behind it, with the numbers. Nothing is allowed unless a valid
policy grants it (default deny), so limits compose as "the smallest wins" without any merging.

An invalid policy never widens what is allowed: its grants (Auto, Manual, freeze-window exceptions)
are ignored, while its restrictions (Forbidden, limits, freeze windows, rollbackForbiddenReason,
rate limits, cooldowns, GitOps approval) still count. Evaluation re-validates every policy itself,
so this holds even before the validation handler has written the policy's status.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from stanch.core.models.actions import ActionKind
from stanch.core.models.common import format_duration, parse_duration
from stanch.core.models.mitigation import (
    DRY_RUN_RULE,
    AutoSyncRequest,
    MitigationSpec,
    PolicyDecision,
    PolicyDecisionKind,
)
from stanch.core.models.policy import ActionLimits, ActionRule, ApprovalTier
from stanch.core.policy.approval import approval_requirements
from stanch.core.policy.facts import GitOpsOwner, GitOpsTool, TargetFacts
from stanch.core.policy.history import PastMitigation, parse_time
from stanch.core.policy.loading import LoadedPolicy
from stanch.core.policy.selection import node_allowed, selects
from stanch.core.policy.windows import active_until, describe, stamp
from stanch.core.scope import target_scope_problem

CREATED_BY_ANNOTATION = "stanch.dev/created-by"
"""``policy:<namespace>/<name>#autoMitigation[<i>]`` on Mitigations Stanch created itself."""
RATE_WINDOW = timedelta(hours=1)
SCOPE_RULE = "target.namespace"
"""The ``rule`` of a denial because ``spec.target.namespace`` names another namespace."""
_STRICTNESS = {
    PolicyDecisionKind.ALLOW: 0,
    PolicyDecisionKind.REQUIRE_APPROVAL: 1,
    PolicyDecisionKind.DENY: 2,
}
_CREATOR = re.compile(r"^policy:(?:(?P<ns>[^/#]+)/)?(?P<name>[^/#]+)#autoMitigation\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class MitigationRequest:
    """The Mitigation being decided on."""

    name: str
    namespace: str
    spec: MitigationSpec
    created_at: datetime | None = None
    created_by: str | None = None
    """The ``stanch.dev/created-by`` annotation, if any."""

    @property
    def target_namespace(self) -> str:
        """Always the Mitigation's own namespace (design invariant 11): policies, limits, rate limits
        and the one-at-a-time check are all judged there. A spec naming another namespace is denied
        by :func:`evaluate` before any of them is asked."""
        return self.namespace

    @property
    def scope_problem(self) -> str | None:
        return target_scope_problem("Mitigation", self.namespace, self.spec.target)

    @property
    def target_name(self) -> str:
        return self.spec.target.name

    @property
    def target_display(self) -> str:
        return f"{self.spec.target.kind.value}/{self.target_namespace}/{self.target_name}"


def request_from(obj: Mapping[str, Any]) -> MitigationRequest:
    """A request from a Mitigation's JSON; raises pydantic's ValidationError on an invalid spec."""
    meta = obj.get("metadata") or {}
    return MitigationRequest(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        spec=MitigationSpec.model_validate(obj.get("spec") or {}),
        created_at=parse_time(meta.get("creationTimestamp")),
        created_by=(meta.get("annotations") or {}).get(CREATED_BY_ANNOTATION),
    )


@dataclass(frozen=True)
class Vote:
    """One policy's (or invariant's) answer. Only a ``grants`` vote can allow anything."""

    decision: PolicyDecisionKind
    policy: LoadedPolicy | None
    rule: str
    reason: str
    grants: bool = False


def matching_policies(
    policies: Sequence[LoadedPolicy], namespace: str, name: str, facts: TargetFacts
) -> list[LoadedPolicy]:
    """Policies that speak for the target: namespaced first, then cluster-wide, each by name."""
    found = [
        p
        for p in policies
        if selects(
            p.spec.selector,
            cluster_scoped=p.cluster_scoped,
            policy_namespace=p.namespace,
            namespace=namespace,
            name=name,
            labels=facts.labels,
        )
    ]
    return sorted(found, key=lambda p: (p.cluster_scoped, p.namespace or "", p.name))


def evaluate(
    request: MitigationRequest,
    policies: Sequence[LoadedPolicy],
    history: Sequence[PastMitigation],
    facts: TargetFacts,
    now: datetime,
) -> PolicyDecision:
    """The recorded decision for ``request``. Dry runs are always allowed and say what the real
    request would have got."""
    if request.scope_problem is not None:
        # Before the dry-run answer too: even a dry run would read the other namespace's workload.
        return PolicyDecision(
            decision=PolicyDecisionKind.DENY,
            rule=SCOPE_RULE,
            reasons=[f"{request.spec.action.value} denied: {request.scope_problem}"],
            decided_at=now,
        )
    matching = matching_policies(policies, request.target_namespace, request.target_name, facts)
    votes = [*_invariant_votes(request, history), *_creator_votes(request, policies)]
    for policy in matching:
        votes.extend(_policy_votes(policy, request, history, facts, now))
    decision = _combine(request, votes, matching)
    owner = facts.gitops
    gitops = owner.tool.value if owner is not None else None
    if request.spec.dry_run:
        return PolicyDecision(
            decision=PolicyDecisionKind.ALLOW,
            rule=DRY_RUN_RULE,
            reasons=[
                "dry run: always allowed, the target is not changed",
                f"without dryRun: {decision.decision.value}"
                + (f" by {decision.policy} {decision.rule}" if decision.policy else ""),
                *decision.reasons,
            ],
            decided_at=now,
            gitops_managed=gitops,
        )
    decision = decision.model_copy(update={"decided_at": now, "gitops_managed": gitops})
    if decision.decision is PolicyDecisionKind.REQUIRE_APPROVAL:
        decision = decision.model_copy(update={"approval": approval_requirements(matching)})
    return _with_auto_sync(decision, matching, owner)


def _with_auto_sync(
    decision: PolicyDecision, matching: Sequence[LoadedPolicy], owner: GitOpsOwner | None
) -> PolicyDecision:
    """Ask for the GitOps controller's self-heal to be suspended when a valid matching policy says so.
    Only a valid policy can ask: suspending touches the GitOps controller, which widens what Stanch
    does, and a broken policy never widens anything."""
    if owner is None or decision.decision is PolicyDecisionKind.DENY:
        return decision
    asking = next((p for p in matching if p.valid and p.spec.gitops.suspend_auto_sync), None)
    if asking is None:
        return decision
    request = AutoSyncRequest(tool=owner.tool.value, app=owner.app[:1024], policy=asking.ref)
    if owner.tool is GitOpsTool.ARGO_CD:
        request = request.model_copy(
            update={"application": argo_application(owner.app, asking.spec.gitops.argo_cd_namespace)}
        )
    why = (
        f"{owner.describe()} self-heal is suspended while the Mitigation runs and restored when it ends"
        f" ({asking.short} gitops.suspendAutoSync)"
    )
    return decision.model_copy(
        update={"suspend_auto_sync": request, "reasons": _unique([*decision.reasons, why])}
    )


def argo_application(app: str, default_namespace: str) -> str:
    """``<namespace>/<name>`` of the Application a tracking id names: Argo CD writes
    ``<namespace>_<name>`` for Applications outside its control-plane namespace, else the bare name."""
    namespace, sep, name = app.partition("_")
    return f"{namespace}/{name}" if sep and namespace and name else f"{default_namespace}/{app}"


def application_manages(application: Mapping[str, Any], namespace: str, name: str) -> str | None:
    """Why the Argo CD ``application`` is not shown to manage the Deployment ``namespace/name``; None
    when its ``status.resources`` (written by Argo CD's controller) lists exactly that Deployment.

    The Application is found from the target's tracking annotation or labels, which anyone who may
    edit the Deployment can write: trusted alone, they would let a tenant switch off the self-heal of
    another team's Application (one in Argo CD's own namespace, say). The Application's own record of
    what it manages is the check."""
    listed = ((application.get("status") or {}).get("resources")) or []
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, Mapping):
            continue
        if (entry.get("group"), entry.get("kind"), entry.get("namespace"), entry.get("name")) == (
            "apps",
            "Deployment",
            namespace,
            name,
        ):
            return None
    meta = application.get("metadata") or {}
    app = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return (
        f"Application {app} does not list Deployment {namespace}/{name} in its status.resources, so"
        " the target's tracking annotation or label does not prove it manages the target; its self-heal"
        " is left alone (fix the target's Argo CD tracking, or suspend the sync by hand)"
    )


def with_application(
    decision: PolicyDecision, application: Mapping[str, Any] | None, namespace: str, name: str
) -> PolicyDecision:
    """Record what the Argo CD Application says right now (``selfHeal``, whether it has annotations,
    whether it manages the Deployment ``namespace/name``), so the mitigation machine can plan the
    suspension from the recorded decision alone."""
    request = decision.suspend_auto_sync
    if request is None or request.application is None:
        return decision
    automated = ((application or {}).get("spec") or {}).get("syncPolicy") or {}
    automated = automated.get("automated") if isinstance(automated, Mapping) else None
    self_heal = automated.get("selfHeal") if isinstance(automated, Mapping) else None
    update: dict[str, Any] = {
        "self_heal": None if application is None else self_heal is True,
        "has_annotations": None
        if application is None
        else (application.get("metadata") or {}).get("annotations") is not None,
        "not_managing": None if application is None else application_manages(application, namespace, name),
    }
    return decision.model_copy(update={"suspend_auto_sync": request.model_copy(update=update)})


def _combine(request: MitigationRequest, votes: list[Vote], matching: list[LoadedPolicy]) -> PolicyDecision:
    action = request.spec.action.value
    granted = any(v.grants for v in votes)
    strictest = max(votes, key=lambda v: _STRICTNESS[v.decision], default=None)
    if strictest is None or (not granted and strictest.decision is not PolicyDecisionKind.DENY):
        if matching:
            names = ", ".join(p.short for p in matching)
            why = f"{action} denied: no valid policy allows it ({names} match; invalid ones grant nothing)"
        else:
            why = (
                f"{action} denied: no MitigationPolicy or ClusterMitigationPolicy selects"
                f" {request.target_display}"
            )
        reasons = [why, *(v.reason for v in votes)]
        return PolicyDecision(decision=PolicyDecisionKind.DENY, rule="defaultDeny", reasons=_unique(reasons))
    # Deciding vote first, then the other objections, then what allowed it.
    ordered = sorted(votes, key=lambda v: -_STRICTNESS[v.decision])
    ordered.remove(strictest)
    return PolicyDecision(
        decision=strictest.decision,
        policy=strictest.policy.ref if strictest.policy else None,
        rule=strictest.rule,
        reasons=_unique([strictest.reason, *(v.reason for v in ordered)]),
    )


def _unique(reasons: list[str]) -> list[str]:
    return [r[:1024] for r in dict.fromkeys(reasons)][:10]


def _invariant_votes(request: MitigationRequest, history: Sequence[PastMitigation]) -> list[Vote]:
    """Design invariant 6: one active mitigation per target. The earlier one keeps the target."""
    if request.spec.dry_run:
        return []
    mine = (request.created_at, request.name)
    for other in history:
        if other.name == request.name and other.namespace == request.namespace:
            continue
        if not (other.active and other.on_target(request.target_namespace, request.target_name)):
            continue
        theirs = (other.created_at, other.name)
        earlier = (
            mine[0] is None
            or (theirs[0] is not None and theirs[0] < mine[0])
            or (theirs[0] == mine[0] and theirs[1] < mine[1])
        )
        if earlier:
            return [
                Vote(
                    PolicyDecisionKind.DENY,
                    None,
                    "oneAtATime",
                    f"{request.spec.action.value} denied: {request.target_display} already has an active"
                    f" Mitigation {other.display()}",
                )
            ]
    return []


def _creator_votes(request: MitigationRequest, policies: Sequence[LoadedPolicy]) -> list[Vote]:
    """A Mitigation created by an auto-mitigation rule of tier Manual waits for approval. Forging the
    annotation can only make a request stricter, never looser."""
    if not request.created_by:
        return []
    match = _CREATOR.match(request.created_by)
    if match is None:
        return []
    ns, name, index = match.group("ns"), match.group("name"), int(match.group("index"))
    policy = next(
        (p for p in policies if p.name == name and (p.namespace == ns if ns else p.cluster_scoped)),
        None,
    )
    rule = f"autoMitigation[{index}]"
    if policy is None or index >= len(policy.spec.auto_mitigation):
        return [
            Vote(
                PolicyDecisionKind.REQUIRE_APPROVAL,
                policy,
                rule,
                f"created by {request.created_by}, which no longer exists: approve it by hand",
            )
        ]
    auto = policy.spec.auto_mitigation[index]
    if auto.tier == "Manual":
        return [
            Vote(
                PolicyDecisionKind.REQUIRE_APPROVAL,
                policy,
                rule,
                f"created by {policy.short} {rule} with tier Manual: waits for approval",
            )
        ]
    return []


def _policy_votes(
    policy: LoadedPolicy,
    request: MitigationRequest,
    history: Sequence[PastMitigation],
    facts: TargetFacts,
    now: datetime,
) -> list[Vote]:
    spec = policy.spec
    action = request.spec.action
    who = policy.short
    votes: list[Vote] = []

    def deny(rule: str, reason: str) -> None:
        votes.append(Vote(PolicyDecisionKind.DENY, policy, rule, reason))

    for window in spec.freeze_windows:
        until = active_until(window, now)
        excepted = policy.valid and action in window.allow_actions
        if until is not None and not excepted:
            why = f": {window.reason}" if window.reason else ""
            deny(
                f"freezeWindows[{window.name}]",
                f"{action.value} denied by {who}: freeze window {describe(window)} is active until"
                f" {stamp(until)}{why}",
            )
    for label in policy.unreadable_windows:
        deny(
            f"freezeWindows[{label}]", f"{action.value} denied by {who}: freeze window {label} is unreadable"
        )

    if action is ActionKind.ROLLBACK and spec.rollback_forbidden_reason is not None:
        deny(
            "rollbackForbiddenReason",
            f"rollback denied by {who}: {spec.rollback_forbidden_reason}; freeze the rollout (Pause) or"
            " roll forward instead",
        )

    rule_index = next((i for i, r in enumerate(spec.actions) if r.action is action), None)
    if rule_index is None:
        if policy.valid:
            deny("actions", f"{action.value} denied by {who}: not listed in its actions")
    else:
        rule = spec.actions[rule_index]
        name = f"actions[{action.value}]"
        if rule.tier is ApprovalTier.FORBIDDEN:
            why = f": {rule.reason}" if rule.reason else ""
            deny(name, f"{action.value} forbidden by {who} {name}{why}")
        else:
            violations = limit_violations(rule, request.spec, facts)
            for problem in violations:
                deny(
                    f"{name}.limits.{problem.field}",
                    f"{action.value} denied by {who} {name}: {problem.message}",
                )
            if not violations:
                votes.append(_tier_vote(policy, rule, name))

    votes.extend(_rate_votes(policy, request, history, now))

    owner = facts.gitops
    if owner is not None and spec.gitops.require_approval_for_managed:
        votes.append(
            Vote(
                PolicyDecisionKind.REQUIRE_APPROVAL,
                policy,
                "gitops.requireApprovalForManaged",
                f"{request.target_display} is managed by {owner.describe()}: its sync may revert or"
                f" fight the change, so {who} requires approval",
            )
        )
    return votes


def _tier_vote(policy: LoadedPolicy, rule: ActionRule, name: str) -> Vote:
    why = f" ({rule.reason})" if rule.reason else ""
    if rule.tier is ApprovalTier.MANUAL:
        return Vote(
            PolicyDecisionKind.REQUIRE_APPROVAL,
            policy,
            name,
            f"{rule.action.value} needs approval under {policy.short} {name}{why}"
            + ("" if policy.valid else " (policy invalid: cannot grant)"),
            grants=policy.valid,
        )
    if policy.valid:
        return Vote(
            PolicyDecisionKind.ALLOW,
            policy,
            name,
            f"{rule.action.value} allowed by {policy.short} {name}{why}",
            True,
        )
    return Vote(
        PolicyDecisionKind.ALLOW,
        policy,
        name,
        f"{rule.action.value} would be allowed by {policy.short} {name}, but the policy is invalid",
    )


@dataclass(frozen=True)
class LimitViolation:
    """One limit a request exceeds: the limit's wire name (``maxReplicas``, ``canaryImages``) and why,
    with the numbers or names."""

    field: str
    message: str


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def limit_violations(rule: ActionRule, spec: MitigationSpec, facts: TargetFacts) -> list[LimitViolation]:
    """Each limit the request exceeds, with the numbers."""
    limits: ActionLimits = rule.limits
    out: list[LimitViolation] = []

    def add(field: str, message: str) -> None:
        out.append(LimitViolation(field, message))

    if spec.scale is not None:
        current = facts.replicas
        replicas = spec.scale.replicas
        factor = spec.scale.factor
        if factor is not None:
            if limits.max_scale_factor is not None and factor > limits.max_scale_factor:
                add("maxScaleFactor", f"factor {factor:g} exceeds maxScaleFactor {limits.max_scale_factor:g}")
            replicas = math.ceil(current * factor) if current is not None else None
        elif limits.max_scale_factor is not None and replicas is not None:
            if current is None:
                add("maxScaleFactor", "current replica count unknown, cannot check maxScaleFactor")
            elif current == 0:
                # From zero every count is an "infinite" factor; bringing a workload back from zero
                # is the recovery, not a runaway scale-up, so maxReplicas alone bounds it (below).
                pass
            elif replicas / current > limits.max_scale_factor:
                add(
                    "maxScaleFactor",
                    f"{current} → {replicas} replicas is a factor of {replicas / current:.2g},"
                    f" exceeds maxScaleFactor {limits.max_scale_factor:g}",
                )
        if replicas is None and (limits.max_replicas is not None or limits.min_replicas is not None):
            field = "maxReplicas" if limits.max_replicas is not None else "minReplicas"
            add(field, "current replica count unknown, cannot check the replica limits")
        elif replicas is not None:
            if limits.max_replicas is not None and replicas > limits.max_replicas:
                add("maxReplicas", f"{replicas} replicas exceeds maxReplicas {limits.max_replicas}")
            if limits.min_replicas is not None and replicas < limits.min_replicas:
                add("minReplicas", f"{replicas} replicas is below minReplicas {limits.min_replicas}")
    if spec.autoscaler is not None:
        # The HPA's bounds are the replica counts it may run: the same limits bound them.
        bounds = (
            ("minReplicas", spec.autoscaler.min_replicas),
            ("maxReplicas", spec.autoscaler.max_replicas),
        )
        for field, value in bounds:
            if value is None:
                continue
            if limits.max_replicas is not None and value > limits.max_replicas:
                add("maxReplicas", f"autoscaler {field} {value} exceeds maxReplicas {limits.max_replicas}")
            if limits.min_replicas is not None and value < limits.min_replicas:
                add("minReplicas", f"autoscaler {field} {value} is below minReplicas {limits.min_replicas}")
    if spec.canary is not None:
        out.extend(_canary_violations(limits, spec))
    if spec.config_toggle is not None:
        out.extend(_config_violations(limits, spec))
    if spec.evacuate is not None:
        if limits.evacuate_nodes is None:
            add("evacuateNodes", "no node may be evacuated (limits.evacuateNodes is unset)")
        else:
            problem = node_allowed(limits.evacuate_nodes, spec.evacuate.node, facts.node_labels)
            if problem:
                add("evacuateNodes", problem)
    return out


def _listed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:8]) + (f" and {len(values) - 8} more" if len(values) > 8 else "")
    return shown or "none"


def _canary_violations(limits: ActionLimits, spec: MitigationSpec) -> list[LimitViolation]:
    """A canary runs new code with the target's ServiceAccount, mounted Secrets and network identity:
    each thing it may change must be allowed by name. Nothing listed allows nothing."""
    canary = spec.canary
    assert canary is not None
    out: list[LimitViolation] = []
    cap = limits.max_canary_replicas
    if cap is not None and canary.replicas > cap:
        out.append(
            LimitViolation(
                "maxCanaryReplicas", f"{canary.replicas} canary replicas exceeds maxCanaryReplicas {cap}"
            )
        )
    if canary.image is not None:
        if not limits.canary_images:
            out.append(
                LimitViolation(
                    "canaryImages",
                    f"image {canary.image} is not allowed: limits.canaryImages is empty, so no canary image"
                    " is; list the images or registries (globs) the canary may run",
                )
            )
        elif not any(fnmatchcase(canary.image, pattern) for pattern in limits.canary_images):
            out.append(
                LimitViolation(
                    "canaryImages",
                    f"image {canary.image} matches none of limits.canaryImages"
                    f" ({_listed(limits.canary_images)})",
                )
            )
        if limits.canary_require_digest and not DIGEST.search(canary.image):
            out.append(
                LimitViolation(
                    "canaryRequireDigest",
                    f"image {canary.image} is not pinned by digest (limits.canaryRequireDigest): write it as"
                    " <repository>@sha256:<digest>",
                )
            )
    refused = [e.name for e in canary.env if not any(fnmatchcase(e.name, p) for p in limits.canary_env)]
    if refused:
        allowed = (
            f"limits.canaryEnv ({_listed(limits.canary_env)})"
            if limits.canary_env
            else ("limits.canaryEnv is empty, so no env change is")
        )
        out.append(LimitViolation("canaryEnv", f"env {_listed(refused)} not allowed: {allowed}"))
    if canary.args is not None and not limits.canary_args:
        out.append(
            LimitViolation(
                "canaryArgs", "replacing the container's args is not allowed (limits.canaryArgs is false)"
            )
        )
    return out


def _config_violations(limits: ActionLimits, spec: MitigationSpec) -> list[LimitViolation]:
    toggle = spec.config_toggle
    assert toggle is not None
    where = f"key {toggle.key} of ConfigMap {toggle.config_map}"
    if not limits.config_maps:
        return [
            LimitViolation(
                "configMaps",
                f"{where} is not allowed: limits.configMaps is empty, so no ConfigMap may be toggled; list"
                " the ConfigMaps and keys",
            )
        ]
    maps = [a for a in limits.config_maps if fnmatchcase(toggle.config_map, a.name)]
    if not maps:
        names = _listed([a.name for a in limits.config_maps])
        return [
            LimitViolation(
                "configMaps", f"ConfigMap {toggle.config_map} is not in limits.configMaps ({names})"
            )
        ]
    keyed = [a for a in maps if any(fnmatchcase(toggle.key, k) for k in a.keys)]
    if not keyed:
        keys = _listed([k for a in maps for k in a.keys])
        return [LimitViolation("configMaps", f"{where} is not allowed by limits.configMaps (keys: {keys})")]
    if any(a.values is None or toggle.value in a.values for a in keyed):
        return []
    # The value is not echoed: a toggle's value may be anything, and the decision is written to
    # status and Events; the allowed values are the policy author's and safe to show.
    values = _listed([v for a in keyed for v in a.values or ()])
    return [
        LimitViolation(
            "configMaps", f"the value for {where} is not one of limits.configMaps values ({values})"
        )
    ]


def _rate_votes(
    policy: LoadedPolicy, request: MitigationRequest, history: Sequence[PastMitigation], now: datetime
) -> list[Vote]:
    limits = policy.spec.rate_limits
    action = request.spec.action.value
    others = [
        m
        for m in history
        if not m.dry_run and not (m.name == request.name and m.namespace == request.namespace)
    ]
    votes: list[Vote] = []
    if limits.actions_per_hour is not None:
        since = now - RATE_WINDOW
        started = [
            m
            for m in others
            if m.target_namespace == request.target_namespace
            and m.started_at is not None
            and since < m.started_at <= now
        ]
        if len(started) >= limits.actions_per_hour:
            oldest = min(m.started_at for m in started if m.started_at is not None)
            votes.append(
                Vote(
                    PolicyDecisionKind.DENY,
                    policy,
                    "rateLimits.actionsPerHour",
                    f"{action} denied by {policy.short}: {len(started)} Mitigation(s) started in namespace"
                    f" {request.target_namespace} in the last hour, limit {limits.actions_per_hour}"
                    f" (next slot at {stamp(oldest + RATE_WINDOW)})",
                )
            )
    if limits.cooldown_per_target is not None:
        cooldown = parse_duration(limits.cooldown_per_target)
        ended = [
            m.ended_at
            for m in others
            if m.on_target(request.target_namespace, request.target_name)
            and m.started_at is not None
            and m.ended_at is not None
        ]
        last = max(ended, default=None)
        if last is not None and now - last < cooldown:
            votes.append(
                Vote(
                    PolicyDecisionKind.DENY,
                    policy,
                    "rateLimits.cooldownPerTarget",
                    f"{action} denied by {policy.short}: the last Mitigation of {request.target_display}"
                    " ended"
                    f" {format_duration(max(now - last, timedelta(0)))} ago, cooldown"
                    f" {limits.cooldown_per_target} (until {stamp(last + cooldown)})",
                )
            )
    return votes
