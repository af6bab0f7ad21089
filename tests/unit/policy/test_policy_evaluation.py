"""Policy evaluation: default deny, strictest wins, limits, rate limits, cooldowns, freeze windows,
GitOps, and invalid policies never widening what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from stanch.core.models import PolicyDecision, PolicyDecisionKind
from stanch.core.policy import LoadedPolicy, MitigationRequest, PastMitigation, TargetFacts, evaluate

from .policy_builders import NOW, past, policy, request, rule

ALLOW, DENY, APPROVAL = PolicyDecisionKind.ALLOW, PolicyDecisionKind.DENY, PolicyDecisionKind.REQUIRE_APPROVAL
FACTS = TargetFacts(labels={"app": "checkout"}, replicas=4)


def decide(
    req: MitigationRequest | None = None,
    policies: Sequence[LoadedPolicy] = (),
    history: Sequence[PastMitigation] = (),
    facts: TargetFacts = FACTS,
    now: datetime = NOW,
) -> PolicyDecision:
    return evaluate(req or request(), policies, history, facts, now)


# --- defaults -----------------------------------------------------------------------------------


def test_no_policy_denies() -> None:
    d = decide()
    assert d.decision is DENY
    assert d.policy is None
    assert d.rule == "defaultDeny"
    assert (
        "no MitigationPolicy or ClusterMitigationPolicy selects Deployment/payments/checkout" in d.reasons[0]
    )
    assert d.decided_at == NOW


def test_policy_of_another_namespace_does_not_apply() -> None:
    assert decide(policies=[policy(namespace="shop", actions=[rule("Rollback")])]).decision is DENY


def test_unlisted_action_is_denied_by_the_policy() -> None:
    d = decide(request({"restart": {}}), [policy(actions=[rule("Rollback")])])
    assert (d.decision, d.policy, d.rule) == (DENY, "MitigationPolicy/payments/default", "actions")


def test_dry_run_is_always_allowed_and_says_what_it_would_have_been() -> None:
    d = decide(request(dryRun=True))
    assert (d.decision, d.rule) == (ALLOW, "dryRun")
    assert d.reasons[1] == "without dryRun: Deny"
    forbidden = decide(request(dryRun=True), [policy(actions=[rule("Rollback", "Forbidden")])])
    assert forbidden.decision is ALLOW
    assert "without dryRun: Deny by MitigationPolicy/payments/default actions[Rollback]" in forbidden.reasons


def test_tiers() -> None:
    assert decide(policies=[policy(actions=[rule("Rollback", "Auto")])]).decision is ALLOW
    assert decide(policies=[policy(actions=[rule("Rollback", "Manual")])]).decision is APPROVAL
    d = decide(policies=[policy(actions=[{**rule("Rollback", "Forbidden"), "reason": "ask the DBAs"}])])
    assert (d.decision, d.rule) == (DENY, "actions[Rollback]")
    assert d.reasons[0] == "Rollback forbidden by payments/default actions[Rollback]: ask the DBAs"


@pytest.mark.parametrize(
    ("selector", "applies"),
    [
        ({}, True),
        ({"workloadNames": ["checkout"]}, True),
        ({"workloadNames": ["check*"]}, True),
        ({"workloadNames": ["cart", "search-*"]}, False),
        ({"matchLabels": {"app": "checkout"}}, True),
        ({"matchLabels": {"app": "checkout", "tier": "gold"}}, False),
    ],
)
def test_selection_by_name_and_labels(selector: dict[str, object], applies: bool) -> None:
    d = decide(policies=[policy(selector=selector, actions=[rule("Rollback")])])
    assert (d.decision is ALLOW) is applies


def test_cluster_policy_selects_namespaces() -> None:
    p = policy("defaults", cluster=True, selector={"namespaces": ["payments"]}, actions=[rule("Rollback")])
    assert decide(policies=[p]).decision is ALLOW
    assert decide(request(namespace="shop"), [p]).decision is DENY


# --- strictest wins -----------------------------------------------------------------------------


def test_strictest_wins_and_names_the_decider() -> None:
    cluster = policy("defaults", cluster=True, actions=[rule("Rollback", "Auto"), rule("Scale", "Auto")])
    team = policy(actions=[rule("Rollback", "Manual"), rule("Scale", "Auto", maxReplicas=20)])
    d = decide(policies=[cluster, team])
    assert (d.decision, d.policy, d.rule) == (
        APPROVAL,
        "MitigationPolicy/payments/default",
        "actions[Rollback]",
    )
    assert "Rollback allowed by cluster/defaults actions[Rollback]" in d.reasons

    d = decide(request({"scale": {"replicas": 40}}), [cluster, team])
    assert (d.decision, d.rule) == (DENY, "actions[Scale].limits.maxReplicas")
    assert (
        d.reasons[0] == "Scale denied by payments/default actions[Scale]: 40 replicas exceeds maxReplicas 20"
    )


def test_a_policy_that_does_not_list_the_action_vetoes_it() -> None:
    cluster = policy("defaults", cluster=True, actions=[rule("Rollback"), rule("Restart")])
    team = policy(actions=[rule("Rollback")])
    assert decide(request({"restart": {}}), [cluster, team]).decision is DENY


def test_smallest_limits_win() -> None:
    cluster = policy("defaults", cluster=True, actions=[rule("Scale", maxReplicas=10)])
    team = policy(actions=[rule("Scale", maxReplicas=20)])
    assert decide(request({"scale": {"replicas": 10}}), [cluster, team]).decision is ALLOW
    d = decide(request({"scale": {"replicas": 15}}), [cluster, team])
    assert (d.decision, d.policy) == (DENY, "ClusterMitigationPolicy/defaults")


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "limits", "facts", "message"),
    [
        ({"scale": {"replicas": 1}}, {"minReplicas": 2}, FACTS, "1 replicas is below minReplicas 2"),
        ({"scale": {"factor": 3}}, {"maxScaleFactor": 2}, FACTS, "factor 3 exceeds maxScaleFactor 2"),
        ({"scale": {"factor": 2}}, {"maxReplicas": 6}, FACTS, "8 replicas exceeds maxReplicas 6"),
        ({"scale": {"replicas": 12}}, {"maxScaleFactor": 2}, FACTS, "4 → 12 replicas is a factor of 3"),
        (
            {"scale": {"factor": 2}},
            {"maxReplicas": 6},
            TargetFacts(exists=False),
            "current replica count unknown",
        ),
        ({"canary": {"image": "a:2", "replicas": 3}}, {"maxCanaryReplicas": 1}, FACTS, "3 canary replicas"),
        ({"evacuate": {"node": "n1"}}, {}, FACTS, "no node may be evacuated"),
        (
            {"evacuate": {"node": "n1"}},
            {"evacuateNodes": {"names": ["pool-b-*"]}},
            FACTS,
            "not in evacuateNodes",
        ),
        (
            {"evacuate": {"node": "pool-b-1"}},
            {"evacuateNodes": {"matchLabels": {"pool": "b"}}},
            TargetFacts(node_labels={"pool": "a"}),
            "does not carry evacuateNodes.matchLabels pool=b",
        ),
    ],
)
def test_limits_deny_with_numbers(
    action: dict[str, object], limits: dict[str, object], facts: TargetFacts, message: str
) -> None:
    kind = next(iter(action)).capitalize()
    d = decide(
        request(action), [policy(actions=[{"action": kind, "tier": "Auto", "limits": limits}])], facts=facts
    )
    assert d.decision is DENY
    assert message in d.reasons[0]


def test_within_limits_is_allowed() -> None:
    p = policy(
        actions=[
            rule("Scale", maxReplicas=8, minReplicas=2, maxScaleFactor=2),
            rule("Evacuate", evacuateNodes={"names": ["pool-b-*"], "matchLabels": {"pool": "b"}}),
        ]
    )
    assert decide(request({"scale": {"factor": 2}}), [p]).decision is ALLOW
    facts = TargetFacts(node_labels={"pool": "b"})
    assert decide(request({"evacuate": {"node": "pool-b-7"}}), [p], facts=facts).decision is ALLOW


# --- rate limits and cooldowns ------------------------------------------------------------------


def test_actions_per_hour_per_namespace() -> None:
    p = policy(actions=[rule("Rollback")], rateLimits={"actionsPerHour": 2})
    one = past("a", target="cart", started="2025-03-07T11:10:00Z")
    two = past("b", target="search", started="2025-03-07T11:20:00Z")
    d = decide(policies=[p], history=[one, two])
    assert (d.decision, d.rule) == (DENY, "rateLimits.actionsPerHour")
    assert "2 Mitigation(s) started in namespace payments in the last hour, limit 2" in d.reasons[0]
    assert "next slot at 2025-03-07T12:10Z" in d.reasons[0]
    # An hour later the first no longer counts; other namespaces, dry runs and Rejected never do.
    assert decide(policies=[p], history=[one, two], now=NOW + timedelta(minutes=11)).decision is ALLOW
    others = [
        past("c", namespace="shop", started="2025-03-07T11:50:00Z"),
        past("d", dry_run=True, started="2025-03-07T11:50:00Z"),
        past("e", phase="Rejected", started=None, ended="2025-03-07T11:50:00Z"),
        one,
    ]
    assert decide(policies=[p], history=others).decision is ALLOW


def test_past_mitigations_count_as_the_policy_decided_them_not_as_their_spec_says_now() -> None:
    # dryRun edited after the decision (the CRD refuses it now; an older CRD did not): the machine
    # runs what was decided (as_decided), so the history does too.
    p = policy(actions=[rule("Rollback")])
    real_edited_to_dry = past(
        "other", phase="Baking", ended=None, dry_run=True, decided_rule="actions[Rollback]"
    )
    assert not real_edited_to_dry.dry_run
    assert real_edited_to_dry.active
    assert decide(policies=[p], history=[real_edited_to_dry]).rule == "oneAtATime"
    dry_edited_to_real = past("other", phase="Baking", ended=None, dry_run=False, decided_rule="dryRun")
    assert dry_edited_to_real.dry_run
    assert not dry_edited_to_real.active
    assert decide(policies=[p], history=[dry_edited_to_real]).decision is ALLOW
    # Before any decision the spec is all there is.
    assert past("new", phase=None, started=None, ended=None, dry_run=True).dry_run


def test_the_mitigation_itself_does_not_count_against_the_rate_limit() -> None:
    p = policy(actions=[rule("Rollback")], rateLimits={"actionsPerHour": 1})
    me = past("m1", phase="Baking", started="2025-03-07T11:59:00Z", ended=None)
    assert decide(policies=[p], history=[me]).decision is ALLOW


def test_cooldown_per_target() -> None:
    p = policy(actions=[rule("Rollback")], rateLimits={"cooldownPerTarget": "30m"})
    done = past("prev", phase="Reverted", ended="2025-03-07T11:40:00Z")
    d = decide(policies=[p], history=[done])
    assert (d.decision, d.rule) == (DENY, "rateLimits.cooldownPerTarget")
    assert "ended 20m ago, cooldown 30m (until 2025-03-07T12:10Z)" in d.reasons[0]
    assert decide(policies=[p], history=[done], now=NOW + timedelta(minutes=10)).decision is ALLOW
    other_target = past("prev", target="cart", phase="Reverted", ended="2025-03-07T11:40:00Z")
    assert decide(policies=[p], history=[other_target]).decision is ALLOW


def test_one_active_mitigation_per_target() -> None:
    p = policy(actions=[rule("Rollback")])
    running = past("other", phase="Baking", created="2025-03-07T11:50:00Z", ended=None)
    d = decide(policies=[p], history=[running])
    assert (d.decision, d.rule, d.policy) == (DENY, "oneAtATime", None)
    # The earlier of two concurrent Mitigations keeps the target; the later one is denied.
    later = past("zz", phase=None, created="2025-03-07T12:00:00Z", started=None, ended=None)
    assert decide(policies=[p], history=[later]).decision is ALLOW


# --- freeze windows -----------------------------------------------------------------------------


def window(name: str = "release", **fields: object) -> dict[str, object]:
    return {"name": name, **fields}


def test_absolute_freeze_window_denies_and_allow_actions_exempt() -> None:
    w = window(
        start="2025-03-07T00:00:00Z", end="2025-03-08T00:00:00Z", reason="release day", allowActions=["Scale"]
    )
    p = policy(actions=[rule("Rollback"), rule("Scale")], freezeWindows=[w])
    d = decide(policies=[p])
    assert (d.decision, d.rule) == (DENY, "freezeWindows[release]")
    assert "active until 2025-03-08T00:00Z: release day" in d.reasons[0]
    assert decide(request({"scale": {"replicas": 5}}), [p]).decision is ALLOW
    assert decide(policies=[p], now=NOW + timedelta(days=1)).decision is ALLOW


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        ("2025-03-07T21:59:00+00:00", False),  # Friday, before the window
        ("2025-03-07T22:00:00+00:00", True),  # Friday 22:00 start
        ("2025-03-08T01:30:00+00:00", True),  # Saturday, across midnight
        ("2025-03-08T02:00:00+00:00", False),  # 4h later: over
        ("2025-03-14T23:59:00+00:00", True),  # next Friday
    ],
)
def test_weekly_window_across_midnight(now: str, frozen: bool) -> None:
    schedule = {"days": ["Fri"], "startTime": "22:00", "duration": "4h"}
    p = policy(actions=[rule("Rollback")], freezeWindows=[window(schedule=schedule)])
    assert (decide(policies=[p], now=datetime.fromisoformat(now)).decision is DENY) is frozen


def test_weekly_window_follows_its_time_zone_and_dst() -> None:
    # Berlin 09:00 is 08:00 UTC in winter, 07:00 UTC in summer.
    schedule = {"days": ["Mon"], "startTime": "09:00", "duration": "1h", "timeZone": "Europe/Berlin"}
    p = policy(actions=[rule("Rollback")], freezeWindows=[window(schedule=schedule)])
    assert decide(policies=[p], now=datetime.fromisoformat("2025-01-06T08:30:00+00:00")).decision is DENY
    assert decide(policies=[p], now=datetime.fromisoformat("2025-07-07T07:30:00+00:00")).decision is DENY
    assert decide(policies=[p], now=datetime.fromisoformat("2025-07-07T08:30:00+00:00")).decision is ALLOW


# --- rollback forbidden, GitOps, auto-created -----------------------------------------------------


def test_rollback_forbidden_reason() -> None:
    p = policy(actions=[rule("Rollback"), rule("Pause")], rollbackForbiddenReason="v42 migrated the schema")
    d = decide(policies=[p])
    assert (d.decision, d.rule) == (DENY, "rollbackForbiddenReason")
    assert "v42 migrated the schema; freeze the rollout (Pause) or roll forward" in d.reasons[0]
    assert decide(request({"pause": {}}), [p]).decision is ALLOW


@pytest.mark.parametrize(
    ("labels", "annotations", "managers", "tool"),
    [
        ({}, {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:payments/checkout"}, (), "ArgoCD"),
        ({"argocd.argoproj.io/instance": "shop"}, {}, (), "ArgoCD"),
        ({"app.kubernetes.io/instance": "shop"}, {}, ("argocd-controller",), "ArgoCD"),
        (
            {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux"},
            {},
            (),
            "Flux",
        ),
        ({"helm.toolkit.fluxcd.io/name": "checkout"}, {}, (), "Flux"),
        ({"app.kubernetes.io/instance": "shop"}, {}, ("helm",), None),
    ],
)
def test_gitops_managed_targets_need_approval(
    labels: dict[str, str], annotations: dict[str, str], managers: tuple[str, ...], tool: str | None
) -> None:
    facts = TargetFacts(labels=labels, annotations=annotations, field_managers=managers, replicas=2)
    d = decide(policies=[policy(actions=[rule("Rollback")])], facts=facts)
    assert d.gitops_managed == tool
    assert d.decision is (APPROVAL if tool else ALLOW)
    if tool:
        assert d.rule == "gitops.requireApprovalForManaged"
        relaxed = policy(actions=[rule("Rollback")], gitops={"requireApprovalForManaged": False})
        assert decide(policies=[relaxed], facts=facts).decision is ALLOW


def test_auto_created_with_manual_tier_waits_for_approval() -> None:
    auto = {"category": "RecentDeploy", "action": "Rollback", "tier": "Manual"}
    p = policy(actions=[rule("Rollback")], autoMitigation=[auto])
    d = decide(request(created_by="policy:payments/default#autoMitigation[0]"), [p])
    assert (d.decision, d.rule) == (APPROVAL, "autoMitigation[0]")
    gone = decide(request(created_by="policy:payments/default#autoMitigation[5]"), [p])
    assert gone.decision is APPROVAL


# --- invalid policies never widen ---------------------------------------------------------------


def test_invalid_policy_grants_nothing() -> None:
    bad = policy(
        actions=[rule("Rollback"), rule("Scale", "Manual")],
        signals=[{"name": "errors", "query": 'rate(x{ns="{{namespaces}}"}[5m])', "kind": "ErrorRatio"}],
    )
    assert not bad.valid
    assert bad.problems[0].field == "spec.signals[0].query"
    assert bad.problems[0].reason == "UnknownPlaceholder"
    d = decide(policies=[bad])
    assert (d.decision, d.rule) == (DENY, "defaultDeny")
    assert "no valid policy allows it" in d.reasons[0]
    assert decide(request({"scale": {"replicas": 5}}), [bad]).decision is DENY


def test_invalid_policy_still_restricts() -> None:
    good = policy("defaults", cluster=True, actions=[rule("Rollback"), rule("Scale"), rule("Restart")])
    bad = policy(
        actions=[rule("Rollback", "Forbidden"), rule("Scale", maxReplicas=5), rule("Restart", "Manual")],
        autoMitigation=[{"category": "RecentDeploy", "action": "Rollback"}],  # invalid: Rollback is Forbidden
        freezeWindows=[
            window(
                start="2025-03-07T00:00:00Z",
                end="2025-03-08T00:00:00Z",
                allowActions=["Restart"],  # an exception: a grant, ignored
            )
        ],
    )
    assert [p.reason for p in bad.problems] == ["AutoMitigationForbidden"]
    assert decide(policies=[good]).decision is ALLOW
    assert decide(policies=[good, bad]).decision is DENY
    assert decide(request({"restart": {}}), [good, bad]).rule == "freezeWindows[release]"
    later = NOW + timedelta(days=2)
    assert decide(request({"scale": {"replicas": 9}}), [good, bad], now=later).rule == (
        "actions[Scale].limits.maxReplicas"
    )
    assert decide(request({"scale": {"replicas": 4}}), [good, bad], now=later).decision is ALLOW
    assert decide(request({"restart": {}}), [good, bad], now=later).decision is APPROVAL
    assert decide(request({"restart": {}}), [bad], now=later).decision is DENY


def test_unparseable_policy_keeps_its_restrictions() -> None:
    from stanch.core.policy import load_policy

    raw = {
        "kind": "MitigationPolicy",
        "metadata": {"name": "broken", "namespace": "payments"},
        "spec": {
            "selector": {"workloadNames": ["NOT A NAME"]},
            "actions": [rule("Rollback"), {"action": "Scale", "tier": "Auto", "limits": {"maxReplicas": -1}}],
            "freezeWindows": [{"name": "weird", "start": "not a time"}],
            "rollbackForbiddenReason": "schema migration",
        },
    }
    broken = load_policy(raw, now=NOW)
    assert not broken.valid
    assert broken.unreadable_windows == ("weird",)
    good = policy("defaults", cluster=True, actions=[rule("Rollback"), rule("Scale")])
    d = decide(request({"scale": {"replicas": 2}}), [good, broken])
    assert d.decision is DENY
    assert decide(policies=[broken]).decision is DENY
