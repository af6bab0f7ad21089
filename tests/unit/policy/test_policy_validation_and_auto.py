"""Semantic validation of policies, escaping of label values into templates, automatic mitigation
from an Incident's top hypothesis, audit, and notification grouping."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stanch.core.investigation.signals import render
from stanch.core.models import GuardSpec, Incident, MitigationMode, MitigationPolicySpec, PolicyDecisionKind
from stanch.core.policy import TargetFacts, auto_mitigation, requested_by, validity_conditions
from stanch.core.policy.notifications import Limits, Outbox, flush, notice_for, offer, slack_payload
from stanch.core.policy.validation import semantic_problems

from .policy_builders import NOW, past, policy, rule

# --- validation ---------------------------------------------------------------------------------


def reasons(**spec: Any) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in policy(**spec).problems]


def test_a_clean_policy_is_valid() -> None:
    p = policy(
        actions=[rule("Rollback"), rule("Evacuate", "Manual", evacuateNodes={"names": ["pool-*"]})],
        signals=[
            {"name": "errors", "query": 'sum(rate(x{namespace="{{namespace}}"}[5m]))', "kind": "ErrorRatio"}
        ],
        guardDefaults={"signals": [{"name": "errors"}, {"name": "latency_p99"}]},
        autoMitigation=[{"category": "RecentDeploy", "action": "Rollback"}],
    )
    assert p.valid
    conditions = validity_conditions(None, p.problems, generation=1, summary="in force", now=NOW)
    assert conditions[0]["type"] == "Valid"
    assert conditions[0]["status"] == "True"


def test_semantic_problems_name_the_field() -> None:
    assert reasons(signals=[{"name": "e", "query": 'x{a="{{ workload }"}', "kind": "ErrorRatio"}]) == [
        ("spec.signals[0].query", "InvalidSignalTemplate")
    ]
    assert reasons(guardDefaults={"signals": [{"name": "nope"}]}) == [
        ("spec.guardDefaults.signals[0].name", "UnknownSignal")
    ]
    assert reasons(actions=[rule("Evacuate")]) == [
        ("spec.actions[0].limits.evacuateNodes", "ContradictoryLimits")
    ]
    assert reasons(
        actions=[rule("Scale", "Forbidden")], autoMitigation=[{"category": "Capacity", "action": "Scale"}]
    ) == [("spec.autoMitigation[0].action", "AutoMitigationForbidden")]
    assert reasons(autoMitigation=[{"category": "Capacity", "action": "Scale"}]) == [
        ("spec.autoMitigation[0].action", "AutoMitigationNotAllowed")
    ]
    assert reasons(selector={"namespaces": ["staging"]}) == [
        ("spec.selector.namespaces", "NamespacesInNamespacedPolicy")
    ]
    assert policy(cluster=True, selector={"namespaces": ["staging"]}).valid
    bad_zone = {
        "name": "w",
        "schedule": {"days": ["Mon"], "startTime": "09:00", "duration": "1h", "timeZone": "Mars/Olympus"},
    }
    assert reasons(freezeWindows=[bad_zone]) == [
        ("spec.freezeWindows[0].schedule.timeZone", "UnknownTimeZone")
    ]


def test_overlapping_freeze_windows() -> None:
    weekend = {"name": "weekend", "schedule": {"days": ["Fri"], "startTime": "18:00", "duration": "59h"}}
    monday = {"name": "monday", "schedule": {"days": ["Mon"], "startTime": "05:00", "duration": "2h"}}
    sunday = {"name": "sunday", "schedule": {"days": ["Sun"], "startTime": "23:00", "duration": "1h"}}
    assert reasons(freezeWindows=[weekend, monday]) == []
    assert reasons(freezeWindows=[weekend, sunday]) == [("spec.freezeWindows[1]", "OverlappingFreezeWindows")]
    release = {"name": "release", "start": "2025-03-10T05:30:00Z", "end": "2025-03-10T06:00:00Z"}
    assert reasons(freezeWindows=[monday, release]) == [("spec.freezeWindows[1]", "OverlappingFreezeWindows")]
    old = {"name": "old", "start": "2025-01-06T05:30:00Z", "end": "2025-01-06T06:00:00Z"}
    assert reasons(freezeWindows=[monday, old]) == [], "ended windows do not count"
    message = validity_conditions(
        None, policy(freezeWindows=[weekend, sunday]).problems, generation=3, summary="", now=NOW
    )
    assert message[0]["status"] == "False"
    assert message[0]["reason"] == "OverlappingFreezeWindows"
    assert "spec.freezeWindows[1]: 'sunday' overlaps 'weekend'" in message[0]["message"]
    assert message[0]["observedGeneration"] == 3


def test_guard_defaults_that_break_the_built_in_guard_make_the_policy_invalid() -> None:
    # Each field is in range; merged over the built-in 5m bake, a 10m interval is not.
    for cluster in (False, True):
        p = policy(cluster=cluster, actions=[rule("Rollback")], guardDefaults={"interval": "10m"})
        assert [(x.field, x.reason) for x in p.problems] == [
            ("spec.guardDefaults.bakeTime", "InvalidGuardDefaults")
        ]
        assert p.problems[0].message.startswith(
            "guard bakeTime 5m (built-in default) is shorter than interval 10m (spec.guardDefaults.interval):"
            " the bake must last at least one check; set spec.guardDefaults.bakeTime to 10m or more, or"
            " spec.guardDefaults.interval to 5m or less"
        )
        condition = validity_conditions(None, p.problems, generation=2, summary="", now=NOW)[0]
        assert (condition["status"], condition["reason"]) == ("False", "InvalidGuardDefaults")
        assert "spec.guardDefaults.bakeTime: guard bakeTime 5m" in condition["message"]


def test_guard_defaults_that_fix_the_merge_themselves_are_valid() -> None:
    assert reasons(guardDefaults={"interval": "10m", "bakeTime": "30m"}) == []
    assert reasons(guardDefaults={"interval": "5m"}) == []  # exactly one check: the bound holds
    assert reasons(guardDefaults={"baselineWindow": "6h", "settleTime": "0s", "bakeTime": "24h"}) == []


def test_guard_defaults_stored_out_of_range_name_the_field_and_the_range() -> None:
    # A policy stored before a bound existed (admission refuses it now) is read without validation.
    spec = MitigationPolicySpec.model_construct(
        guard_defaults=GuardSpec.model_construct(baseline_window="0s")
    )
    (problem,) = [
        p for p in semantic_problems(spec, cluster_scoped=True, now=NOW) if p.reason == "InvalidGuardDefaults"
    ]
    assert problem.field == "spec.guardDefaults.baselineWindow"
    assert (
        "guard baselineWindow 0s (spec.guardDefaults.baselineWindow) is not between 10s and 6h"
        in problem.message
    )
    assert "set spec.guardDefaults.baselineWindow to a duration from 10s to 6h" in problem.message


# --- template escaping ----------------------------------------------------------------------------

TEMPLATE = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",deployment="{{workload}}",code=~"5.."}[5m]))'
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')


def parse_selector(query: str) -> list[tuple[str, str, str]]:
    """The label matchers of the one selector in ``query``, string literals unescaped as PromQL does."""
    start = query.index("{") + 1
    matchers = []
    i = start
    while True:
        m = _MATCHER.match(query, i)
        assert m, f"no matcher at {query[i:]!r}"
        i = m.end()
        value = []
        while query[i] != '"':
            if query[i] == "\\":
                value.append({"n": "\n", "\\": "\\", '"': '"'}[query[i + 1]])
                i += 2
            else:
                assert query[i] != "\n", "a raw newline inside a string literal"
                value.append(query[i])
                i += 1
        matchers.append((m.group(1), m.group(2), "".join(value)))
        i += 1
        if query[i] == "}":
            assert query[i:] == "}[5m]))"
            return matchers
        assert query[i] == ","
        i += 1


@given(st.text(), st.text(alphabet=st.sampled_from("\"\\{}[]()=~!,.*+?|^$\n'`x-")))
def test_label_values_cannot_alter_the_query(namespace: str, workload: str) -> None:
    query = render("errors", TEMPLATE, {"namespace": namespace, "workload": workload})
    assert parse_selector(query) == [
        ("namespace", "=", namespace),
        ("deployment", "=", workload),
        ("code", "=~", "5.."),
    ]


# --- automatic mitigation -------------------------------------------------------------------------

AUTO_POLICY: dict[str, Any] = {
    "actions": [rule("Rollback"), rule("Scale", maxReplicas=10)],
    "autoMitigation": [
        {"category": "Capacity", "minConfidence": 60, "action": "Scale", "tier": "Auto"},
        {"category": "RecentDeploy", "minConfidence": 70, "action": "Rollback", "tier": "Auto"},
    ],
}


def incident(
    mode: str = "Auto", category: str = "RecentDeploy", confidence: int = 85, name: str = "checkout-5xx"
) -> Incident:
    return Incident.model_validate(
        {
            "metadata": {"name": name, "namespace": "payments", "uid": f"uid-{name}"},
            "spec": {"target": {"name": "checkout"}, "mitigation": {"mode": mode}},
            "status": {
                "hypotheses": [
                    {
                        "category": category,
                        "statement": "error spike 4m after revision 7",
                        "confidence": confidence,
                        "suggestedMitigation": {"target": {"name": "checkout"}, "rollback": {}},
                    }
                ]
            },
        }
    )


FACTS = TargetFacts(replicas=4)


def test_auto_mode_creates_an_owned_traceable_mitigation() -> None:
    out = auto_mitigation(incident(), [policy(**AUTO_POLICY)], [], FACTS, NOW)
    assert out.create
    assert out.mitigation is not None
    m = out.mitigation
    assert re.fullmatch(r"checkout-5xx-auto-rollback-[0-9a-f]{6}", m.name)
    assert m.created_by == "policy:payments/default#autoMitigation[1]"
    assert m.decision.decision is PolicyDecisionKind.ALLOW
    body = m.manifest("checkout-5xx", "uid-checkout-5xx")
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-checkout-5xx"
    assert body["metadata"]["labels"] == {
        "stanch.dev/incident": "checkout-5xx",
        "stanch.dev/created-by": "policy",
    }
    assert body["spec"]["incidentRef"] == {"name": "checkout-5xx"}
    assert body["spec"]["rollback"] == {}
    # The same plan gets the same name (a retried create is idempotent).
    again = auto_mitigation(incident(), [policy(**AUTO_POLICY)], [], FACTS, NOW)
    assert again.mitigation is not None
    assert again.mitigation.name == m.name


def test_suggest_mode_only_lists() -> None:
    out = auto_mitigation(incident(mode="Suggest"), [policy(**AUTO_POLICY)], [], FACTS, NOW)
    assert out.mitigation is not None
    assert not out.create
    assert out.mitigation.listing(suggested=True).suggested


def test_no_rule_low_confidence_or_invalid_policy_creates_nothing() -> None:
    assert (
        auto_mitigation(incident(confidence=69), [policy(**AUTO_POLICY)], [], FACTS, NOW).mitigation is None
    )
    assert (
        auto_mitigation(incident(category="Dependency"), [policy(**AUTO_POLICY)], [], FACTS, NOW).mitigation
        is None
    )
    invalid = policy(**AUTO_POLICY, selector={"namespaces": ["x"]})
    out = auto_mitigation(incident(), [invalid], [], FACTS, NOW)
    assert out.mitigation is None
    assert "no valid policy" in out.reason


def test_one_active_per_target_and_rate_limits() -> None:
    p = policy(**AUTO_POLICY)
    active = past("other-incident-auto-rollback-abc123", phase="Baking", ended=None)
    out = auto_mitigation(incident(), [p], [active], FACTS, NOW)
    assert out.mitigation is None
    assert "already has an active Mitigation" in out.reason
    limited = policy(**AUTO_POLICY, rateLimits={"actionsPerHour": 1})
    recent = past("x", target="cart", started="2025-03-07T11:50:00Z")
    out = auto_mitigation(incident(), [limited], [recent], FACTS, NOW)
    assert out.mitigation is None
    assert "rateLimits" not in out.reason
    assert "limit 1" in out.reason


def test_resolved_or_no_hypotheses() -> None:
    resolved = incident()
    resolved.spec.resolved = True
    assert auto_mitigation(resolved, [policy(**AUTO_POLICY)], [], FACTS, NOW).reason == "incident is resolved"
    empty = incident()
    assert empty.status is not None
    empty.status.hypotheses = []
    assert auto_mitigation(empty, [policy(**AUTO_POLICY)], [], FACTS, NOW).reason == "no hypotheses yet"
    assert MitigationMode.AUTO.value == "Auto"


# --- audit ------------------------------------------------------------------------------------------


def test_requested_by() -> None:
    ours = {
        "annotations": {"stanch.dev/created-by": "policy:payments/default#autoMitigation[1]"},
        "managedFields": [{"manager": "stanch"}],
    }
    assert requested_by(ours) == "policy:payments/default#autoMitigation[1]"
    forged = {**ours, "managedFields": [{"manager": "kubectl-create"}]}
    assert requested_by(forged) == "field manager kubectl-create"
    claimed = {
        "annotations": {"stanch.dev/requested-by": "alice"},
        "managedFields": [{"manager": "kubectl-create"}],
    }
    assert requested_by(claimed) == "alice (unverified annotation); field manager kubectl-create"
    assert requested_by({}) == "field manager unknown"
    with_kopf = {"managedFields": [{"manager": "kopf"}, {"manager": "kubectl-client-side-apply"}]}
    assert requested_by(with_kopf) == "field manager kubectl-client-side-apply"
    assert requested_by({**ours, "managedFields": [{"manager": "kopf"}, {"manager": "stanch"}]}).startswith(
        "policy:"
    )


# --- notifications ------------------------------------------------------------------------------


def mitigation(name: str, phase: str, at: str = "2025-03-07T11:59:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "payments", "creationTimestamp": "2025-03-07T11:00:00Z"},
        "status": {
            "phase": phase,
            "target": "Deployment/payments/checkout",
            "message": "error ratio 0.2 > 0.05 <@here>",
            "audit": [{"time": at, "toPhase": phase}],
        },
    }


def test_only_fresh_phases_that_need_a_human() -> None:
    assert notice_for(mitigation("a", "Baking"), NOW) is None
    assert notice_for(mitigation("a", "Reverted", at="2025-03-07T11:00:00Z"), NOW) is None
    notice = notice_for(mitigation("a", "Reverted"), NOW)
    assert notice is not None
    assert notice.key == "payments/a/Reverted"


def test_grouping_dedup_and_hourly_budget() -> None:
    limits = Limits(group_for=timedelta(seconds=30), max_per_hour=2, max_listed=3)
    box = Outbox()
    sent = []
    now = NOW
    for minute in range(10):
        now = NOW + timedelta(minutes=minute)
        for i in range(5):
            notice = notice_for(mitigation(f"m{minute}-{i}", "NeedsAttention", at=now.isoformat()), now)
            assert notice is not None
            box = offer(box, notice, now, limits)
            box = offer(box, notice, now, limits)  # duplicates are ignored
        box, batch = flush(box, now, limits)
        assert batch is None, "waits for neighbours first"
        box, batch = flush(box, now + timedelta(seconds=30), limits)
        if batch:
            sent.append(batch)
    assert len(sent) == 2, "two messages per hour, however bad the hour"
    assert [len(b.notices) for b in sent] == [3, 3]
    assert sent[0].omitted == 2
    box, batch = flush(box, NOW + timedelta(hours=1, minutes=1), limits)
    assert batch is not None
    assert batch.omitted == 40 - 3, "what waited is reported, as a count beyond max_listed"
    text = slack_payload(sent[0])["text"]
    assert "5 mitigation(s) need a human" in text
    assert "&lt;@here&gt;" in text
