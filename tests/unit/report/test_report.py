"""The post-incident report: sections present and filled from status, alerts, chart data."""

from __future__ import annotations

import yaml

from stanch.core.models import Incident, IncidentSpec, TargetRef, TimelineKind, VerdictResult
from stanch.core.report import chart_series, follow_ups, render_markdown, suggested_alerts
from stanch.core.report.markdown import cell

from .incident_builders import NOW, bad_rollout_incident, rollback_mitigation


def _section(doc: str, title: str) -> str:
    start = doc.index(f"\n## {title}\n")
    end = doc.find("\n## ", start + 1)
    return doc[start : end if end >= 0 else None]


def test_report_has_every_section_in_order() -> None:
    doc = render_markdown(bad_rollout_incident(), [rollback_mitigation()], now=NOW)
    assert doc.startswith("# Post-incident report: checkout-5xx\n")
    titles = [line[3:] for line in doc.splitlines() if line.startswith("## ")]
    assert titles == ["Summary", "Impact", "Timeline", "Hypotheses", "Evidence", "Mitigations", "Follow-ups"]


def test_summary_and_impact_carry_the_numbers() -> None:
    doc = render_markdown(bad_rollout_incident(severity="SEV2"), now=NOW)
    summary = _section(doc, "Summary")
    assert "Severity: SEV2" in summary
    assert "Deployment/shop/checkout" in summary
    assert "RecentDeploy" in summary
    assert "ChangePoint" in summary
    impact = _section(doc, "Impact")
    assert "| error ratio | 0.20% | 15.00% | 15.00% |" in impact
    assert "Affected pods: 3 of 6." in impact


def test_timeline_table_lists_deploy_onset_and_mitigation() -> None:
    timeline = _section(render_markdown(bad_rollout_incident(), now=NOW), "Timeline")
    assert "| Deploy | revision 7: image api:1.4.2 → api:1.5.0 |" in timeline
    assert "| Onset |" in timeline
    assert "| Mitigation | mitigation checkout-rollback: Rollback" in timeline
    assert "| -4m |" in timeline  # the deploy, relative to the onset


def test_hypotheses_show_evidence_and_mitigation() -> None:
    hyps = _section(render_markdown(bad_rollout_incident(), now=NOW), "Hypotheses")
    assert "### 1. RecentDeploy" in hyps
    assert "Evidence for:" in hyps
    assert "First safe mitigation: **Rollback** on Deployment/shop/checkout" in hyps


def test_mitigation_outcome_with_verdict_numbers() -> None:
    mitigations = _section(
        render_markdown(bad_rollout_incident(), [rollback_mitigation()], now=NOW), "Mitigations"
    )
    assert "### checkout-rollback: Rollback on Deployment/checkout" in mitigations
    assert "Verdict: **Healthy** after 10 checks (0 failed)" in mitigations
    assert "| error_ratio | 0.15 | 0.002 | 0.165 | observed > b*1.1 |" in mitigations


def test_linked_mitigations_without_objects_are_still_listed() -> None:
    mitigations = _section(render_markdown(bad_rollout_incident(), now=NOW), "Mitigations")
    assert "| checkout-rollback | Rollback | Succeeded | Healthy |" in mitigations


def test_follow_ups_follow_the_cause_and_the_outcome() -> None:
    incident = bad_rollout_incident()
    items = follow_ups(incident, [rollback_mitigation(VerdictResult.WORSE)])
    assert any(i.startswith("Add an alert") for i in items)
    assert any("Pin a guard on error_ratio" in i for i in items)
    assert any("ended Worse" in i for i in items)


def test_an_incident_without_status_still_renders() -> None:
    bare = Incident(spec=IncidentSpec(target=TargetRef(name="checkout")))
    doc = render_markdown(bare, now=NOW)
    assert "No hypotheses were recorded." in doc
    assert "No confident cause was found" in doc


def test_table_cells_cannot_break_the_table() -> None:
    assert cell("a|b\nc") == "a\\|b c"


def test_suggested_alert_is_a_prometheus_rule_for_the_symptom() -> None:
    rule = suggested_alerts(bad_rollout_incident(severity="SEV1"))
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["namespace"] == "shop"
    rules = rule["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["CheckoutErrorRatioHigh"]  # latency barely moved
    alert = rules[0]
    assert 'namespace="shop",deployment="checkout"' in alert["expr"]
    assert alert["expr"].endswith("> 0.01")
    assert alert["labels"]["severity"] == "critical"
    assert alert["for"] == "2m"
    yaml.safe_dump(rule)  # serialisable as a manifest


def test_alert_values_are_escaped() -> None:
    incident = bad_rollout_incident()
    tricky = incident.model_copy(
        update={
            "spec": incident.spec.model_copy(update={"target": TargetRef(name="checkout")}),
            "metadata": incident.metadata.model_copy(update={"namespace": 'x"}or{'}),
        }
    )
    expr = suggested_alerts(tricky)["spec"]["groups"][0]["rules"][0]["expr"]
    assert 'namespace="x\\"}or{"' in expr


def test_chart_series_has_points_and_markers() -> None:
    chart = chart_series(bad_rollout_incident())
    assert not chart.empty
    assert [s.signal for s in chart.series] == ["error_ratio", "latency_p99"]
    assert len(chart.series[0].points) == 60
    kinds = {m.kind for m in chart.markers}
    assert {TimelineKind.DEPLOY, TimelineKind.ONSET, TimelineKind.MITIGATION} <= kinds
    assert all(TimelineKind(m.kind) is not TimelineKind.ALERT for m in chart.markers)
