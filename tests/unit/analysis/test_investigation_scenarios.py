"""Scenarios with hand-built evidence: the questions an on-call engineer asks first, answered."""

from __future__ import annotations

from datetime import timedelta

from stanch.core.models import (
    ConfigChange,
    EventGroup,
    Evidence,
    HypothesisCategory,
    IncidentStatus,
    LogSignature,
    ObjectRef,
    OnsetSource,
    PodHealth,
    ReasonCount,
    Trend,
)

from .scenario_builders import (
    NOW,
    ONSET,
    at,
    flat,
    group,
    metric,
    revision,
    run,
    scoped,
    spec,
    step,
    two_revisions,
)


def _errors_step() -> list[float]:
    return step(0.002, 0.15, sigma=0.002)


def test_bad_rollout_with_errors_only_on_new_pods_blames_the_revision() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=11.0),  # onset at 15m: 4 minutes later
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        metrics=[
            metric("error_ratio", _errors_step()),
            scoped("error_ratio", "revision:7", 0.3),
            scoped("error_ratio", "revision:6", 0.002),
        ],
    )
    findings = run(evidence)
    assert findings.scope.onset_source is OnsetSource.CHANGE_POINT
    assert findings.scope.onset is not None
    assert abs(findings.scope.onset - ONSET) <= timedelta(seconds=30)
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert top.confidence >= 80
    assert "revision 7" in top.statement
    assert "api:1.4.2 → api:1.5.0" in top.statement
    assert any("4m after revision 7: image api:1.4.2 → api:1.5.0" in s for s in top.supporting)
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert top.suggested_mitigation.rollback.to_revision == 6
    assert findings.top_hypothesis is not None
    assert findings.top_hypothesis.startswith("RecentDeploy ")
    assert findings.scope.impact.affected_pods == 3  # the ready-but-erroring pods of revision 7
    # One hypothesis for the deploy, however many rules pointed at it.
    assert sum(h.category is HypothesisCategory.RECENT_DEPLOY for h in findings.hypotheses) == 1


def test_unrelated_deploy_with_healthy_new_pods_does_not_win() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=13.0),
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        metrics=[
            metric("error_ratio", _errors_step()),
            scoped("error_ratio", "revision:7", 0.15),
            scoped("error_ratio", "revision:6", 0.15),
        ],
        log_signatures=[
            LogSignature(
                signature="dial tcp <ip>: connect: connection refused",
                count=400,
                pods=6,
                first_seen=ONSET,
                sample="dial tcp payments-db:5432: connect: connection refused",
            )
        ],
    )
    findings = run(evidence)
    top = findings.hypotheses[0]
    assert top.category is not HypothesisCategory.RECENT_DEPLOY
    assert top.category is HypothesisCategory.DEPENDENCY
    assert top.suggested_mitigation is None  # nothing destructive for a dependency outage
    deploy = next(h for h in findings.hypotheses if h.category is HypothesisCategory.RECENT_DEPLOY)
    assert deploy.confidence < 50
    assert any("no worse than the other revisions" in c for c in deploy.contradicting)


def test_unrelated_deploy_alone_is_not_a_confident_cause() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=13.0),
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        metrics=[
            metric("error_ratio", _errors_step()),
            scoped("error_ratio", "revision:7", 0.15),
            scoped("error_ratio", "revision:6", 0.149),
        ],
    )
    findings = run(evidence)
    assert findings.hypotheses[0].confidence < 50
    assert any(h.category is HypothesisCategory.UNKNOWN for h in findings.hypotheses)


def test_crash_looping_new_revision() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=12.0),
        pod_health=PodHealth(
            total=5,
            ready=3,
            restarts=14,
            reasons=[ReasonCount(reason="CrashLoopBackOff", count=2)],
            by_revision=[group("7", 2, 0, 14, CrashLoopBackOff=2), group("6", 3, 3)],
        ),
        events_by_reason=[
            EventGroup(reason="BackOff", count=30, first_seen=at(12.5), sample_message="Back-off restarting")
        ],
        metrics=[metric("error_ratio", step(0.002, 0.04, sigma=0.001))],
    )
    findings = run(evidence)
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert "crash-loops" in top.statement
    assert "revision 7" in top.statement
    assert top.confidence >= 85
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert any(e.kind.value == "PodEvent" and "BackOff" in e.summary for e in findings.timeline)


def test_configmap_change_without_a_new_revision() -> None:
    evidence = Evidence(
        rollouts=[revision(6, -600, "api:1.4.2", current=True)],
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("6", 3, 3)]),
        config_changes=[
            ConfigChange(
                object=ObjectRef(kind="ConfigMap", name="checkout-flags", namespace="shop"),
                changed_at=at(13.0),
                summary='key new_pricing: "false" → "true"',
                referenced=True,
            )
        ],
        metrics=[metric("error_ratio", _errors_step())],
    )
    findings = run(evidence)
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.CONFIG_CHANGE
    assert "ConfigMap/checkout-flags" in top.statement
    assert top.confidence >= 60
    toggle = top.suggested_mitigation.config_toggle if top.suggested_mitigation else None
    assert toggle is not None
    assert (toggle.config_map, toggle.key, toggle.value) == ("checkout-flags", "new_pricing", "false")


def test_traffic_surge_without_any_change_is_load() -> None:
    evidence = Evidence(
        rollouts=[revision(6, -600, "api:1.4.2", current=True)],
        pod_health=PodHealth(total=3, ready=3),
        metrics=[
            metric("error_ratio", _errors_step()),
            metric("throughput", step(100.0, 260.0, sigma=3.0)),
        ],
    )
    findings = run(evidence)
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.TRAFFIC_CHANGE
    assert top.confidence >= 70
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.scale is not None
    assert top.suggested_mitigation.scale.factor is not None
    assert top.suggested_mitigation.scale.factor >= 2
    assert any(e.kind.value == "Traffic" for e in findings.timeline)


def test_healthy_workload_has_no_confident_cause() -> None:
    evidence = Evidence(
        rollouts=[revision(6, -600, "api:1.4.2", current=True)],
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("6", 3, 3)]),
        metrics=[metric("error_ratio", flat(0.002, sigma=0.0005)), metric("throughput", flat(100, sigma=2))],
    )
    findings = run(evidence)
    assert findings.hypotheses[0].confidence < 50
    assert findings.hypotheses[0].category is HypothesisCategory.UNKNOWN
    assert findings.scope.onset_source is OnsetSource.CREATION_TIME
    assert findings.scope.trend is Trend.STABLE


def test_no_metrics_lowers_confidence_and_says_so() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=25.0),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
    )
    findings = run(evidence, incident_spec=spec(started_at=at(27)))
    assert findings.scope.onset_source is OnsetSource.STARTED_AT
    assert all(h.confidence <= 60 for h in findings.hypotheses)
    assert any("no error/latency metrics" in c for h in findings.hypotheses for c in h.contradicting)
    no_metrics = next(c for c in findings.conditions if c.type == "NoMetrics")
    assert no_metrics.status.value == "True"
    assert (
        "Warning",
        "NoMetrics",
        "no error-ratio or latency data: confidence is lowered",
    ) in findings.events


def test_vanished_workload_is_never_a_confident_answer() -> None:
    evidence = Evidence(metrics=[metric("error_ratio", _errors_step())])
    findings = run(evidence, partial=["deployment"])
    assert all(h.confidence <= 30 for h in findings.hypotheses)
    assert next(c for c in findings.conditions if c.type == "TargetMissing").status.value == "True"
    partial = next(c for c in findings.conditions if c.type == "PartialEvidence")
    assert partial.status.value == "True"
    assert "deployment" in partial.message


def test_second_run_with_nothing_new_posts_no_events_and_keeps_transition_times() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=11.0),
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        metrics=[
            metric("error_ratio", _errors_step()),
            scoped("error_ratio", "revision:7", 0.3),
            scoped("error_ratio", "revision:6", 0.002),
        ],
    )
    first = run(evidence)
    assert {reason for _, reason, _ in first.events} == {"OnsetDetected", "HypothesisChanged"}
    previous = IncidentStatus(scope=first.scope, hypotheses=first.hypotheses, conditions=first.conditions)
    later = NOW + timedelta(minutes=1)
    second = run(evidence, now=later, previous=previous)
    assert second.events == []
    assert [c.last_transition_time for c in second.conditions] == [
        c.last_transition_time for c in first.conditions
    ]
