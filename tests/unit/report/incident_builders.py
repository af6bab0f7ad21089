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


# --- a bad deploy rolled back before the change point showed (the `make demo` story) -------------

FILED = T0 + timedelta(minutes=11)
"""Filed 60 s after the errors began: two elevated samples, too few for a change point."""
ACTED = T0 + timedelta(minutes=12)
LATER = T0 + timedelta(minutes=20)


def _errors(until: datetime) -> list[MetricPoint]:
    """0.2 % errors, 40 % from T0+10m (revision 2's pods), back to 0.2 % after the rollback."""
    out = []
    t = T0 - timedelta(minutes=15)
    while t <= until:
        bad = T0 + timedelta(minutes=10) <= t < ACTED + timedelta(seconds=30)
        out.append(MetricPoint(time=t, value=0.4 if bad else 0.002))
        t += timedelta(seconds=30)
    return out


def _flat(value: float, until: datetime) -> list[MetricPoint]:
    return [p.model_copy(update={"value": value}) for p in _errors(until)]


def rolled_back_incident() -> Incident:
    """Investigated twice, like the operator does: at filing (the onset is only the creation time)
    and after the rollback (the change point is found, the diagnosis is kept as of the rollback)."""
    spec = IncidentSpec(target=TargetRef(name="checkout", namespace="shop"), summary="checkout 5xx")
    bad = RolloutRevision(
        revision=2,
        replica_set="checkout-bad",
        created_at=T0 + timedelta(minutes=10),
        images=["shop/checkout:1.5.0"],
        changes=["image shop/checkout:1.4.2 → shop/checkout:1.5.0"],
        current=True,
        replicas=3,
        ready_replicas=3,
    )
    good = RolloutRevision(
        revision=1,
        replica_set="checkout-good",
        created_at=T0 - timedelta(days=3),
        images=["shop/checkout:1.4.2"],
    )
    first = Evidence(
        rollouts=[bad, good],
        pod_health=PodHealth(total=3, ready=3, by_revision=[PodGroup(key="2", total=3, ready=3)]),
        metrics=[
            MetricSummary(signal="error_ratio", points=_errors(FILED), unit="ratio"),
            MetricSummary(signal="error_ratio", scope="revision:2", before=0.4, now=0.4, peak=0.4),
            MetricSummary(signal="error_ratio", scope="revision:1", before=0.002),
            MetricSummary(signal="latency_p99", points=_flat(0.1, FILED), unit="seconds"),
        ],
    )
    findings = investigate(spec, first, now=FILED, created_at=FILED)
    previous = IncidentStatus(
        scope=findings.scope,
        timeline=findings.timeline,
        hypotheses=findings.hypotheses,
        top_hypothesis=findings.top_hypothesis,
        evidence=first,
    )
    rollback = IncidentMitigation(
        name="checkout-rollback",
        action="Rollback",
        phase=MitigationPhase.SUCCEEDED,
        verdict=VerdictResult.HEALTHY,
        created_at=ACTED,
    )
    # The rollback reused revision 1's ReplicaSet, which became revision 3: revision 2 is now the
    # oldest retained revision.
    restored = good.model_copy(
        update={
            "revision": 3,
            "rolled_out_at": ACTED + timedelta(seconds=5),
            "changes": ["image shop/checkout:1.5.0 → shop/checkout:1.4.2"],
            "current": True,
            "replicas": 3,
            "ready_replicas": 3,
        }
    )
    undone = bad.model_copy(
        update={
            "changes": [],
            "change_cause": "deploy 1.5.0",
            "current": False,
            "replicas": 0,
            "ready_replicas": 0,
        }
    )
    later = Evidence(
        rollouts=[restored, undone],
        pod_health=PodHealth(total=3, ready=3, by_revision=[PodGroup(key="3", total=3, ready=3)]),
        metrics=[
            MetricSummary(signal="error_ratio", points=_errors(LATER), unit="ratio", before=0.1209),
            MetricSummary(signal="error_ratio", scope="revision:2", before=0.4, peak=0.4),
            MetricSummary(signal="error_ratio", scope="revision:3", before=0.0, now=0.0, peak=0.0),
            MetricSummary(signal="latency_p99", points=_flat(0.1, LATER), unit="seconds"),
            MetricSummary(signal="throughput", points=_flat(50.0, LATER), unit="req/s", before=50.0),
        ],
    )
    spec_later = spec
    findings = investigate(
        spec_later, later, now=LATER, created_at=FILED, mitigations=[rollback], previous=previous
    )
    status = IncidentStatus(
        scope=findings.scope,
        timeline=findings.timeline,
        hypotheses=findings.hypotheses,
        top_hypothesis=findings.top_hypothesis,
        conditions=findings.conditions,
        evidence=later,
        mitigations=[rollback],
    )
    return Incident(
        metadata=ObjectMeta(name="checkout-5xx", namespace="shop", creation_timestamp=FILED),
        spec=spec,
        status=status,
    )
