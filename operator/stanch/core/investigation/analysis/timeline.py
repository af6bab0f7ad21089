"""The merged timeline: deploys, config changes, event groups, node problems, scaling, traffic,
mitigations, the onset itself — one list, oldest first, de-duplicated and bounded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stanch.core.investigation.analysis.context import clip, pct
from stanch.core.investigation.analysis.correlation import SCALING_REASONS, Correlated, describe_offset
from stanch.core.investigation.analysis.onset import find_shift, floor_for
from stanch.core.investigation.analysis.scope import Onset
from stanch.core.investigation.analysis.series import ERROR_RATIO, THROUGHPUT, points_of
from stanch.core.models import (
    TIMELINE_MAX,
    Evidence,
    IncidentMitigation,
    IncidentSpec,
    ObjectRef,
    OnsetSource,
    TimelineEntry,
    TimelineKind,
)

NODE_REASONS = frozenset({"NodeNotReady", "NodeNotSchedulable", "TaintManagerEviction", "Evicted"})
LOG_SIGNATURES_SHOWN = 3
_KIND_ORDER = {k: i for i, k in enumerate(TimelineKind)}


@dataclass(frozen=True)
class TimelineInput:
    spec: IncidentSpec
    evidence: Evidence
    onset: Onset
    correlated: Sequence[Correlated]
    mitigations: Sequence[IncidentMitigation]
    created_at: datetime
    now: datetime
    lookback: timedelta


def _offset(time: datetime, onset: datetime) -> str:
    delta = time - onset
    sign = "-" if delta.total_seconds() < 0 else "+"
    return sign + describe_offset(delta)


def _entry(
    time: datetime,
    kind: TimelineKind,
    summary: str,
    onset: datetime,
    obj: ObjectRef | None = None,
    **details: str,
) -> TimelineEntry:
    return TimelineEntry(
        time=time,
        kind=kind,
        summary=clip(summary),
        object=obj,
        details={k: clip(v) for k, v in {**details, "offsetFromOnset": _offset(time, onset)}.items()},
    )


def _onset_entry(data: TimelineInput) -> TimelineEntry:
    onset = data.onset
    if onset.source is OnsetSource.CHANGE_POINT and onset.shift is not None:
        shift = onset.shift
        levels = (
            f"{pct(shift.baseline)} → {pct(shift.level)}"
            if onset.signal == ERROR_RATIO
            else f"{shift.baseline:.3g} → {shift.level:.3g}"
        )
        summary = f"onset: {onset.signal} rose {levels} (change point)"
    elif onset.source is OnsetSource.CHANGE_POINT:
        summary = "onset: a change point in the signal, as found before the mitigation"
    elif onset.source is OnsetSource.STARTED_AT:
        summary = "onset: the reported start (no change point found in the signal)"
    else:
        summary = "onset: the Incident's creation (no change point found, no reported start)"
    return _entry(onset.time, TimelineKind.ONSET, summary, onset.time, source=onset.source.value)


def _change_entries(data: TimelineInput) -> list[TimelineEntry]:
    out = []
    for corr in data.correlated:
        change = corr.change
        details = {}
        if change.revision is not None:
            details["revision"] = str(change.revision.revision)
            if change.revision.change_cause:
                details["changeCause"] = change.revision.change_cause
            if change.revision.changed_by:
                details["changedBy"] = change.revision.changed_by
        out.append(
            _entry(change.time, change.kind, change.describe(), data.onset.time, change.object, **details)
        )
    return out


def _event_entries(data: TimelineInput) -> list[TimelineEntry]:
    out = []
    for group in data.evidence.events_by_reason:
        if group.first_seen is None or group.reason in SCALING_REASONS:
            continue  # scaling events are already changes
        kind = TimelineKind.NODE_CONDITION if group.reason in NODE_REASONS else TimelineKind.POD_EVENT
        summary = f"{group.reason} x{group.count}"
        if group.objects:
            summary += f" on {group.objects} object(s)"
        if group.sample_message:
            summary += f": {group.sample_message}"
        out.append(_entry(group.first_seen, kind, summary, data.onset.time, type=group.type))
    return out


def _node_entries(data: TimelineInput) -> list[TimelineEntry]:
    # Nodes carry no transition time in the evidence, so their problems are placed when observed.
    out = []
    for node in data.evidence.nodes:
        problems = (["NotReady"] if node.ready is False else []) + list(node.problems)
        if node.unschedulable:
            problems.append("cordoned")
        if problems:
            out.append(
                _entry(
                    data.now,
                    TimelineKind.NODE_CONDITION,
                    f"node {node.name} ({node.pods} pod(s)): {', '.join(problems)} (observed now)",
                    data.onset.time,
                    ObjectRef(kind="Node", name=node.name),
                )
            )
    return out


def _traffic_entries(data: TimelineInput) -> list[TimelineEntry]:
    points = points_of(data.evidence, THROUGHPUT)
    shift = find_shift(points, floor_for(THROUGHPUT))
    if shift is None:
        return []
    summary = f"traffic rose {shift.baseline:.3g} → {shift.level:.3g} req/s"
    return [_entry(shift.start_time, TimelineKind.TRAFFIC, summary, data.onset.time)]


def _log_entries(data: TimelineInput) -> list[TimelineEntry]:
    out = []
    for sig in data.evidence.log_signatures[:LOG_SIGNATURES_SHOWN]:
        if sig.first_seen is None:
            continue
        where = f" (revision {sig.revision})" if sig.revision is not None else ""
        out.append(
            _entry(
                sig.first_seen,
                TimelineKind.NOTE,
                f"first log error{where}: {sig.signature} (x{sig.count})",
                data.onset.time,
            )
        )
    return out


def _mitigation_entries(data: TimelineInput) -> list[TimelineEntry]:
    out = []
    for m in data.mitigations:
        if m.created_at is None:
            continue
        state = m.phase.value if m.phase else "Pending"
        if m.verdict is not None:
            state += f", verdict {m.verdict.value}"
        kind = "suggested" if m.suggested else "mitigation"
        who = f" by {m.created_by}" if m.created_by else ""
        out.append(
            _entry(
                m.created_at,
                TimelineKind.MITIGATION,
                f"{kind} {m.name}: {m.action.value}{who} ({state})",
                data.onset.time,
                ObjectRef(kind="Mitigation", name=m.name),
            )
        )
    return out


def _incident_entries(data: TimelineInput) -> list[TimelineEntry]:
    out = [
        _entry(
            data.created_at,
            TimelineKind.ALERT,
            "Incident filed" + (f": {data.spec.summary}" if data.spec.summary else ""),
            data.onset.time,
        )
    ]
    if data.spec.started_at is not None and data.onset.source is not OnsetSource.STARTED_AT:
        out.append(_entry(data.spec.started_at, TimelineKind.NOTE, "reported start", data.onset.time))
    return out + _alert_entries(data)


ALERT_ENTRIES_MAX = 20
"""Alert starts and ends an Incident filed by Alertmanager puts on its timeline (the latest): a
group of many alerts must not push the deploys and events out of the bounded timeline."""


def _alert_entries(data: TimelineInput) -> list[TimelineEntry]:
    """When each of the group's alerts fired and resolved (``spec.alertmanager``, written by the
    receiver), so the timeline says which change came before the page."""
    group = data.spec.alertmanager
    if group is None:
        return []
    out = []
    for alert in group.alerts:
        name = alert.labels.get("alertname", "alert")
        details = {"fingerprint": alert.fingerprint}
        if alert.labels.get("severity"):
            details["severity"] = alert.labels["severity"]
        said = f": {alert.summary}" if alert.summary else ""
        out.append(
            _entry(
                alert.starts_at, TimelineKind.ALERT, f"{name} fired{said}", data.onset.time, None, **details
            )
        )
        if alert.ends_at is not None:
            out.append(
                _entry(
                    alert.ends_at, TimelineKind.ALERT, f"{name} resolved", data.onset.time, None, **details
                )
            )
    out.sort(key=lambda e: e.time)
    return out[-ALERT_ENTRIES_MAX:]


def build_timeline(data: TimelineInput) -> list[TimelineEntry]:
    """Everything from ``lookback`` before the onset to now, oldest first, without duplicates, at
    most :data:`~stanch.core.models.TIMELINE_MAX` entries (the newest are kept)."""
    start = data.onset.time - data.lookback
    entries = [
        _onset_entry(data),
        *_change_entries(data),
        *_event_entries(data),
        *_node_entries(data),
        *_traffic_entries(data),
        *_log_entries(data),
        *_mitigation_entries(data),
        *_incident_entries(data),
    ]
    seen: set[tuple[datetime, TimelineKind, str]] = set()
    unique = []
    for e in entries:
        key = (e.time, e.kind, e.summary)
        if key in seen or not (start <= e.time <= data.now):
            continue
        seen.add(key)
        unique.append(e)
    unique.sort(key=lambda e: (e.time, _KIND_ORDER[e.kind], e.summary))
    return unique[-TIMELINE_MAX:]
