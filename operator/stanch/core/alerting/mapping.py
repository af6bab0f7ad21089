"""Which workload an alert group is about, and whether this operator may file an Incident for it.

An alert names its workload through labels: by default ``namespace`` and then the first of
``deployment`` or ``workload`` that is set (kube-state-metrics and most recording rules carry
``namespace`` and ``deployment``). The label names are settings (``--alertmanager-namespace-labels``,
``--alertmanager-workload-labels``) because every team's rules label workloads their own way.

Every alert of a group must name the same workload: one Incident has one target. A route that
groups by ``namespace`` and ``deployment`` (docs/alertmanager.md) always satisfies that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from stanch.core.alerting.payload import WebhookAlert, WebhookPayload
from stanch.core.models.common import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from stanch.core.models.incident import Severity

DEFAULT_NAMESPACE_LABELS = ("namespace",)
DEFAULT_WORKLOAD_LABELS = ("deployment", "workload")
DEFAULT_SEVERITY_LABEL = "severity"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAMESPACE = re.compile(DNS_LABEL_PATTERN)
_NAME = re.compile(DNS_SUBDOMAIN_PATTERN)

# Alertmanager severities as teams write them, onto SEV1 (worst) .. SEV4. An unknown value is SEV3,
# the Incident's default, rather than a refusal: a severity label is a hint, not an address.
_SEVERITIES: dict[str, Severity] = {
    **dict.fromkeys(("critical", "page", "emergency", "fatal", "p1", "sev1", "1"), Severity.SEV1),
    **dict.fromkeys(("high", "error", "major", "p2", "sev2", "2"), Severity.SEV2),
    **dict.fromkeys(("warning", "warn", "medium", "p3", "sev3", "3"), Severity.SEV3),
    **dict.fromkeys(("info", "low", "minor", "none", "notice", "p4", "sev4", "4"), Severity.SEV4),
}


@dataclass(frozen=True)
class LabelMapping:
    """Label names that address a workload, each list tried in order."""

    namespace_labels: tuple[str, ...] = DEFAULT_NAMESPACE_LABELS
    workload_labels: tuple[str, ...] = DEFAULT_WORKLOAD_LABELS
    severity_label: str = DEFAULT_SEVERITY_LABEL


@dataclass(frozen=True)
class Target:
    namespace: str
    name: str

    def display(self) -> str:
        return f"Deployment/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Refusal:
    """Why a notification is refused: the HTTP status, a machine-readable reason, and a message
    that names the fix (Alertmanager shows it in its logs)."""

    status: int
    reason: str
    message: str


def parse_label_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"namespace,exported_namespace"`` → a tuple; ValueError naming the bad label name."""
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [n.strip() for n in value]
    names = [n for n in names if n]
    if not names:
        raise ValueError("names no label; give one or more Prometheus label names, e.g. namespace")
    for name in names:
        if not LABEL_NAME.match(name):
            raise ValueError(f"{name!r} is not a Prometheus label name (letters, digits and _)")
    return tuple(dict.fromkeys(names))


def _first(labels: dict[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = labels.get(name, "").strip()
        if value:
            return value
    return None


def alert_target(alert: WebhookAlert, mapping: LabelMapping) -> Target | Refusal:
    namespace = _first(alert.labels, mapping.namespace_labels)
    name = _first(alert.labels, mapping.workload_labels)
    alertname = alert.labels.get("alertname", alert.fingerprint)
    if namespace is None or name is None:
        missing = " and no ".join(
            f"{what} (none of the labels {', '.join(labels)} is set)"
            for value, what, labels in (
                (namespace, "namespace", mapping.namespace_labels),
                (name, "workload", mapping.workload_labels),
            )
            if value is None
        )
        return Refusal(
            422,
            "NoTarget",
            f"alert {alertname!r} names no {missing}: Stanch cannot tell which workload it is about;"
            " label the alerting rule, or set --alertmanager-namespace-labels /"
            " --alertmanager-workload-labels to the labels your rules carry",
        )
    if len(namespace) > 63 or not _NAMESPACE.match(namespace):
        return Refusal(
            422, "InvalidTarget", f"alert {alertname!r}: {namespace[:80]!r} is not a namespace name"
        )
    if len(name) > 253 or not _NAME.match(name):
        return Refusal(422, "InvalidTarget", f"alert {alertname!r}: {name[:80]!r} is not a Deployment name")
    return Target(namespace, name)


def group_target(payload: WebhookPayload, mapping: LabelMapping) -> Target | Refusal:
    """The one workload every alert of the group names, or why there is none."""
    targets: dict[Target, str] = {}
    for alert in payload.alerts:
        target = alert_target(alert, mapping)
        if isinstance(target, Refusal):
            return target
        targets.setdefault(target, alert.labels.get("alertname", alert.fingerprint))
    if len(targets) > 1:
        named = ", ".join(f"{t.namespace}/{t.name}" for t in list(targets)[:4])
        return Refusal(
            422,
            "AmbiguousTarget",
            f"the group's alerts name {len(targets)} workloads ({named}); one Incident has one target:"
            " group the route by the namespace and workload labels (group_by: [alertname, namespace,"
            " deployment])",
        )
    return next(iter(targets))


def watched(namespace: str, *, all_namespaces: bool, patterns: Sequence[str]) -> bool:
    """Whether the operator serves ``namespace``: with ``--all-namespaces`` every one; else one of
    the ``--namespace`` patterns must match it (Kopf's rules: a glob includes, ``!glob`` excludes,
    a leading exclusion implies ``*`` before it)."""
    if all_namespaces:
        return True
    return any(_matches(namespace, pattern) for pattern in patterns)


def _matches(namespace: str, pattern: str) -> bool:
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    if not globs:
        return False
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    first = matched = fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatchcase(namespace, glob[1:])
        else:
            matched = matched or (first and fnmatchcase(namespace, glob))
    return matched


def severity_of(labels: dict[str, str], mapping: LabelMapping) -> Severity | None:
    """The Incident severity an alert's severity label means, None when it has none."""
    raw = labels.get(mapping.severity_label, "").strip().lower()
    if not raw:
        return None
    return _SEVERITIES.get(raw, Severity.SEV3)


def worst(severities: Sequence[Severity | None]) -> Severity | None:
    known = [s for s in severities if s is not None]
    return min(known, key=lambda s: s.value) if known else None
