"""The Autoscaler action under policy: the HPA bounds it sets are replica counts, bounded by the
rule's minReplicas and maxReplicas like a scale; a rule for another action allows nothing."""

from __future__ import annotations

from stanch.core.models import PolicyDecisionKind
from stanch.core.policy import TargetFacts, evaluate

from .policy_builders import NOW as POLICY_NOW
from .policy_builders import policy, request, rule

RESTORE = {"maxReplicas": 10, "targetUtilization": [{"resource": "cpu", "averageUtilization": 50}]}


def test_the_policy_bounds_the_replica_counts_it_may_set() -> None:
    facts = TargetFacts(labels={"app": "web"}, replicas=3)
    allowed = policy(actions=[rule("Autoscaler", maxReplicas=10, minReplicas=2)])
    ok = evaluate(request({"autoscaler": RESTORE}), [allowed], [], facts, POLICY_NOW)
    assert ok.decision is PolicyDecisionKind.ALLOW
    too_many = evaluate(request({"autoscaler": {"maxReplicas": 50}}), [allowed], [], facts, POLICY_NOW)
    assert too_many.decision is PolicyDecisionKind.DENY
    assert "autoscaler maxReplicas 50 exceeds maxReplicas 10" in too_many.reasons[0]
    too_few = evaluate(request({"autoscaler": {"minReplicas": 1}}), [allowed], [], facts, POLICY_NOW)
    assert "autoscaler minReplicas 1 is below minReplicas 2" in too_few.reasons[0]
    forbidden = policy(actions=[rule("Scale")])
    assert (
        evaluate(request({"autoscaler": RESTORE}), [forbidden], [], facts, POLICY_NOW).decision
        is PolicyDecisionKind.DENY
    )
