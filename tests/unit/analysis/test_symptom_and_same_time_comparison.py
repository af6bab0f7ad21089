"""Detection before blame, and every SLI compared per revision at the same time.

The three incidents the issue reported, built from evidence: a harmless deploy and no symptom; a
new image much slower with no errors; a dependency that failed after a healthy rollout completed.
"""

from __future__ import annotations

from stanch.core.investigation.analysis import build_context
from stanch.core.investigation.analysis.comparison import compare
from stanch.core.investigation.analysis.symptom import detect
from stanch.core.models import (
    ConditionStatus,
    Evidence,
    HypothesisCategory,
    LogSignature,
    PodHealth,
    RolloutRevision,
    SliState,
    WorkloadStatus,
)

from .scenario_builders import NOW, ONSET, at, flat, group, metric, run, scoped, spec, step, two_revisions

DONE = WorkloadStatus(desired=3, updated=3, ready=3, available=3, progressing_reason="NewReplicaSetAvailable")


def _completed(revisions: list[RolloutRevision], minutes: float) -> list[RolloutRevision]:
    return [r.model_copy(update={"completed_at": at(minutes)}) if r.current else r for r in revisions]


def _healthy(**overrides: object) -> Evidence:
    """Revision 7 deployed at 20m and completed a minute later; everything flat and healthy."""
    fields: dict[str, object] = {
        "rollouts": _completed(two_revisions(new_at_minutes=20.0), 21.0),
        "pod_health": PodHealth(
            total=3, ready=3, by_revision=[group("7", 3, 3)], by_node=[group("n1", 3, 3)]
        ),
        "workload": DONE,
        "metrics": [
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", flat(0.12, sigma=0.004)),
            metric("throughput", flat(50, sigma=1)),
            scoped("error_ratio", "revision:7", 0.0, before=0.0),
            scoped("error_ratio", "revision:6", 0.0, before=0.0).model_copy(update={"now": None}),
            scoped("latency_p99", "revision:7", 0.12, before=0.12),
        ],
    }
    fields.update(overrides)
    return Evidence.model_validate(fields)


# --- 1. no symptom: no accusation ------------------------------------------------------------------


def test_a_harmless_deploy_with_no_symptom_is_not_accused_and_nothing_is_suggested() -> None:
    findings = run(_healthy(), created_at=at(24.0), now=NOW)
    symptom = findings.scope.symptom
    assert symptom is not None
    assert symptom.state is SliState.NORMAL
    looked = {c.sli: c for c in symptom.checks}
    assert {"error_ratio", "latency_p99", "availability", "rollout"} <= set(looked)
    assert all(looked[s].state is SliState.NORMAL for s in ("error_ratio", "latency_p99", "availability"))
    assert "60 samples over 29m30s" in looked["latency_p99"].detail, "says which window and data"
    assert "3/3 pods ready (desired 3)" in looked["availability"].detail
    assert symptom.window_start is not None
    assert symptom.window_end == NOW
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.NO_ANOMALY
    assert top.confidence < 50, "'nothing is wrong' is never presented as a cause"
    assert [h.category for h in findings.hypotheses] == [HypothesisCategory.NO_ANOMALY]
    assert all(h.suggested_mitigation is None for h in findings.hypotheses)
    assert any("revision 7" in s and "no symptom followed it" in s for s in top.supporting)
    assert findings.top_hypothesis is not None
    assert findings.top_hypothesis.startswith("NoAnomaly ")
    assert "errors began" not in findings.top_hypothesis
    condition = next(c for c in findings.conditions if c.type == "SymptomDetected")
    assert (condition.status, condition.reason) == (ConditionStatus.FALSE, "NoAnomaly")
    assert "error_ratio normal" in condition.message
    assert "30m of data" in condition.message


def test_missing_data_is_unknown_never_healthy() -> None:
    no_latency = _healthy(
        metrics=[metric("error_ratio", flat(0.0)), scoped("error_ratio", "revision:7", 0.0, before=0.0)]
    )
    findings = run(no_latency, created_at=at(24.0))
    symptom = findings.scope.symptom
    assert symptom is not None
    assert symptom.state is SliState.UNKNOWN
    assert next(c for c in symptom.checks if c.sli == "latency_p99").state is SliState.UNKNOWN
    condition = next(c for c in findings.conditions if c.type == "SymptomDetected")
    assert (condition.status, condition.reason) == (ConditionStatus.UNKNOWN, "Unknown")
    assert "latency_p99" in condition.message
    assert findings.hypotheses[0].category is not HypothesisCategory.NO_ANOMALY

    failed_query = _healthy(
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", flat(0.12)),
        ]
    )
    broken = failed_query.model_copy(
        update={
            "metrics": [
                m.model_copy(update={"points": [], "error": "no data in the window"})
                if m.signal == "error_ratio"
                else m
                for m in failed_query.metrics
            ]
        }
    )
    assert detect(broken, NOW).state is SliState.UNKNOWN


def test_each_sli_can_carry_the_symptom_alone() -> None:
    crashing = _healthy(
        pod_health=PodHealth(total=3, ready=2, by_revision=[group("7", 3, 2, 4, CrashLoopBackOff=1)])
    )
    assert detect(crashing, NOW).state_of("availability") is SliState.ANOMALOUS
    short = _healthy(
        workload=DONE.model_copy(update={"ready": 2, "available": 2}),
        pod_health=PodHealth(total=3, ready=2, by_revision=[group("7", 3, 2)]),
    )
    assert detect(short, NOW).state_of("availability") is SliState.ANOMALOUS, "2 of 3 ready, no rollout"
    stuck = _healthy(
        workload=DONE.model_copy(
            update={"progressing_reason": "ProgressDeadlineExceeded", "message": "deadline"}
        )
    )
    assert detect(stuck, NOW).state_of("rollout") is SliState.ANOMALOUS
    slow = _healthy(
        metrics=[metric("error_ratio", flat(0.0)), metric("latency_p99", step(0.12, 0.9, sigma=0.004))]
    )
    assert detect(slow, NOW).state_of("latency_p99") is SliState.ANOMALOUS
    young = _healthy(
        metrics=[metric("error_ratio", [0.0] * 58 + [0.15, 0.2]), metric("latency_p99", flat(0.12))]
    )
    assert detect(young, NOW).state_of("error_ratio") is SliState.ANOMALOUS, (
        "a rise too young for a change point"
    )
    hot = _healthy(
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", flat(0.12)),
            metric("cpu_vs_limit", step(0.3, 0.97, sigma=0.01)),
        ]
    )
    assert detect(hot, NOW).state_of("cpu_vs_limit") is SliState.ANOMALOUS
    steady_high = _healthy(
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", flat(0.12)),
            metric("memory_vs_limit", flat(0.92, sigma=0.005)),
        ]
    )
    assert detect(steady_high, NOW).state is SliState.NORMAL, "a steady level is that workload's baseline"
    old_oom = _healthy(
        pod_health=PodHealth(
            total=3, ready=3, restarts=1, reasons=[], by_revision=[group("7", 3, 3, 1, OOMKilled=1)]
        )
    )
    old_oom = old_oom.model_copy(
        update={
            "pod_health": old_oom.pod_health.model_copy(
                update={"reasons": old_oom.pod_health.by_revision[0].reasons}
            )
        }
    )
    assert detect(old_oom, NOW).state_of("availability") is SliState.UNKNOWN, "an OOM kill of unknown age"
    quiet = old_oom.model_copy(update={"metrics": [*old_oom.metrics, metric("restarts", flat(0.0))]})
    assert detect(quiet, NOW).state_of("availability") is SliState.NORMAL, "no restart in the window: old"
    fresh = old_oom.model_copy(update={"metrics": [*old_oom.metrics, metric("restarts", step(0.0, 1.0))]})
    assert detect(fresh, NOW).state_of("availability") is SliState.ANOMALOUS


# --- 2. a latency-only regression of the new revision -------------------------------------------------


def test_a_latency_only_regression_of_the_new_revision_is_blamed_with_latency_evidence() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=13.0),
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        workload=WorkloadStatus(
            desired=6, updated=3, ready=6, available=6, progressing_reason="ReplicaSetUpdated"
        ),
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", step(0.12, 0.95, sigma=0.005)),
            scoped("error_ratio", "revision:7", 0.0),
            scoped("error_ratio", "revision:6", 0.0),
            scoped("latency_p99", "revision:7", 1.2),
            scoped("latency_p99", "revision:6", 0.12),
        ],
    )
    findings = run(evidence)
    assert findings.scope.symptom is not None
    assert findings.scope.symptom.state is SliState.ANOMALOUS
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert top.confidence >= 80
    assert "revision 7" in top.statement
    assert any("p99 latency 1.2s, against 0.12s for revision 6 at the same time" in s for s in top.supporting)
    assert not any("error" in s for s in top.supporting), top.supporting
    assert "errors" not in top.statement
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert top.suggested_mitigation.rollback.to_revision == 6


def test_a_completed_latency_regression_is_recognised_at_its_rollout() -> None:
    evidence = Evidence(
        rollouts=_completed(two_revisions(new_at_minutes=14.9), 15.0),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        workload=DONE,
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", step(0.12, 0.95, sigma=0.005)),
            scoped("latency_p99", "revision:7", 1.1, before=0.12),
            scoped("latency_p99", "revision:6", 0.0, before=0.12).model_copy(update={"now": None}),
        ],
    )
    top = run(evidence).hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert top.confidence >= 70
    assert any("p99 latency 1.1s" in s and "while they served" in s for s in top.supporting), top.supporting
    assert "latency rise began" in top.statement or "failing" in top.statement


def test_a_revision_no_worse_on_the_anomalous_sli_is_cleared_even_if_compared_on_others() -> None:
    evidence = Evidence(
        rollouts=two_revisions(new_at_minutes=13.0),
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        metrics=[
            metric("error_ratio", step(0.0, 0.2, sigma=0.003)),
            metric("latency_p99", flat(0.12)),
            scoped("error_ratio", "revision:7", 0.2),
            scoped("error_ratio", "revision:6", 0.21),
            scoped("latency_p99", "revision:7", 0.12),
            scoped("latency_p99", "revision:6", 0.12),
        ],
    )
    ctx = build_context(spec(), evidence, now=NOW, created_at=NOW)
    assert ctx.by_revision.worse("7") == []
    assert len(ctx.by_revision.no_worse("7", ["error_ratio"])) == 1
    deploy = next(h for h in run(evidence).hypotheses if h.category is HypothesisCategory.RECENT_DEPLOY)
    assert deploy.confidence < 50
    assert deploy.suggested_mitigation is None, "evidence that clears the revision suggests no rollback"
    assert "is unlikely to be the cause" in deploy.statement


# --- 3. a later dependency failure after a healthy, completed rollout --------------------------------


def test_a_later_dependency_failure_is_not_blamed_on_an_earlier_healthy_deploy() -> None:
    evidence = Evidence(
        rollouts=_completed(two_revisions(new_at_minutes=10.0), 10.5),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        workload=DONE,
        metrics=[
            metric("error_ratio", step(0.0, 0.3, sigma=0.003)),
            metric("latency_p99", flat(0.12, sigma=0.003)),
            scoped("error_ratio", "revision:7", 0.3, before=0.0),
            scoped("error_ratio", "revision:6", 0.0, before=0.0).model_copy(update={"now": None}),
        ],
        log_signatures=[
            LogSignature(
                signature="dial tcp <ip>: connect: connection refused",
                count=400,
                pods=3,
                first_seen=ONSET,
                sample="dial tcp payments-db:5432: connect: connection refused",
            )
        ],
    )
    findings = run(evidence)
    assert findings.hypotheses[0].category is not HypothesisCategory.RECENT_DEPLOY
    assert all(
        h.suggested_mitigation is None or h.suggested_mitigation.rollback is None for h in findings.hypotheses
    ), "no rollback of the innocent revision"
    deploy = next(h for h in findings.hypotheses if h.category is HypothesisCategory.RECENT_DEPLOY)
    assert deploy.confidence < 50
    assert any(
        "served at the baseline meanwhile (error ratio 0.1%, p99 latency 0.121s)" in c
        for c in deploy.contradicting
    )
    assert "is unlikely to be the cause" in deploy.statement


def test_a_rollout_that_completed_right_at_the_onset_is_still_a_suspect() -> None:
    evidence = Evidence(
        rollouts=_completed(two_revisions(new_at_minutes=14.5), 15.0),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        workload=DONE,
        metrics=[
            metric("error_ratio", step(0.0, 0.3, sigma=0.003)),
            scoped("error_ratio", "revision:7", 0.3, before=0.0),
            scoped("error_ratio", "revision:6", 0.0, before=0.0).model_copy(update={"now": None}),
        ],
    )
    top = run(evidence).hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None


# --- the comparison itself ------------------------------------------------------------------------


def test_per_node_comparison_and_pod_health_per_revision() -> None:
    evidence = Evidence(
        pod_health=PodHealth(
            total=6,
            ready=4,
            by_revision=[group("7", 3, 1, 6, CrashLoopBackOff=2), group("6", 3, 3)],
            by_node=[group("n1", 3, 3), group("n2", 3, 1), group("<unscheduled>", 1, 0, Unschedulable=1)],
        ),
        metrics=[
            scoped("latency_p99", "node:n1", 0.1),
            scoped("latency_p99", "node:n2", 0.5),
            scoped("error_ratio", "node:n1", 0.001),
            scoped("error_ratio", "node:n2", 0.002),
        ],
    )
    revisions = compare(evidence, "revision")
    assert revisions.worse("7") == ["revision 7: 1/3 pods ready, CrashLoopBackOffx2; others have none"]
    assert revisions.worse("6") == []
    nodes = compare(evidence, "node")
    assert nodes.worse("n2") == [
        "pods of node n2: p99 latency 0.5s, against 0.1s for node n1 at the same time",
        "node n2: 1/3 pods ready, against 3/3 for node n1",
    ]
    assert nodes.worse("n1") == []
    assert "<unscheduled>" not in nodes.serving()


def test_one_slow_node_is_the_suspect_when_its_pods_answer_far_slower_at_the_same_time() -> None:
    evidence = Evidence(
        pod_health=PodHealth(
            total=6, ready=6, by_revision=[group("6", 6, 6)], by_node=[group("n1", 3, 3), group("n2", 3, 3)]
        ),
        rollouts=[two_revisions()[1].model_copy(update={"current": True, "replicas": 6})],
        metrics=[
            metric("error_ratio", flat(0.0)),
            metric("latency_p99", step(0.1, 0.6, sigma=0.004)),
            scoped("latency_p99", "node:n1", 0.1),
            scoped("latency_p99", "node:n2", 0.9),
        ],
    )
    top = run(evidence).hypotheses[0]
    assert top.category is HypothesisCategory.NODE_INFRASTRUCTURE
    assert "node n2" in top.statement
    assert "pods of node n2: p99 latency 0.9s, against 0.1s for node n1 at the same time" in top.supporting
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.evacuate is not None


def test_a_short_healthy_service_counts_when_the_samples_show_it() -> None:
    """Completed 2 minutes (4 samples at the baseline) before a failure that hits every pod: cleared."""
    evidence = Evidence(
        rollouts=_completed(two_revisions(new_at_minutes=12.8), 13.0),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        workload=DONE,
        metrics=[
            metric("error_ratio", step(0.0, 0.9, sigma=0.003)),
            scoped("error_ratio", "revision:7", 0.9, before=0.0),
            scoped("error_ratio", "revision:6", 0.0, before=0.0).model_copy(update={"now": None}),
        ],
    )
    findings = run(evidence)
    assert all(
        h.suggested_mitigation is None or h.suggested_mitigation.rollback is None for h in findings.hypotheses
    )
    deploy = next(h for h in findings.hypotheses if h.category is HypothesisCategory.RECENT_DEPLOY)
    assert any("served at the baseline meanwhile" in c for c in deploy.contradicting)
