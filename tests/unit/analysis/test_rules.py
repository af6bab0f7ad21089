"""Each hypothesis rule on its own: when it fires, what it says, what it suggests, what lowers it."""

from __future__ import annotations

from typing import Any

from stanch.core.investigation.analysis import RuleContext, build_context
from stanch.core.investigation.analysis.ranking import CONFIDENT, merge, rank
from stanch.core.investigation.analysis.rules import (
    RULES,
    config_change,
    credential_expiry,
    dependency_failure,
    key_flip,
    new_revision_failing,
    new_revision_worse,
    node_problem,
    recent_deploy,
    resource_exhaustion,
    scheduling_capacity,
    traffic_surge,
    transient_blip,
)
from stanch.core.models import (
    ConfigChange,
    EventGroup,
    Evidence,
    Hypothesis,
    HypothesisCategory,
    LogSignature,
    NodeEvidence,
    ObjectRef,
    PodHealth,
    ReasonCount,
)

from .scenario_builders import (
    NOW,
    ONSET,
    at,
    flat,
    group,
    metric,
    revision,
    scoped,
    spec,
    step,
    two_revisions,
)

ERRORS = metric("error_ratio", step(0.002, 0.15, sigma=0.002))


def ctx(**evidence: Any) -> RuleContext:
    evidence.setdefault("metrics", [ERRORS])
    return build_context(spec(), Evidence(**evidence), now=NOW, created_at=NOW)


def fired(h: Hypothesis | None) -> Hypothesis:
    assert h is not None
    return h


def _sig(signature: str, count: int = 100, *, revision: int | None = None, sample: str = "") -> LogSignature:
    return LogSignature(
        signature=signature,
        count=count,
        pods=3,
        first_seen=ONSET,
        revision=revision,
        sample=sample or signature,
    )


# --- deploys --------------------------------------------------------------------------------------


def test_recent_deploy_is_stronger_the_closer_it_is() -> None:
    close = fired(recent_deploy(ctx(rollouts=two_revisions(new_at_minutes=13.0))))
    far = fired(recent_deploy(ctx(rollouts=two_revisions(new_at_minutes=-10.0))))
    assert close.category is HypothesisCategory.RECENT_DEPLOY
    assert close.confidence > far.confidence
    assert "2m after revision 7: image api:1.4.2 → api:1.5.0" in close.supporting[0]


def test_a_deploy_after_the_onset_is_not_a_cause() -> None:
    h = fired(recent_deploy(ctx(rollouts=two_revisions(new_at_minutes=20.0))))
    assert h.confidence <= 10
    assert "cannot have caused it" in h.contradicting[0]
    assert h.suggested_mitigation is None


def test_a_deploy_outside_the_lookback_is_not_considered() -> None:
    assert recent_deploy(ctx(rollouts=two_revisions(new_at_minutes=-60.0))) is None


def test_recent_deploy_without_a_retained_predecessor_suggests_nothing() -> None:
    h = fired(recent_deploy(ctx(rollouts=[revision(7, 13.0, "api:1.5.0", current=True)])))
    assert h.suggested_mitigation is None
    assert any("nothing to roll back to" in c for c in h.contradicting)


def test_equal_per_revision_errors_contradict_the_deploy() -> None:
    plain = fired(recent_deploy(ctx(rollouts=two_revisions(13.0))))
    equal = fired(
        recent_deploy(
            ctx(
                rollouts=two_revisions(13.0),
                metrics=[
                    ERRORS,
                    scoped("error_ratio", "revision:7", 0.15),
                    scoped("error_ratio", "revision:6", 0.15),
                ],
            )
        )
    )
    assert equal.confidence <= plain.confidence - 30
    assert equal.confidence < CONFIDENT


def test_new_revision_worse_by_its_own_metrics() -> None:
    h = fired(
        new_revision_worse(
            ctx(
                rollouts=two_revisions(13.0),
                metrics=[
                    ERRORS,
                    scoped("error_ratio", "revision:7", 0.3),
                    scoped("error_ratio", "revision:6", 0.002),
                ],
            )
        )
    )
    assert h.confidence >= 80
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.rollback is not None
    assert h.suggested_mitigation.rollback.to_revision == 6


def test_new_revision_worse_by_logs_only_while_old_pods_still_run() -> None:
    logs = [_sig("panic: nil map", revision=7)]
    both = ctx(
        rollouts=two_revisions(13.0),
        log_signatures=logs,
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
    )
    only_new = ctx(
        rollouts=two_revisions(13.0),
        log_signatures=logs,
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
    )
    assert fired(new_revision_worse(both)).confidence >= 60
    assert new_revision_worse(only_new) is None  # every pod is new: the logs cannot single it out


def test_new_revision_failing_image_pull() -> None:
    h = fired(
        new_revision_failing(
            ctx(
                rollouts=two_revisions(13.0),
                pod_health=PodHealth(
                    total=4, ready=3, by_revision=[group("7", 1, 0, ImagePullBackOff=1), group("6", 3, 3)]
                ),
            )
        )
    )
    assert "cannot pull its image" in h.statement
    assert h.confidence >= 85


def test_new_revision_failing_is_doubted_when_old_pods_fail_too() -> None:
    h = fired(
        new_revision_failing(
            ctx(
                rollouts=two_revisions(13.0),
                pod_health=PodHealth(
                    total=4,
                    ready=0,
                    by_revision=[group("7", 1, 0, CrashLoopBackOff=1), group("6", 3, 0, CrashLoopBackOff=3)],
                ),
            )
        )
    )
    assert h.confidence < 60
    assert any("fail too" in c for c in h.contradicting)


# --- configuration --------------------------------------------------------------------------------


def _config(kind: str, summary: str, minutes: float = 13.0, referenced: bool = True) -> ConfigChange:
    return ConfigChange(
        object=ObjectRef(kind=kind, name="checkout-config", namespace="shop"),
        changed_at=at(minutes),
        summary=summary,
        referenced=referenced,
    )


def test_key_flip_parsing() -> None:
    assert key_flip(_config("ConfigMap", 'key FEATURE_X: "off" → "on"')) == ("FEATURE_X", "off", "on")
    assert key_flip(_config("ConfigMap", "data.limit: 10 -> 1000")) == ("limit", "10", "1000")
    assert (
        key_flip(_config("ConfigMap", "ConfigMap checkout-config (3 keys): data updated by kubectl")) is None
    )
    assert key_flip(_config("Secret", "key a: 1 → 2")) is None
    assert key_flip(_config("ConfigMap", "key a: 1 → 2; key b: 3 → 4")) is None


def test_config_change_without_a_known_old_value_suggests_no_automatic_undo() -> None:
    h = fired(
        config_change(ctx(config_changes=[_config("Service", "Service checkout: spec updated by kubectl")]))
    )
    assert h.category is HypothesisCategory.CONFIG_CHANGE
    assert h.suggested_mitigation is None
    assert any("revert Service/checkout-config where it was made" in c for c in h.contradicting)


def test_config_change_after_the_onset_is_ignored() -> None:
    assert config_change(ctx(config_changes=[_config("ConfigMap", "key a: 1 → 2", minutes=25)])) is None


def test_hpa_rescale_is_not_a_config_cause() -> None:
    hpa = _config(
        "HorizontalPodAutoscaler", "HPA checkout: 2..10 replicas, current 4, desired 4; last scaled"
    )
    assert config_change(ctx(config_changes=[hpa])) is None


# --- capacity -------------------------------------------------------------------------------------


def test_oom_with_a_limit_change_in_the_new_revision_rolls_back() -> None:
    rollouts = [
        revision(7, 13.0, "api:1.4.2", changes=["resources.limits.memory 512Mi → 256Mi"], current=True),
        revision(6, -600, "api:1.4.2", replicas=0),
    ]
    h = fired(
        resource_exhaustion(
            ctx(
                rollouts=rollouts,
                pod_health=PodHealth(total=3, ready=2, reasons=[ReasonCount(reason="OOMKilled", count=2)]),
            )
        )
    )
    assert h.category is HypothesisCategory.RESOURCE_EXHAUSTION
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.rollback is not None


def test_memory_at_limit_without_a_change_scales_out() -> None:
    h = fired(
        resource_exhaustion(
            ctx(
                rollouts=[revision(6, -600, "api:1.4.2", current=True)],
                metrics=[ERRORS, metric("memory_vs_limit", flat(0.97, sigma=0.005))],
            )
        )
    )
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.scale is not None


def test_steadily_growing_memory_is_a_leak_and_restarts() -> None:
    leak = [0.5 + 0.008 * i for i in range(60)]
    h = fired(resource_exhaustion(ctx(metrics=[ERRORS, metric("memory_vs_limit", leak)])))
    assert "leak" in h.statement
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.restart is not None


def test_no_pressure_no_resource_hypothesis() -> None:
    assert resource_exhaustion(ctx(metrics=[ERRORS, metric("memory_vs_limit", flat(0.4))])) is None


def test_unschedulable_pods_are_capacity_without_a_scale_suggestion() -> None:
    h = fired(
        scheduling_capacity(
            ctx(
                pod_health=PodHealth(
                    total=5, ready=3, reasons=[ReasonCount(reason="Unschedulable", count=2)]
                ),
                events_by_reason=[
                    EventGroup(
                        reason="FailedScheduling",
                        count=8,
                        sample_message="0/3 nodes available: insufficient cpu",
                    )
                ],
            )
        )
    )
    assert h.category is HypothesisCategory.CAPACITY
    assert h.confidence == 70
    assert h.suggested_mitigation is None


def test_traffic_surge_is_weaker_when_something_also_changed() -> None:
    surge = metric("throughput", step(100.0, 260.0, sigma=3.0))
    alone = fired(traffic_surge(ctx(metrics=[ERRORS, surge])))
    with_deploy = fired(traffic_surge(ctx(metrics=[ERRORS, surge], rollouts=two_revisions(13.0))))
    assert alone.confidence > with_deploy.confidence
    assert alone.suggested_mitigation is not None
    assert alone.suggested_mitigation.scale is not None


def test_flat_traffic_is_not_a_surge() -> None:
    assert traffic_surge(ctx(metrics=[ERRORS, metric("throughput", flat(100.0, sigma=3.0))])) is None


# --- nodes ----------------------------------------------------------------------------------------


def test_errors_on_one_node_suggest_evacuating_it() -> None:
    h = fired(
        node_problem(
            ctx(
                metrics=[
                    ERRORS,
                    scoped("error_ratio", "node:node-a", 0.4),
                    scoped("error_ratio", "node:node-b", 0.002),
                    scoped("error_ratio", "node:node-c", 0.003),
                ],
                nodes=[
                    NodeEvidence(name="node-a", ready=False, pods=2),
                    NodeEvidence(name="node-b", ready=True, pods=2),
                ],
            )
        )
    )
    assert h.category is HypothesisCategory.NODE_INFRASTRUCTURE
    assert h.confidence >= 80
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.evacuate is not None
    assert h.suggested_mitigation.evacuate.node == "node-a"


def test_errors_on_every_node_are_not_a_node_problem() -> None:
    assert (
        node_problem(
            ctx(
                metrics=[
                    ERRORS,
                    scoped("error_ratio", "node:node-a", 0.15),
                    scoped("error_ratio", "node:node-b", 0.16),
                ]
            )
        )
        is None
    )


# --- logs -----------------------------------------------------------------------------------------


def test_dependency_failure_names_the_dependency_and_suggests_nothing_destructive() -> None:
    h = fired(
        dependency_failure(
            ctx(
                log_signatures=[
                    _sig(
                        "dial tcp <ip>: connect: connection refused",
                        sample="dial tcp payments-db:5432: connect: connection refused",
                    )
                ]
            )
        )
    )
    assert h.category is HypothesisCategory.DEPENDENCY
    assert "payments-db:5432" in h.statement
    assert h.suggested_mitigation is None


def test_dependency_errors_from_only_the_new_revision_point_at_the_revision() -> None:
    logs = [_sig("upstream payments timeout", revision=7)]
    health = PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)])
    h = fired(dependency_failure(ctx(log_signatures=logs, pod_health=health, rollouts=two_revisions(13.0))))
    everyone = fired(
        dependency_failure(ctx(log_signatures=[_sig("upstream payments timeout")], pod_health=health))
    )
    assert h.confidence < everyone.confidence
    assert any("only revision 7" in c for c in h.contradicting)


def test_certificate_errors_are_credential_expiry() -> None:
    h = fired(
        credential_expiry(ctx(log_signatures=[_sig("x509: certificate has expired or is not yet valid")]))
    )
    assert h.category is HypothesisCategory.CREDENTIAL_EXPIRY
    assert "certificate" in h.statement
    assert h.suggested_mitigation is None


def test_unrelated_errors_fire_no_log_rule() -> None:
    c = ctx(log_signatures=[_sig("panic: index out of range")])
    assert dependency_failure(c) is None
    assert credential_expiry(c) is None


# --- transient ------------------------------------------------------------------------------------


def test_a_short_self_healed_blip_is_transient() -> None:
    blip = [0.002] * 30 + [0.2] * 6 + [0.002] * 24
    h = fired(
        transient_blip(ctx(metrics=[metric("error_ratio", blip)], pod_health=PodHealth(total=3, ready=3)))
    )
    assert h.category is HypothesisCategory.TRANSIENT
    assert h.confidence == 70
    assert h.suggested_mitigation is None


def test_an_ongoing_spike_is_not_transient() -> None:
    assert transient_blip(ctx()) is None


# --- ranking --------------------------------------------------------------------------------------


def test_every_rule_is_registered() -> None:
    assert len(RULES) == len(set(RULES)) == 13


def test_merge_combines_rules_reaching_the_same_conclusion() -> None:
    c = ctx(
        rollouts=two_revisions(13.0),
        metrics=[
            ERRORS,
            scoped("error_ratio", "revision:7", 0.3),
            scoped("error_ratio", "revision:6", 0.002),
        ],
    )
    parts = [fired(recent_deploy(c)), fired(new_revision_worse(c))]
    merged = merge(parts)
    assert len(merged) == 1
    assert merged[0].confidence == max(p.confidence for p in parts) + 5
    assert set(parts[0].supporting) | set(parts[1].supporting) == set(merged[0].supporting)


def test_partial_evidence_lowers_confidence_and_is_stated() -> None:
    evidence = Evidence(
        rollouts=two_revisions(13.0),
        metrics=[
            ERRORS,
            scoped("error_ratio", "revision:7", 0.3),
            scoped("error_ratio", "revision:6", 0.002),
        ],
    )
    full = rank(build_context(spec(), evidence, now=NOW, created_at=NOW))
    partial = rank(build_context(spec(), evidence, now=NOW, created_at=NOW, partial=["logs"]))
    assert partial[0].confidence < full[0].confidence
    assert any("logs could not be collected" in c for c in partial[0].contradicting)
