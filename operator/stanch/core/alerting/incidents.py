"""One Incident per alert group: its name, its body, and what a notification changes in it.

Deduplication is by Alertmanager's group key. Every Incident filed from a group carries the label
``stanch.dev/alert-group`` (a hash of the key); the receiver lists them and :func:`plan` decides:

- an open Incident of the group exists: record the notification's alerts in it (a bounded list),
  raise its severity if a worse alert joined, and mark it resolved when the group resolved;
- none is open and an alert fires that no Incident of the group has recorded: file a new Incident,
  the group's next *episode* (``<alertname>-<hash>``, then ``-2``, ``-3`` …), so a group that fires
  again after its Incident was resolved gets a fresh investigation and the old one stays the record;
- otherwise (a late retry, a resolved notification for an Incident already closed by hand): only
  refresh the records of the latest Incident, or nothing.

Names are deterministic, so Alertmanager's retries and two replicas receiving the same notification
converge: a create that loses the race gets AlreadyExists and plans again, now as an update.
The merge is order-independent: a record keyed by (fingerprint, startsAt) only moves from firing
to resolved, and ``spec.resolved`` is never cleared by the receiver.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stanch import GROUP, VERSION
from stanch.core.alerting.mapping import LabelMapping, Refusal, Target, severity_of, worst
from stanch.core.alerting.payload import WebhookAlert, WebhookPayload
from stanch.core.models.common import TargetRef
from stanch.core.models.incident import (
    ALERT_LABELS_MAX,
    ALERTS_MAX,
    AlertGroup,
    AlertRecord,
    AlertState,
    IncidentSpec,
    Severity,
)

GROUP_LABEL = f"{GROUP}/alert-group"
"""On every Incident filed from an alert group: a hash of the group key (label values are short)."""
EPISODE_LABEL = f"{GROUP}/alert-episode"
"""The how-many-th Incident of its group this is: 1, 2, …"""
SOURCE_LABEL = f"{GROUP}/source"
SOURCE = "alertmanager"
_VALUE_MAX = 256
_SUMMARY_MAX = 1024
_SLUG_MAX = 40


def group_id(group_key: str) -> str:
    """A stable, label-safe id of a group key (16 hex digits of its SHA-256)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_SLUG_MAX].strip("-")
    return slug or "alert"


def incident_name(payload: WebhookPayload, episode: int) -> str:
    """``<alertname>-<group hash>[-<episode>]``: readable in ``kubectl get incidents``, a valid
    object name whatever the labels hold, and the same for every delivery of the group (group
    labels are fixed by the group key)."""
    base = f"{_slug(payload.group_labels.get('alertname', ''))}-{group_id(payload.group_key)}"
    return base if episode <= 1 else f"{base}-{episode}"


@dataclass(frozen=True)
class Existing:
    """An Incident of the group as listed: enough to plan an update with a precondition."""

    name: str
    resource_version: str
    episode: int
    spec: IncidentSpec


@dataclass(frozen=True)
class Create:
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Update:
    name: str
    resource_version: str
    patch: dict[str, Any]
    """A merge patch of the Incident (its spec only)."""
    added: int
    """Alerts the Incident had not recorded before."""
    resolves: bool
    """This update marks the Incident resolved."""


@dataclass(frozen=True)
class Unchanged:
    name: str | None
    reason: str


Plan = Create | Update | Unchanged


def existing_from(obj: dict[str, Any]) -> Existing | None:
    """An Incident object as listed, or None when it is not one the receiver can plan on (its spec
    does not parse: it was written by hand after the receiver filed it)."""
    meta = obj.get("metadata") or {}
    try:
        spec = IncidentSpec.model_validate(obj.get("spec") or {})
    except ValueError:
        return None
    raw = str((meta.get("labels") or {}).get(EPISODE_LABEL, "1"))
    episode = int(raw) if raw.isdigit() else 1
    return Existing(str(meta.get("name", "")), str(meta.get("resourceVersion", "")), episode, spec)


def _labels(alert: WebhookAlert, mapping: LabelMapping) -> dict[str, str]:
    # The labels that say what and where first, so a cut keeps them.
    first = ("alertname", *mapping.namespace_labels, *mapping.workload_labels, mapping.severity_label)
    ordered = [k for k in first if k in alert.labels] + sorted(k for k in alert.labels if k not in first)
    return {k: alert.labels[k][:_VALUE_MAX] for k in ordered[:ALERT_LABELS_MAX]}


def record(alert: WebhookAlert, mapping: LabelMapping) -> AlertRecord:
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    return AlertRecord(
        fingerprint=alert.fingerprint,
        status=AlertState(alert.status),
        starts_at=alert.starts_at,
        ends_at=alert.ended if alert.status == "resolved" else None,
        labels=_labels(alert, mapping),
        summary=summary[:_SUMMARY_MAX],
        generator_url=alert.generator_url[:1024],
    )


def _key(r: AlertRecord) -> tuple[str, str]:
    return r.fingerprint, r.starts_at.isoformat()


def merge(old: Sequence[AlertRecord], new: Sequence[AlertRecord]) -> list[AlertRecord]:
    """Records by (fingerprint, startsAt); a resolved report wins over a firing one whatever the
    order they arrive in, so a late retry of an older notification cannot reopen an alert."""
    by_key = {_key(r): r for r in old}
    for r in new:
        known = by_key.get(_key(r))
        if known is None or not (known.status is AlertState.RESOLVED and r.status is AlertState.FIRING):
            by_key[_key(r)] = r
    ordered = sorted(by_key.values(), key=lambda r: (r.starts_at, r.fingerprint))
    return ordered[-ALERTS_MAX:]


def summary_of(payload: WebhookPayload) -> str:
    alertname = payload.group_labels.get("alertname") or payload.common_labels.get("alertname") or ""
    text = payload.common_annotations.get("summary") or payload.common_annotations.get("description") or ""
    if not text:
        firing = [a for a in payload.alerts if a.status == "firing"] or list(payload.alerts)
        text = firing[0].annotations.get("summary", "") if firing else ""
    line = f"{alertname}: {text}" if alertname and text else (alertname or text or "alert from Alertmanager")
    return " ".join(line.split())[:_SUMMARY_MAX]


def _group(payload: WebhookPayload, alerts: list[AlertRecord]) -> AlertGroup:
    return AlertGroup(
        group_key=payload.group_key,
        receiver=payload.receiver,
        group_labels={k: v[:_VALUE_MAX] for k, v in sorted(payload.group_labels.items())[:ALERT_LABELS_MAX]},
        external_url=payload.external_url,
        alerts=alerts,
        truncated_alerts=payload.truncated_alerts,
    )


def _severity(payload: WebhookPayload, mapping: LabelMapping) -> Severity | None:
    firing = [a for a in payload.alerts if a.status == "firing"]
    return worst([severity_of(a.labels, mapping) for a in firing])


def plan(
    payload: WebhookPayload, target: Target, existing: Sequence[Existing], mapping: LabelMapping
) -> Plan | Refusal:
    """What this notification changes, given the group's Incidents in the target's namespace."""
    incoming = [record(a, mapping) for a in payload.alerts]
    current = max((e for e in existing if not e.spec.resolved), key=lambda e: e.episode, default=None)
    if current is None:
        known = {_key(r) for e in existing if e.spec.alertmanager for r in e.spec.alertmanager.alerts}
        anew = [r for r in incoming if r.status is AlertState.FIRING and _key(r) not in known]
        if anew:
            episode = max((e.episode for e in existing), default=0) + 1
            return _create(payload, target, incoming, episode, mapping)
        latest = max(existing, key=lambda e: e.episode, default=None)
        recorded = (
            {_key(r) for r in latest.spec.alertmanager.alerts}
            if latest and latest.spec.alertmanager
            else set()
        )
        if latest is None or not any(_key(r) in recorded for r in incoming):
            return Unchanged(None, "no open Incident of the group and no alert that fires anew")
        current = latest
    if current.spec.target.name != target.name:
        return Refusal(
            409,
            "TargetChanged",
            f"the group's Incident {current.name} is about Deployment {current.spec.target.name}, this"
            f" notification about {target.name}: group the route by the workload label so that a group"
            " keeps one target",
        )
    return _update(payload, current, incoming, mapping)


def _create(
    payload: WebhookPayload, target: Target, alerts: list[AlertRecord], episode: int, mapping: LabelMapping
) -> Create:
    starts = [r.starts_at for r in alerts if r.status is AlertState.FIRING] or [r.starts_at for r in alerts]
    spec = IncidentSpec(
        target=TargetRef(name=target.name),
        started_at=min(starts),
        severity=_severity(payload, mapping) or Severity.SEV3,
        summary=summary_of(payload),
        alertmanager=_group(payload, merge([], alerts)),
    )
    name = incident_name(payload, episode)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Incident",
        "metadata": {
            "name": name,
            "namespace": target.namespace,
            "labels": {
                GROUP_LABEL: group_id(payload.group_key),
                EPISODE_LABEL: str(episode),
                SOURCE_LABEL: SOURCE,
            },
        },
        "spec": spec.to_dict(),
    }
    return Create(name, body)


def _update(
    payload: WebhookPayload, current: Existing, incoming: list[AlertRecord], mapping: LabelMapping
) -> Plan:
    old = current.spec
    old_alerts = old.alertmanager.alerts if old.alertmanager else []
    alerts = merge(old_alerts, incoming)
    group = _group(payload, alerts)
    severity = worst([old.severity, _severity(payload, mapping)]) or old.severity
    resolves = not old.resolved and payload.status == "resolved"
    if group == old.alertmanager and severity == old.severity and not resolves:
        return Unchanged(current.name, "the Incident already records this notification")
    spec: dict[str, Any] = {"alertmanager": group.to_dict()}
    if severity != old.severity:
        spec["severity"] = severity.value
    if resolves:
        spec["resolved"] = True
    known = {_key(r) for r in old_alerts}
    added = sum(1 for r in incoming if _key(r) not in known)
    return Update(current.name, current.resource_version, {"spec": spec}, added, resolves)
