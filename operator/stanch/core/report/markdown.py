"""The post-incident document: rendered from an Incident's status (and its Mitigations) alone, so it
can be written long after the pods and metrics are gone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from stanch.core.models import (
    ConditionStatus,
    Evidence,
    Hypothesis,
    HypothesisCategory,
    ImpactSummary,
    Incident,
    Mitigation,
    OnsetSource,
    Scope,
    TimelineEntry,
    VerdictResult,
)
from stanch.core.redaction import redact_text
from stanch.core.report.figures import ONSET_METHOD, overall_numbers, start_hint

NO_DATA = "n/a"


def cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else NO_DATA


def _pct(value: float | None) -> str:
    return NO_DATA if value is None else f"{value * 100:.2f}%"


def _secs(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.3f}s"


def _num(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.4g}"


def _by_unit(value: float | None, unit: str | None) -> str:
    """A number the way the Impact table writes it, so the same number reads the same everywhere."""
    if unit == "ratio":
        return _pct(value)
    if unit == "seconds":
        return _secs(value)
    return _num(value)


def _impact(impact: ImpactSummary) -> list[str]:
    lines = _table(
        ["Signal", "Before onset", "Now", "Peak since onset"],
        [
            [
                "error ratio",
                _pct(impact.error_ratio_before),
                _pct(impact.error_ratio_now),
                _pct(impact.error_ratio_peak),
            ],
            [
                "latency",
                _secs(impact.latency_before_seconds),
                _secs(impact.latency_now_seconds),
                _secs(impact.latency_peak_seconds),
            ],
        ],
    )
    if impact.total_pods is not None:
        lines += ["", f"Affected pods: {impact.affected_pods or 0} of {impact.total_pods}."]
    return lines


def _onset_method(source: OnsetSource) -> str:
    return f"{source.value}: {ONSET_METHOD[source]}"


def _timeline(entries: Sequence[TimelineEntry]) -> list[str]:
    if not entries:
        return ["No timeline was recorded."]
    return _table(
        ["Time (UTC)", "From onset", "Kind", "What"],
        [[_time(e.time), e.details.get("offsetFromOnset", ""), e.kind.value, e.summary] for e in entries],
    )


def _hypothesis(index: int, h: Hypothesis) -> list[str]:
    lines = [f"### {index}. {h.category.value} - {h.confidence}%", "", h.statement, ""]
    if h.supporting:
        lines += ["Evidence for:", *[f"- {cell(s)}" for s in h.supporting], ""]
    if h.contradicting:
        lines += ["Evidence against / limitations:", *[f"- {cell(s)}" for s in h.contradicting], ""]
    m = h.suggested_mitigation
    if m is not None:
        lines += [f"First safe mitigation: **{m.action.value}** on {m.target.display()} - {m.summary}", ""]
    else:
        lines += ["First safe mitigation: none that Stanch can apply.", ""]
    return lines


def _metrics(evidence: Evidence, scope: Scope | None, hint: datetime | None) -> list[str]:
    """Overall series against the onset, with the very numbers of the Impact table; breakdowns
    against the start hint they were gathered from (they keep no points to measure from the onset),
    in a table of their own so that no column means two things."""
    metrics = evidence.metrics
    overall = [m for m in metrics if m.scope == "overall"]
    lines = ["### Metrics", ""]
    if overall:
        onset = scope.onset if scope is not None else None
        lines += [f"Overall, measured from the onset ({_time(onset)}):", ""]
        rows = []
        for m in overall:
            numbers = overall_numbers(evidence, m, scope)
            rows.append(
                [
                    m.signal,
                    _by_unit(numbers.before, m.unit),
                    _by_unit(numbers.now, m.unit),
                    _by_unit(numbers.peak, m.unit),
                    m.error or "",
                ]
            )
        lines += _table(["Signal", "Before onset", "Now", "Peak since onset", "Note"], rows)
        lines.append("")
    broken = [m for m in metrics if m.scope != "overall"]
    if broken:
        lines += [
            f"By revision and node, measured from the Incident's start hint ({_time(hint)}), when"
            " they were gathered:",
            "",
        ]
        lines += _table(
            ["Signal", "Scope", "Before start hint", "Now", "Peak since start hint", "Note"],
            [
                [
                    m.signal,
                    m.scope,
                    _by_unit(m.before, m.unit),
                    _by_unit(m.now, m.unit),
                    _by_unit(m.peak, m.unit),
                    m.error or "",
                ]
                for m in broken
            ],
        )
        lines.append("")
    return lines


def _evidence(evidence: Evidence, scope: Scope | None = None, hint: datetime | None = None) -> list[str]:
    lines: list[str] = []
    if evidence.rollouts:
        lines += ["### Rollouts", ""]
        lines += _table(
            ["Revision", "Rolled out", "Current", "Ready", "Changes"],
            [
                [
                    r.revision,
                    _time(r.since) + (f" (ReplicaSet from {_time(r.created_at)})" if r.rolled_out_at else ""),
                    "yes" if r.current else "",
                    f"{r.ready_replicas}/{r.replicas}",
                    "; ".join(r.changes) or r.change_cause or ", ".join(r.images),
                ]
                for r in evidence.rollouts
            ],
        )
        lines.append("")
    health = evidence.pod_health
    if health.total:
        lines += ["### Pod health", ""]
        reasons = ", ".join(f"{r.reason} x{r.count}" for r in health.reasons) or "none"
        lines += [
            f"{health.ready}/{health.total} pods ready, {health.restarts} restarts; reasons: {reasons}.",
            "",
        ]
        groups = [("revision", g) for g in health.by_revision] + [("node", g) for g in health.by_node]
        if groups:
            lines += _table(
                ["Group", "Ready", "Restarts", "Reasons"],
                [
                    [
                        f"{kind} {g.key}",
                        f"{g.ready}/{g.total}",
                        g.restarts,
                        ", ".join(f"{r.reason} x{r.count}" for r in g.reasons),
                    ]
                    for kind, g in groups
                ],
            )
            lines.append("")
    if evidence.metrics:
        lines += _metrics(evidence, scope, hint)
    if evidence.events_by_reason:
        lines += ["### Events", ""]
        lines += _table(
            ["Reason", "Type", "Count", "First seen", "Sample"],
            [
                [e.reason, e.type, e.count, _time(e.first_seen), e.sample_message]
                for e in evidence.events_by_reason
            ],
        )
        lines.append("")
    if evidence.config_changes:
        lines += ["### Configuration changes", ""]
        lines += _table(
            ["Object", "Changed", "Referenced", "Summary"],
            [
                [
                    f"{c.object.kind}/{c.object.name}",
                    _time(c.changed_at),
                    "yes" if c.referenced else "",
                    c.summary,
                ]
                for c in evidence.config_changes
            ],
        )
        lines.append("")
    if evidence.log_signatures:
        lines += ["### Log error signatures", ""]
        lines += _table(
            ["Signature", "Count", "Pods", "Revision", "First seen"],
            [
                [s.signature, s.count, s.pods, "" if s.revision is None else s.revision, _time(s.first_seen)]
                for s in evidence.log_signatures
            ],
        )
        lines.append("")
    if evidence.nodes:
        lines += ["### Nodes", ""]
        lines += _table(
            ["Node", "Ready", "Cordoned", "Pods", "Problems"],
            [
                [
                    n.name,
                    NO_DATA if n.ready is None else ("yes" if n.ready else "no"),
                    "yes" if n.unschedulable else "",
                    n.pods,
                    ", ".join(n.problems),
                ]
                for n in evidence.nodes
            ],
        )
        lines.append("")
    return lines or ["No evidence was recorded."]


def _mitigation(m: Mitigation) -> list[str]:
    status = m.status
    name = m.metadata.name or "(unnamed)"
    lines = [f"### {name}: {m.spec.action.value} on {m.spec.target.display()}", ""]
    if status is None:
        return [*lines, "No status recorded.", ""]
    facts = [
        f"- Phase: {status.phase.value if status.phase else NO_DATA}",
        f"- Requested by: {status.requested_by or NO_DATA}",
    ]
    if status.policy is not None:
        rule = f" ({status.policy.policy or 'no policy'} {status.policy.rule or ''})".rstrip()
        facts.append(f"- Policy: {status.policy.decision.value}{rule}")
    if status.plan is not None and status.plan.summary:
        facts.append(f"- Change: {status.plan.summary}")
    if m.spec.dry_run:
        facts.append("- Dry run: nothing was changed")
    lines += [*facts, ""]
    verdict = status.verdict
    if verdict is not None:
        lines += [
            f"Verdict: **{verdict.result.value}** after {verdict.checks} checks "
            f"({verdict.failed_checks} failed) - {verdict.reason}",
            "",
        ]
        if verdict.numbers:
            lines += _table(
                ["Signal", "Baseline", "Observed", "Threshold", "Test"],
                [
                    [n.signal, _num(n.baseline), _num(n.observed), _num(n.threshold), n.test]
                    for n in verdict.numbers
                ],
            )
            lines.append("")
    if status.drift is not None:
        lines += [
            f"Drift: the target was changed by {status.drift.by or 'someone else'} after Stanch acted.",
            "",
        ]
    return lines


def follow_ups(incident: Incident, mitigations: Sequence[Mitigation] = ()) -> list[str]:
    """Action items derived from what was found: alerts, guards, process fixes, data gaps."""
    status = incident.status
    target = incident.spec.target.display()
    out = [f"Add an alert on the symptom of {target} (see the suggested PrometheusRule)."]
    top = status.hypotheses[0] if status and status.hypotheses else None
    if top is not None and top.confidence >= 50:
        category = top.category
        if category is HypothesisCategory.RECENT_DEPLOY:
            out.append(
                f"Pin a guard on error_ratio for rollouts of {target} (canary, or a Mitigation policy that "
                "rolls back automatically) so a bad revision is stopped before it reaches every pod."
            )
        elif category is HypothesisCategory.CONFIG_CHANGE:
            out.append(
                "Make configuration changes go through the same rollout as code (immutable, versioned "
                "ConfigMaps referenced by the pod template) so a rollback restores them."
            )
        elif category is HypothesisCategory.TRAFFIC_CHANGE:
            out.append(f"Review capacity of {target}: HPA limits, load tests at the observed peak.")
        elif category is HypothesisCategory.RESOURCE_EXHAUSTION:
            out.append(f"Right-size the memory/CPU limits of {target} and alert on usage vs limit.")
        elif category is HypothesisCategory.NODE_INFRASTRUCTURE:
            out.append(
                "Investigate the node named in the top hypothesis; spread pods with topology constraints."
            )
        elif category is HypothesisCategory.DEPENDENCY:
            out.append("Add timeouts, retries with budgets and a circuit breaker for the failing dependency.")
        elif category is HypothesisCategory.CREDENTIAL_EXPIRY:
            out.append("Alert on certificate and credential expiry well ahead of time; automate rotation.")
        elif category is HypothesisCategory.CAPACITY:
            out.append("Review cluster capacity and namespace quotas against the workload's requests.")
    else:
        out.append("No confident cause was found: write down what the root cause turned out to be.")
    for m in mitigations:
        verdict = m.status.verdict if m.status else None
        if verdict is not None and verdict.result in (VerdictResult.WORSE, VerdictResult.NO_DATA):
            ended = f"Mitigation {m.metadata.name or ''} ended {verdict.result.value}"
            out.append(f"{ended}: review why it did not help.")
    conditions = status.conditions if status else []
    for condition in conditions:
        if condition.status is not ConditionStatus.TRUE:
            continue
        if condition.type == "NoMetrics":
            out.append(
                "Make the error-ratio and latency signals available: they were missing during the incident."
            )
        elif condition.type == "PartialEvidence":
            out.append(f"Fix evidence collection: {condition.message}.")
    return out


def render_markdown(incident: Incident, mitigations: Sequence[Mitigation] = (), *, now: datetime) -> str:
    """The post-incident document as Markdown."""
    status = incident.status
    spec = incident.spec
    name = incident.metadata.name or "incident"
    scope = status.scope if status else None
    lines = [f"# Post-incident report: {name}", ""]
    lines += [
        "## Summary",
        "",
        f"- Target: {spec.target.display()}",
        f"- Severity: {spec.severity.value}",
        f"- Summary: {spec.summary or NO_DATA}",
        f"- Phase: {status.phase.value if status and status.phase else NO_DATA}"
        + (" (resolved)" if spec.resolved else ""),
        f"- Onset: {_time(scope.onset if scope else None)}"
        + (f" ({_onset_method(scope.onset_source)})" if scope and scope.onset_source else ""),
        f"- Trend at last refresh: {scope.trend.value if scope else NO_DATA}",
        f"- Most likely cause: {status.top_hypothesis if status and status.top_hypothesis else 'unknown'}",
        f"- Report written: {_time(now)}",
        "",
        "## Impact",
        "",
        *(_impact(scope.impact) if scope else ["No impact was recorded."]),
        "",
        "## Timeline",
        "",
        *_timeline(status.timeline if status else []),
        "",
        "## Hypotheses",
        "",
    ]
    hypotheses = status.hypotheses if status else []
    for i, h in enumerate(hypotheses, 1):
        lines += _hypothesis(i, h)
    if not hypotheses:
        lines += ["No hypotheses were recorded.", ""]
    lines += [
        "## Evidence",
        "",
        *(
            _evidence(status.evidence, scope, start_hint(incident))
            if status and status.evidence
            else ["None."]
        ),
        "",
    ]
    lines += ["## Mitigations", ""]
    for m in mitigations:
        lines += _mitigation(m)
    known = {m.metadata.name for m in mitigations}
    listed = [m for m in (status.mitigations if status else []) if m.name not in known]
    if listed:
        lines += _table(
            ["Name", "Action", "Phase", "Verdict", "By"],
            [
                [
                    m.name + (" (suggested)" if m.suggested else ""),
                    m.action.value,
                    m.phase.value if m.phase else NO_DATA,
                    m.verdict.value if m.verdict else NO_DATA,
                    m.created_by or NO_DATA,
                ]
                for m in listed
            ],
        )
        lines.append("")
    if not mitigations and not listed:
        lines += ["No mitigation was applied.", ""]
    lines += ["## Follow-ups", "", *[f"- [ ] {item}" for item in follow_ups(incident, mitigations)], ""]
    gaps = [
        c
        for c in (status.conditions if status else [])
        # SymptomDetected=True is the incident itself, not a gap in the data.
        if c.status is ConditionStatus.TRUE and c.type not in ("Investigated", "SymptomDetected")
    ]
    if gaps:
        lines += ["## Data gaps", "", *[f"- {c.type}: {c.message}" for c in gaps], ""]
    # Reports are shared widely (tickets, wikis): the text redaction is the last net, after the
    # values were already left out at the source (Incident and Mitigation status).
    return redact_text("\n".join(lines))
