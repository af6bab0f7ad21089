"""``kubectl stanch describe incident NAME``: an Incident as an on-call engineer reads it in a
terminal, top to bottom in the order of the workflow: what hurts (scope and impact), what changed
(timeline), why (hypotheses with evidence for and against), what to do (the suggested mitigation and
the command that creates it), and what is being done (linked Mitigations)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from stanch.core.console.text import NONE, age, one_line, pct, secs, stamp, table
from stanch.core.models import Hypothesis, Incident, Mitigation, TimelineEntry
from stanch.core.redaction import redact_text

TIMELINE_SHOWN = 20
"""The newest entries shown by default; ``--timeline all`` shows every one the status keeps."""


def _field(label: str, value: object) -> str:
    return f"{label + ':':<14}{value}"


def _header(incident: Incident, now: datetime) -> list[str]:
    spec, status, meta = incident.spec, incident.status, incident.metadata
    namespace = spec.target.namespace or meta.namespace
    lines = [
        _field("Name", meta.name),
        _field("Namespace", meta.namespace or NONE),
        _field("Target", f"{spec.target.kind.value} {namespace}/{spec.target.name}"),
        _field("Severity", spec.severity.value),
        _field("Phase", (status.phase.value if status and status.phase else "Pending")),
        _field("Mode", spec.mitigation.mode.value),
    ]
    if spec.summary:
        lines.append(_field("Summary", one_line(redact_text(spec.summary))))
    created = meta.creation_timestamp
    started = spec.started_at or created
    lines.append(_field("Started", f"{stamp(started)} ({age(started, now)} ago)" if started else NONE))
    if status and status.last_refreshed:
        lines.append(
            _field("Refreshed", f"{stamp(status.last_refreshed)} ({age(status.last_refreshed, now)} ago)")
        )
    if spec.resolved:
        lines.append(_field("Resolved", "yes"))
    return lines


def _scope(incident: Incident) -> list[str]:
    scope = incident.status.scope if incident.status else None
    if scope is None:
        return ["Scope:", "  not investigated yet"]
    source = f" ({scope.onset_source.value})" if scope.onset_source else ""
    impact = scope.impact
    lines = [
        "Scope:",
        f"  Onset:  {stamp(scope.onset)}{source}",
        f"  Trend:  {scope.trend.value}",
        "  Impact:",
        *table(
            ["SIGNAL", "BEFORE", "NOW", "PEAK"],
            [
                [
                    "error ratio",
                    pct(impact.error_ratio_before),
                    pct(impact.error_ratio_now),
                    pct(impact.error_ratio_peak),
                ],
                [
                    "latency",
                    secs(impact.latency_before_seconds),
                    secs(impact.latency_now_seconds),
                    secs(impact.latency_peak_seconds),
                ],
            ],
            indent="    ",
        ),
    ]
    if impact.total_pods is not None:
        lines.append(f"  Affected pods: {impact.affected_pods or 0} of {impact.total_pods}")
    return lines


def _timeline(entries: Sequence[TimelineEntry], shown: int | None) -> list[str]:
    if not entries:
        return ["Timeline:", "  nothing recorded yet"]
    kept = list(entries) if shown is None else list(entries)[-shown:]
    title = "Timeline:" if len(kept) == len(entries) else f"Timeline (newest {len(kept)} of {len(entries)}):"
    rows = [
        [
            stamp(e.time),
            str(e.details.get("offsetFromOnset", "")) or "-",
            e.kind.value,
            redact_text(e.summary),
        ]
        for e in kept
    ]
    return [title, *table(["TIME (UTC)", "FROM ONSET", "KIND", "WHAT"], rows, indent="  ")]


def _hypothesis(index: int, h: Hypothesis, incident: Incident) -> list[str]:
    lines = [f"  {index}. {h.category.value} ({h.confidence}%): {one_line(redact_text(h.statement))}"]
    for line in h.supporting:
        lines.append(f"       + {one_line(redact_text(line))}")
    for line in h.contradicting:
        lines.append(f"       - {one_line(redact_text(line))}")
    m = h.suggested_mitigation
    if m is None:
        lines.append("     Suggested: nothing Stanch can apply")
    else:
        summary = f": {one_line(redact_text(m.summary))}" if m.summary else ""
        where = f"{m.target.namespace}/{m.target.name}" if m.target.namespace else m.target.name
        lines.append(f"     Suggested: {m.action.value} {m.target.kind.value} {where}{summary}")
        lines.append(
            f"       kubectl stanch mitigate {incident.metadata.name} -n {incident.metadata.namespace}"
            f" --hypothesis {index}"
        )
    return lines


def _hypotheses(incident: Incident) -> list[str]:
    hypotheses = incident.status.hypotheses if incident.status else []
    if not hypotheses:
        return ["Hypotheses:", "  none yet (+ evidence for, - evidence against)"]
    lines = ["Hypotheses (+ evidence for, - evidence against):"]
    for i, h in enumerate(hypotheses, 1):
        lines += _hypothesis(i, h, incident)
    return lines


def _mitigations(incident: Incident, mitigations: Sequence[Mitigation], now: datetime) -> list[str]:
    listed = incident.status.mitigations if incident.status else []
    live = {m.metadata.name: m for m in mitigations if m.metadata.name}
    names = [m.name for m in listed] + [n for n in live if n not in {m.name for m in listed}]
    if not names:
        return ["Mitigations:", "  none"]
    rows = []
    by_name = {m.name: m for m in listed}
    for name in names:
        entry, obj = by_name.get(name), live.get(name)
        status = obj.status if obj is not None else None
        action = obj.spec.action.value if obj is not None else entry.action.value if entry else NONE
        phase = (
            status.phase.value
            if status and status.phase
            else entry.phase.value
            if entry and entry.phase
            else "Pending"
        )
        verdict = (
            status.verdict.result.value
            if status and status.verdict
            else entry.verdict.value
            if entry and entry.verdict
            else NONE
        )
        dry = obj.spec.dry_run if obj is not None else entry.dry_run if entry else False
        by = status.requested_by if status and status.requested_by else entry.created_by if entry else None
        created = obj.metadata.creation_timestamp if obj is not None else entry.created_at if entry else None
        kind = "suggested" if entry is not None and entry.suggested and obj is None else ""
        rows.append(
            [
                name,
                action + (" (dry run)" if dry else ""),
                kind or phase,
                verdict,
                by or NONE,
                age(created, now),
            ]
        )
    return [
        "Mitigations:",
        *table(["NAME", "ACTION", "PHASE", "VERDICT", "REQUESTED BY", "AGE"], rows, indent="  "),
    ]


def _conditions(incident: Incident) -> list[str]:
    conditions = incident.status.conditions if incident.status else []
    if not conditions:
        return []
    rows = [[c.type, c.status.value, c.reason, redact_text(c.message or "")] for c in conditions]
    return ["Conditions:", *table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows, indent="  ")]


def render_incident(
    incident: Incident,
    mitigations: Sequence[Mitigation] = (),
    *,
    now: datetime,
    timeline: int | None = TIMELINE_SHOWN,
) -> str:
    """The view, one string ending in a newline. ``timeline`` is how many of the newest timeline
    entries to show (None: all). Free text is redacted: an Incident's summary or an evidence line
    may quote what a user pasted."""
    sections = [
        _header(incident, now),
        _scope(incident),
        _timeline(incident.status.timeline if incident.status else [], timeline),
        _hypotheses(incident),
        _mitigations(incident, mitigations, now),
        _conditions(incident),
    ]
    out: list[str] = []
    for section in sections:
        if section:
            out += [*section, ""]
    return "\n".join(out).rstrip("\n") + "\n"
