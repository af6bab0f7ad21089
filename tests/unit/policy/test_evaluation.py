"""Policy limits on scale requests (beyond the main evaluation tests)."""

from __future__ import annotations


def test_scale_back_from_zero_is_bounded_by_max_replicas_not_the_factor() -> None:
    from stanch.core.models import ActionLimits, ActionRule, MitigationSpec
    from stanch.core.policy.evaluation import limit_violations
    from stanch.core.policy.facts import TargetFacts

    rule = ActionRule(action="Scale", tier="Auto", limits=ActionLimits(max_replicas=20, max_scale_factor=2))
    back = MitigationSpec.model_validate(
        {"target": {"kind": "Deployment", "name": "web"}, "scale": {"replicas": 3}}
    )
    huge = MitigationSpec.model_validate(
        {"target": {"kind": "Deployment", "name": "web"}, "scale": {"replicas": 40}}
    )
    facts = TargetFacts(replicas=0)
    assert limit_violations(rule, back, facts) == []
    assert [(v.field, v.message) for v in limit_violations(rule, huge, facts)] == [
        ("maxReplicas", "40 replicas exceeds maxReplicas 20")
    ]
