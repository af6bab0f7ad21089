"""What a mitigation may introduce: a canary's image, env and args, a toggle's ConfigMap, key and value.

Default deny: a rule that lists nothing allows nothing. The decision names the rule and the limit
(``actions[Canary].limits.canaryImages``) so the reader knows which line of the policy to change.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stanch.core.models import ActionRule, MitigationSpec, PolicyDecisionKind
from stanch.core.policy import TargetFacts, evaluate, limit_violations

from .policy_builders import NOW, policy, request, rule

ALLOW, DENY = PolicyDecisionKind.ALLOW, PolicyDecisionKind.DENY
FACTS = TargetFacts(labels={"app": "checkout"}, replicas=4)
DIGEST = "sha256:" + "a" * 64
TOGGLE = {"configToggle": {"configMap": "checkout-flags", "key": "new_checkout", "value": "off"}}


def decide(action: dict[str, Any], **limits: Any) -> tuple[PolicyDecisionKind, str, str]:
    kind = "ConfigToggle" if "configToggle" in action else next(iter(action)).capitalize()
    d = evaluate(request(action), [policy(actions=[rule(kind, **limits)])], [], FACTS, NOW)
    return d.decision, d.rule or "", d.reasons[0]


# --- canary -------------------------------------------------------------------------------------


def test_a_canary_rule_without_images_allows_no_image() -> None:
    decision, rule_, why = decide({"canary": {"image": "registry.example.com/shop/checkout:1.2"}})
    assert (decision, rule_) == (DENY, "actions[Canary].limits.canaryImages")
    assert "limits.canaryImages is empty" in why
    assert "registry.example.com/shop/checkout:1.2" in why


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.example.com/shop/checkout:1.2", True),
        ("registry.example.com/shop/team/checkout:1.2", True),  # * crosses /
        ("registry.example.com.evil.io/shop/checkout:1.2", False),
        ("evil.io/registry.example.com/shop/checkout:1.2", False),
        ("checkout:1.2", False),  # no normalisation: a short name is another registry
        ("registry.example.com/other/checkout:1.2", False),
    ],
)
def test_images_match_the_registry_glob(image: str, allowed: bool) -> None:
    decision, rule_, why = decide({"canary": {"image": image}}, canaryImages=["registry.example.com/shop/*"])
    assert (decision is ALLOW) == allowed, why
    if not allowed:
        assert rule_ == "actions[Canary].limits.canaryImages"
        assert "matches none of limits.canaryImages (registry.example.com/shop/*)" in why


def test_digest_pinning() -> None:
    limits = {"canaryImages": ["registry.example.com/*"], "canaryRequireDigest": True}
    decision, rule_, why = decide({"canary": {"image": "registry.example.com/checkout:1.2"}}, **limits)
    assert (decision, rule_) == (DENY, "actions[Canary].limits.canaryRequireDigest")
    assert "not pinned by digest" in why
    pinned = f"registry.example.com/checkout@{DIGEST}"
    assert decide({"canary": {"image": pinned}}, **limits)[0] is ALLOW
    assert decide({"canary": {"image": f"registry.example.com/checkout:1.2@{DIGEST}"}}, **limits)[0] is ALLOW


def test_env_and_args_do_not_change_unless_allowed() -> None:
    images = ["registry.example.com/*"]
    env = {"canary": {"image": "registry.example.com/c:2", "env": [{"name": "FEATURE_X", "value": "1"}]}}
    decision, rule_, why = decide(env, canaryImages=images)
    assert (decision, rule_) == (DENY, "actions[Canary].limits.canaryEnv")
    assert "env FEATURE_X not allowed: limits.canaryEnv is empty" in why
    assert decide(env, canaryImages=images, canaryEnv=["FEATURE_*"])[0] is ALLOW
    other = {"canary": {"env": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]}}
    decision, rule_, why = decide(other, canaryEnv=["FEATURE_*"])
    assert (decision, rule_) == (DENY, "actions[Canary].limits.canaryEnv")
    assert "env LD_PRELOAD not allowed: limits.canaryEnv (FEATURE_*)" in why

    args = {"canary": {"args": ["--debug"]}}
    decision, rule_, _ = decide(args, canaryImages=images)
    assert (decision, rule_) == (DENY, "actions[Canary].limits.canaryArgs")
    assert decide(args, canaryArgs=True)[0] is ALLOW


def test_an_env_only_canary_needs_no_image_allowance() -> None:
    assert decide({"canary": {"env": [{"name": "FEATURE_X", "value": "0"}]}}, canaryEnv=["*"])[0] is ALLOW


def test_the_smallest_allowance_wins_across_policies() -> None:
    team = policy(actions=[rule("Canary", canaryImages=["registry.example.com/shop/*"])])
    cluster = policy("defaults", None, cluster=True, actions=[rule("Canary", canaryImages=["*"])])
    req = request({"canary": {"image": "docker.io/attacker/miner:latest"}})
    d = evaluate(req, [team, cluster], [], FACTS, NOW)
    assert (d.decision, d.policy, d.rule) == (
        DENY,
        "MitigationPolicy/payments/default",
        "actions[Canary].limits.canaryImages",
    )


# --- config toggle ------------------------------------------------------------------------------


def test_a_toggle_rule_without_config_maps_allows_none() -> None:
    decision, rule_, why = decide(TOGGLE)
    assert (decision, rule_) == (DENY, "actions[ConfigToggle].limits.configMaps")
    assert "key new_checkout of ConfigMap checkout-flags is not allowed: limits.configMaps is empty" in why


@pytest.mark.parametrize(
    ("allowance", "allowed", "message"),
    [
        ({"name": "checkout-flags", "keys": ["new_checkout"]}, True, ""),
        ({"name": "checkout-*", "keys": ["new_*"]}, True, ""),
        ({"name": "checkout-flags", "keys": ["*"], "values": ["on", "off"]}, True, ""),
        ({"name": "db-config", "keys": ["*"]}, False, "ConfigMap checkout-flags is not in limits.configMaps"),
        ({"name": "checkout-flags", "keys": ["rate_*"]}, False, "(keys: rate_*)"),
        (
            {"name": "checkout-flags", "keys": ["*"], "values": ["on"]},
            False,
            "is not one of limits.configMaps values (on)",
        ),
    ],
)
def test_toggles_match_config_map_key_and_value(
    allowance: dict[str, Any], allowed: bool, message: str
) -> None:
    decision, rule_, why = decide(TOGGLE, configMaps=[allowance])
    assert (decision is ALLOW) == allowed, why
    if not allowed:
        assert rule_ == "actions[ConfigToggle].limits.configMaps"
        assert message in why


def test_a_refused_value_is_not_echoed() -> None:
    secretish = {"configToggle": {"configMap": "checkout-flags", "key": "k", "value": "s3cr3t-value"}}
    _, _, why = decide(secretish, configMaps=[{"name": "checkout-flags", "keys": ["k"], "values": ["on"]}])
    assert "s3cr3t-value" not in why


# --- the policy says what it allows ---------------------------------------------------------------


def test_allowed_actions_that_allow_nothing_are_contradictions() -> None:
    loaded = policy(actions=[rule("Canary"), rule("ConfigToggle", "Manual"), rule("Rollback")])
    problems = {(p.field, p.reason) for p in loaded.problems}
    assert ("spec.actions[0].limits.canaryImages", "ContradictoryLimits") in problems
    assert ("spec.actions[1].limits.configMaps", "ContradictoryLimits") in problems
    forbidden = policy(actions=[rule("Canary", "Forbidden"), rule("ConfigToggle", "Forbidden")])
    assert forbidden.problems == ()


def test_schema_refuses_patterns_with_other_wildcards() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ActionRule.model_validate({"action": "Canary", "tier": "Auto", "limits": {"canaryImages": ["a?b"]}})
    with pytest.raises(ValidationError):
        ActionRule.model_validate(
            {"action": "ConfigToggle", "tier": "Auto", "limits": {"configMaps": [{"name": "x", "keys": []}]}}
        )


# --- property: nothing outside the allowance gets through ---------------------------------------

_segment = st.text(alphabet="abcdefghij-.", min_size=1, max_size=8).filter(lambda s: s[0].isalpha())


@given(image=st.lists(_segment, min_size=1, max_size=4).map("/".join), tag=_segment)
def test_property_an_image_is_allowed_only_under_an_allowed_prefix(image: str, tag: str) -> None:
    ref = f"{image}:{tag}"
    spec = MitigationSpec.model_validate({"target": {"name": "c"}, "canary": {"image": ref}})
    allowed = ActionRule.model_validate(
        {"action": "Canary", "tier": "Auto", "limits": {"canaryImages": ["registry.example.com/*"]}}
    )
    violations = limit_violations(allowed, spec, FACTS)
    assert bool(violations) != ref.startswith("registry.example.com/")
    empty = ActionRule.model_validate({"action": "Canary", "tier": "Auto"})
    assert [v.field for v in limit_violations(empty, spec, FACTS)] == ["canaryImages"]
