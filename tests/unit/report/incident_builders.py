"""An investigated Incident (a bad rollout) and a Mitigation that rolled it back, for report tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stanch.core.investigation.analysis import investigate
from stanch.core.models import (
    Evidence,
    Incident,
    IncidentMitigation,
    IncidentSpec,
    IncidentStatus,
    MetricPoint,
    MetricSummary,
    Mitigation,
    MitigationPhase,
    MitigationSpec,
    MitigationStatus,
    ObjectMeta,
    PodGroup,
    PodHealth,
    RolloutRevision,
    TargetRef,
    Verdict,
    VerdictNumber,
    VerdictResult,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)


def _series(before: float, after: float) -> list[MetricPoint]:
    return [
        MetricPoint(time=T0 + timedelta(seconds=30 * i), value=before if i < 30 else after) for i in range(60)
    ]


def bad_rollout_incident(**spec_fields: object) -> Incident:
    spec = IncidentSpec.model_validate(
        {"target": TargetRef(name="checkout", namespace="shop"), "summary": "checkout 5xx", **spec_fields}
    )
    evidence = Evidence(
        rollouts=[
            RolloutRevision(
                revision=7,
                replica_set="checkout-7abc",
                created_at=T0 + timedelta(minutes=11),
                images=["api:1.5.0"],
                changes=["image api:1.4.2 → api:1.5.0"],
                current=True,
                replicas=3,
                ready_replicas=3,
            ),
            RolloutRevision(
                revision=6,
                replica_set="checkout-6abc",
                created_at=T0 - timedelta(days=3),
                images=["api:1.4.2"],
                replicas=3,
                ready_replicas=3,
            ),
        ],
        pod_health=PodHealth(
            total=6,
            ready=6,
            by_revision=[PodGroup(key="7", total=3, ready=3), PodGroup(key="6", total=3, ready=3)],
        ),
        metrics=[
            MetricSummary(signal="error_ratio", points=_series(0.002, 0.15), unit="ratio"),
            MetricSummary(signal="error_ratio", scope="revision:7", now=0.3),
            MetricSummary(signal="error_ratio", scope="revision:6", now=0.002),
            MetricSummary(signal="latency_p99", points=_series(0.2, 0.21), unit="seconds"),
        ],
    )
    linked = [
        IncidentMitigation(
            name="checkout-rollback",
            action="Rollback",
            phase=MitigationPhase.SUCCEEDED,
            verdict=VerdictResult.HEALTHY,
            created_at=T0 + timedelta(minutes=20),
        )
    ]
    findings = investigate(spec, evidence, now=NOW, created_at=NOW, mitigations=linked)
    status = IncidentStatus(
        scope=findings.scope,
        timeline=findings.timeline,
        hypotheses=findings.hypotheses,
        top_hypothesis=findings.top_hypothesis,
        conditions=findings.conditions,
        evidence=evidence,
        mitigations=linked,
    )
    return Incident(metadata=ObjectMeta(name="checkout-5xx", namespace="shop"), spec=spec, status=status)


def rollback_mitigation(result: VerdictResult = VerdictResult.HEALTHY) -> Mitigation:
    return Mitigation(
        metadata=ObjectMeta(name="checkout-rollback", namespace="shop"),
        spec=MitigationSpec(target=TargetRef(name="checkout"), rollback={"toRevision": 6}),
        status=MitigationStatus(
            phase=MitigationPhase.SUCCEEDED if result is VerdictResult.HEALTHY else MitigationPhase.REVERTED,
            requested_by="alice",
            verdict=Verdict(
                result=result,
                reason="error_ratio back under baseline",
                checks=10,
                failed_checks=0,
                numbers=[
                    VerdictNumber(
                        signal="error_ratio",
                        baseline=0.15,
                        observed=0.002,
                        threshold=0.165,
                        test="observed > b*1.1",
                    )
                ],
            ),
        ),
    )
