"""Impact, trend, correlation sentences and the merged timeline."""

from __future__ import annotations

from datetime import timedelta

from stanch.core.investigation.analysis.correlation import GRACE_AFTER_ONSET, Change, correlate, proximity
from stanch.core.investigation.analysis.onset import FLOORS
from stanch.core.investigation.analysis.scope import impact, resolve_onset, symptom_trend, trend
from stanch.core.investigation.analysis.series import ERROR_RATIO
from stanch.core.investigation.analysis.timeline import ALERT_ENTRIES_MAX
from stanch.core.models import (
    EventGroup,
    Evidence,
    IncidentMitigation,
    MitigationPhase,
    NodeEvidence,
    OnsetSource,
    PodHealth,
    TimelineKind,
    Trend,
)
from stanch.core.models.incident import AlertGroup, AlertRecord, AlertState

from .scenario_builders import (
    NOW,
    ONSET,
    SAMPLES,
    T0,
    at,
    flat,
    group,
    metric,
    points,
    run,
    spec,
    step,
    two_revisions,
)


def test_onset_prefers_the_change_point_then_started_at_then_creation() -> None:
    with_signal = Evidence(metrics=[metric("error_ratio", step(0.0, 0.2))])
    assert resolve_onset(spec(), with_signal, NOW).source is OnsetSource.CHANGE_POINT
    quiet = Evidence(metrics=[metric("error_ratio", flat(0.0))])
    reported = resolve_onset(spec(started_at=at(20)), quiet, NOW)
    assert (reported.source, reported.time) == (OnsetSource.STARTED_AT, at(20))
    assert resolve_onset(spec(), quiet, NOW).source is OnsetSource.CREATION_TIME


def test_the_earlier_of_latency_and_errors_is_the_onset() -> None:
    evidence = Evidence(
        metrics=[
            metric("error_ratio", step(0.0, 0.2, at_index=34)),
            metric("latency_p99", step(0.2, 1.5, at_index=30)),
        ]
    )
    onset = resolve_onset(spec(), evidence, NOW)
    assert onset.signal == "latency_p99"
    assert onset.time == ONSET


def test_impact_before_now_peak_and_affected_pods() -> None:
    values = step(0.01, 0.1)
    values[40] = 0.3
    evidence = Evidence(
        metrics=[metric("error_ratio", values), metric("latency_p99", step(0.2, 0.8))],
        pod_health=PodHealth(total=6, ready=5, by_revision=[group("7", 3, 2), group("6", 3, 3)]),
    )
    summary = impact(evidence, resolve_onset(spec(), evidence, NOW), bad_revisions={"7"})
    assert summary.error_ratio_before is not None
    assert abs(summary.error_ratio_before - 0.01) < 1e-9
    assert summary.error_ratio_now == 0.1
    assert summary.error_ratio_peak == 0.3
    assert summary.latency_peak_seconds == 0.8
    assert summary.affected_pods == 3  # one not ready + two ready pods of the bad revision
    assert summary.total_pods == 6


def test_impact_without_pods_or_metrics_is_unknown_not_zero() -> None:
    summary = impact(Evidence(), resolve_onset(spec(), Evidence(), NOW))
    assert summary.error_ratio_now is None
    assert summary.affected_pods is None


def test_trend() -> None:
    floor = FLOORS[ERROR_RATIO]
    rising = points([0.01] * 30 + [0.01 + 0.01 * i for i in range(30)])
    assert trend(rising, None, floor) is Trend.WORSENING
    falling = points([0.3 - 0.01 * i for i in range(SAMPLES // 2)] + [0.0] * 0)
    assert trend(falling, None, floor) is Trend.IMPROVING
    assert trend(points(flat(0.1, sigma=0.002)), None, floor) is Trend.STABLE
    assert trend(points([0.1, 0.2]), None, floor) is Trend.UNKNOWN


def test_a_blip_that_returned_to_baseline_is_recovered() -> None:
    evidence = Evidence(metrics=[metric("error_ratio", [0.002] * 30 + [0.2] * 6 + [0.002] * 24)])
    assert symptom_trend(evidence, resolve_onset(spec(), evidence, NOW)) is Trend.RECOVERED


def test_proximity_and_sentences() -> None:
    lookback = timedelta(minutes=30)
    assert proximity(timedelta(minutes=3), lookback) == 1.0
    assert 0 < proximity(timedelta(minutes=20), lookback) < proximity(timedelta(minutes=10), lookback) < 1
    assert proximity(timedelta(minutes=31), lookback) == 0
    assert proximity(-GRACE_AFTER_ONSET, lookback) == 1.0
    assert proximity(-GRACE_AFTER_ONSET - timedelta(seconds=1), lookback) == 0
    change = Change(
        time=ONSET - timedelta(minutes=4, seconds=10),
        kind=TimelineKind.DEPLOY,
        label="revision 7",
        detail="image a → b",
    )
    late = Change(time=ONSET + timedelta(minutes=2), kind=TimelineKind.DEPLOY, label="revision 8", detail="")
    first, second = correlate([late, change], ONSET, lookback)
    assert first.sentence() == "error spike 4m10s after revision 7: image a → b"
    assert second.sentence() == "revision 8 came 2m after the onset, so it cannot have caused it"


def test_timeline_merges_sorts_and_bounds() -> None:
    evidence = Evidence(
        rollouts=two_revisions(11.0),
        metrics=[metric("error_ratio", step(0.002, 0.15))],
        events_by_reason=[
            EventGroup(
                reason="BackOff", count=12, objects=3, first_seen=at(16), sample_message="Back-off restarting"
            ),
            EventGroup(
                reason="ScalingReplicaSet",
                type="Normal",
                count=2,
                first_seen=at(11),
                sample_message="Scaled up",
            ),
            EventGroup(reason="Old", count=1, first_seen=T0 - timedelta(hours=5)),
        ],
        nodes=[NodeEvidence(name="node-a", ready=False, pods=2)],
    )
    mitigations = [
        IncidentMitigation(name="rb", action="Rollback", phase=MitigationPhase.BAKING, created_at=at(22)),
        IncidentMitigation(name="undated", action="Scale"),
    ]
    timeline = run(evidence, mitigations=mitigations).timeline
    times = [e.time for e in timeline]
    assert times == sorted(times)
    kinds = [e.kind for e in timeline]
    assert kinds.count(TimelineKind.DEPLOY) == 1
    assert TimelineKind.SCALING in kinds
    assert TimelineKind.ONSET in kinds
    assert any(
        e.kind is TimelineKind.POD_EVENT and "BackOff x12 on 3 object(s)" in e.summary for e in timeline
    )
    assert any(e.kind is TimelineKind.MITIGATION and "rb: Rollback" in e.summary for e in timeline)
    assert not any("undated" in e.summary for e in timeline)
    assert not any(e.summary.startswith("Old") for e in timeline)  # outside the lookback
    node = next(e for e in timeline if e.kind is TimelineKind.NODE_CONDITION)
    assert node.time == NOW
    assert "NotReady" in node.summary
    deploy = next(e for e in timeline if e.kind is TimelineKind.DEPLOY)
    assert deploy.details["offsetFromOnset"] == "-4m"
    assert deploy.details["revision"] == "7"


def test_timeline_deduplicates() -> None:
    events = [
        EventGroup(reason=f"Reason{i}", count=1, first_seen=ONSET + timedelta(seconds=i)) for i in range(20)
    ]
    evidence = Evidence(metrics=[metric("error_ratio", step(0.002, 0.15))], events_by_reason=events * 2)
    timeline = run(evidence).timeline
    summaries = [e.summary for e in timeline]
    assert len(summaries) == len(set(summaries))


def test_an_alertmanager_incident_puts_its_alerts_on_the_timeline() -> None:
    def record(i: int, minutes: float, ended: float | None = None) -> AlertRecord:
        return AlertRecord(
            fingerprint=f"f{i}",
            status=AlertState.RESOLVED if ended is not None else AlertState.FIRING,
            starts_at=at(minutes),
            ends_at=at(ended) if ended is not None else None,
            labels={"alertname": "CheckoutErrors", "severity": "critical"},
            summary="5xx above 10%",
        )

    alerts = [record(0, 16, ended=25), record(1, 18)]
    evidence = Evidence(rollouts=two_revisions(11.0), metrics=[metric("error_ratio", step(0.002, 0.15))])
    group = AlertGroup(group_key="k", alerts=alerts)
    timeline = run(evidence, incident_spec=spec(alertmanager=group)).timeline
    fired = [e for e in timeline if e.kind is TimelineKind.ALERT and "fired" in e.summary]
    assert [(e.time, e.summary) for e in fired] == [
        (at(16), "CheckoutErrors fired: 5xx above 10%"),
        (at(18), "CheckoutErrors fired: 5xx above 10%"),
    ]
    assert fired[0].details["severity"] == "critical"
    assert fired[0].details["offsetFromOnset"] == "+1m"
    resolved = [e for e in timeline if e.kind is TimelineKind.ALERT and "resolved" in e.summary]
    assert [e.time for e in resolved] == [at(25)]
    # The deploy comes before the page, in one list.
    deploy = next(e for e in timeline if e.kind is TimelineKind.DEPLOY)
    assert timeline.index(deploy) < timeline.index(fired[0])
    # A large group keeps only its latest alert entries: the deploys and events stay on the timeline.
    many = AlertGroup(group_key="k", alerts=[record(i, 12 + i * 0.2) for i in range(50)])
    crowded = run(evidence, incident_spec=spec(alertmanager=many)).timeline
    assert (
        sum(1 for e in crowded if e.kind is TimelineKind.ALERT and "fired" in e.summary) == ALERT_ENTRIES_MAX
    )
    assert any(e.kind is TimelineKind.DEPLOY for e in crowded)
    # A human-filed Incident has no alert entries but the filing itself.
    plain = run(evidence).timeline
    assert [e.summary for e in plain if e.kind is TimelineKind.ALERT] == ["Incident filed"]
