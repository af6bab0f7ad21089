"""Types shared by all three resources: names, durations, targets, conditions and signals (the guard
built on them is in :mod:`stanch.core.models.guard`)."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints

from stanch.core.models.base import PRESERVE_KEY, Capped, StanchModel

# --- strings ------------------------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
"""A Kubernetes object name (DNS-1123 subdomain)."""
NamespaceName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A namespace name (DNS-1123 label)."""
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A Stanch-local name (freeze window): lowercase DNS-1123 label."""
SIGNAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SignalName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=SIGNAL_NAME_PATTERN)]
"""A signal template name, snake_case like the built-in templates of :mod:`stanch.core.investigation.signals`
(``error_ratio``, ``latency_p99``)."""
ShortText = Annotated[str, StringConstraints(max_length=256)]
Text = Annotated[str, StringConstraints(max_length=1024)]
LongText = Annotated[str, StringConstraints(max_length=4096)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=512)]

# --- durations ----------------------------------------------------------------------------------

DURATION_PATTERN = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$"
Duration = Annotated[str, StringConstraints(min_length=2, max_length=20, pattern=DURATION_PATTERN)]
"""A duration written like ``30s``, ``5m`` or ``1h30m`` (hours, minutes, seconds, in that order).

A strict subset of Go's ``time.ParseDuration`` syntax, so CEL's ``duration()`` accepts it too.
"""

_DURATION_RE = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """Parse a :data:`Duration` string (``"1h30m"``) into a ``timedelta``; ``ValueError`` if malformed."""
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None or len(text) < 2:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m")
    hours, minutes, seconds = (int(g[:-1]) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of :func:`parse_duration` for whole seconds (``timedelta(minutes=90)`` → ``1h30m``)."""
    total = int(delta.total_seconds())
    if total < 0:
        raise ValueError("negative durations are not representable")
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = (
        (f"{hours}h" if hours else "")
        + (f"{minutes}m" if minutes else "")
        + (f"{seconds}s" if seconds else "")
    )
    return out or "0s"


# --- targets and references --------------------------------------------------------------------


class TargetKind(StrEnum):
    """Workload kinds Stanch can investigate and mitigate. StatefulSet is planned, not yet supported."""

    DEPLOYMENT = "Deployment"


class TargetRef(StanchModel):
    """The workload an Incident is about or a Mitigation acts on."""

    kind: TargetKind = TargetKind.DEPLOYMENT
    """Kind of the workload."""
    name: ObjectName
    """Name of the workload."""
    namespace: NamespaceName | None = None
    """Namespace of the workload: only the referring object's own, best left unset. A Mitigation or
    Incident acts and reads only in its own namespace; naming another is refused at admission (the
    ValidatingAdmissionPolicy ``stanch-target-in-own-namespace``) and by the operator."""

    def display(self) -> str:
        """Short human form used in printer columns and messages, e.g. ``Deployment/checkout``."""
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.value}/{prefix}{self.name}"


class ObjectRef(StanchModel):
    """A reference to any Kubernetes object mentioned in evidence or the timeline."""

    kind: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Kind of the object, e.g. ``ReplicaSet`` or ``ConfigMap``."""
    name: ObjectName
    """Name of the object."""
    namespace: NamespaceName | None = None
    """Namespace of the object; omitted for cluster-scoped objects such as Nodes."""
    api_version: Annotated[str, StringConstraints(max_length=128)] | None = None
    """API version of the object, when it is not obvious from the kind."""
    uid: Annotated[str, StringConstraints(max_length=64)] | None = None
    """UID of the object at the time it was observed."""


# --- conditions ---------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    """Kubernetes condition status values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StanchModel):
    """A Kubernetes-style condition (same shape as ``metav1.Condition``)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)]
    """Type of the condition in CamelCase, e.g. ``Ready`` or ``EvidencePartial``."""
    status: ConditionStatus
    """Whether the condition holds."""
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """Machine-readable CamelCase reason for the last transition."""
    message: Text = ""
    """Human-readable details of the last transition."""
    last_transition_time: AwareDatetime
    """When the status last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` the condition was computed from."""


CONDITIONS_MAX = 16
"""Same bound as :data:`stanch.core.conditions.MAX_CONDITIONS` (which builds conditions as dicts)."""
Conditions = Annotated[list[Condition], Capped(CONDITIONS_MAX, keep="first")]


def preserve_unknown() -> dict[str, Any]:
    """``json_schema_extra`` for a free-form object (``x-kubernetes-preserve-unknown-fields``).

    Only for Kopf's own state and for snapshots of arbitrary Kubernetes objects; the generator refuses
    any untyped object that does not carry this marker.
    """
    return {PRESERVE_KEY: True}


# --- signals and guards -------------------------------------------------------------------------


class SignalRef(StanchModel):
    """A reference to a named signal template from the matching MitigationPolicy.

    Users never write PromQL in an Incident or Mitigation: they name a template, and Stanch fills its
    placeholders with escaped values.
    """

    name: SignalName
    """Name of the signal template, e.g. ``error_ratio`` or ``latency_p99``."""


class SignalKind(StrEnum):
    """What a signal measures; drives how onset detection and guard verdicts read it."""

    ERROR_RATIO = "ErrorRatio"
    LATENCY = "Latency"
    THROUGHPUT = "Throughput"
    SATURATION = "Saturation"
    RESTARTS = "Restarts"


class Direction(StrEnum):
    """Which way is healthy for a signal."""

    LOWER_IS_BETTER = "LowerIsBetter"
    HIGHER_IS_BETTER = "HigherIsBetter"


PLACEHOLDERS = ("namespace", "workload", "revision", "pod", "node")
"""Placeholders allowed in a signal template query."""
PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-zA-Z_]+)\s*\}\}")
"""Matches a ``{{placeholder}}`` in a signal template query."""


class SignalTemplate(StanchModel):
    """A named PromQL template. Placeholders ``{{namespace}}``, ``{{workload}}``, ``{{revision}}``,
    ``{{pod}}`` and ``{{node}}`` are replaced by escaped label values before the query runs."""

    name: SignalName
    """Name the template is referred to by."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """PromQL with placeholders, e.g.
    ``sum(rate(http_requests_total{namespace="{{namespace}}",code=~"5.."}[1m]))``."""
    kind: SignalKind
    """What the signal measures."""
    direction: Direction = Direction.LOWER_IS_BETTER
    """Which way is healthy."""
    threshold: Annotated[float, Field(ge=0)] | None = None
    """Absolute SLO gate: a value beyond it fails a guard check regardless of the baseline
    (e.g. 0.05 for a 5 % error ratio)."""
    unit: Annotated[str, StringConstraints(max_length=32)] | None = None
    """Unit for display, e.g. ``ratio``, ``seconds``, ``rps``."""
    description: ShortText | None = None
    """What the query measures, for humans."""
