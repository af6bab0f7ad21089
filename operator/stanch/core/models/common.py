"""Types shared by all three resources: names, durations, targets, conditions, signals and guards."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from stanch.core.models.base import PRESERVE_KEY, Capped, CelRule, StanchModel

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
"""A signal template name, snake_case like the built-in templates of :mod:`stanch.core.signals`
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
    """Namespace of the workload; defaults to the namespace of the referring object."""

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


class NoDataAction(StrEnum):
    """What to do when a guard has no data (design invariant 5: no data is never healthy)."""

    HOLD = "Hold"
    REVERT = "Revert"


class InconclusiveAction(StrEnum):
    """What to do when the bake ends without a clear Healthy or Worse verdict."""

    HOLD = "Hold"
    REVERT = "Revert"
    KEEP = "Keep"


class SuccessCriteria(StanchModel):
    """Ends the bake early as Healthy once a signal is back under target for enough checks."""

    signal: SignalName
    """Name of the signal template to watch."""
    below: Annotated[float, Field(ge=0)]
    """The signal must stay strictly below this value..."""
    checks: Annotated[int, Field(ge=1, le=100)] = 3
    """...for this many consecutive checks."""


class GuardSpec(StanchModel):
    """How a mitigation is watched: baseline, bake, checks and fail-safes.

    Every field is optional: unset fields inherit the matching policy's ``guardDefaults`` and then
    the built-in defaults in :data:`BUILTIN_GUARD`.
    """

    signals: Annotated[list[SignalRef], Field(max_length=8)] = []
    """Signals to compare against the baseline; empty means the policy's error-ratio and latency
    templates."""
    baseline_window: Duration | None = None
    """How far back before the action the baseline is taken (default 10m); never before the linked
    Incident's onset, so the incident's own errors are the baseline a fix is judged against."""
    bake_time: Duration | None = None
    """How long to watch after the change is applied before declaring it Healthy (default 5m)."""
    interval: Duration | None = None
    """Time between guard checks (default 10s: with two failed checks in a row a clear regression is
    reverted within about 20 s of showing up; see docs/benchmarks.md)."""
    tolerance: Annotated[float, Field(ge=0, le=10)] | None = None
    """Relative degradation versus the baseline allowed before a check fails, as a fraction
    (0.1 = 10 % worse; default 0.1)."""
    failure_limit: Annotated[int, Field(ge=1, le=100)] | None = None
    """Consecutive failed checks that make the verdict Worse and trigger a revert (default 2)."""
    settle_time: Duration | None = None
    """While the target's new pods start, and for this long after they are all available, a check
    that is worse only on latency or saturation counts as settling, not failing (default 30s; set it
    to the rate window of your latency query, which keeps the rollout in its numbers that long).
    Error ratio, restarts and throughput are never excused."""
    success_criteria: SuccessCriteria | None = None
    """Optional early-success rule."""
    no_data: NoDataAction | None = None
    """What to do when a signal has no data or Prometheus fails (default Hold; never Healthy)."""
    inconclusive: InconclusiveAction | None = None
    """What to do when the bake ends Inconclusive (default Hold)."""

    cel_rules = (
        CelRule(
            rule="!has(self.bakeTime) || !has(self.interval)"
            " || duration(self.bakeTime) >= duration(self.interval)",
            message="bakeTime must be at least one interval",
        ),
    )

    @model_validator(mode="after")
    def _bake_at_least_interval(self) -> GuardSpec:
        if (
            self.bake_time
            and self.interval
            and parse_duration(self.bake_time) < parse_duration(self.interval)
        ):
            raise ValueError("bakeTime must be at least one interval")
        return self

    def merged_over(self, defaults: GuardSpec) -> GuardSpec:
        """This guard with unset fields taken from ``defaults`` (mitigation over policy over built-in)."""
        values = defaults.model_dump(exclude_unset=False)
        for name, value in self.model_dump().items():
            if value is not None and value != []:
                values[name] = value
        return GuardSpec.model_validate(values)


BUILTIN_GUARD = GuardSpec(
    baseline_window="10m",
    bake_time="5m",
    interval="10s",
    tolerance=0.1,
    failure_limit=2,
    settle_time="30s",
    no_data=NoDataAction.HOLD,
    inconclusive=InconclusiveAction.HOLD,
)
"""Defaults used when neither the Mitigation nor any policy sets a guard field."""

DEFAULT_GUARD_SIGNALS = ("error_ratio", "latency_p99")
"""Signals a guard watches when neither the Mitigation nor a policy names any (the design's
"error-ratio and latency templates")."""


class ResolvedGuard(StanchModel):
    """The guard a Mitigation runs under: every field set (the Mitigation's guard over the policy's
    ``guardDefaults`` over :data:`BUILTIN_GUARD`). Durations keep the text they were written in (for
    status and messages) and are read as ``timedelta`` through the ``*_period`` properties."""

    signals: Annotated[list[SignalRef], Field(min_length=1, max_length=8)]
    """Signals compared against the baseline."""
    baseline_window: Duration
    """How far back before the action the baseline is taken."""
    bake_time: Duration
    """How long the change is watched before it is declared Healthy."""
    interval: Duration
    """Time between guard checks."""
    tolerance: Annotated[float, Field(ge=0, le=10)]
    """Relative degradation versus the baseline allowed before a check fails."""
    failure_limit: Annotated[int, Field(ge=1, le=100)]
    """Consecutive failed checks that make the verdict Worse."""
    settle_time: Duration
    """How long after new pods are available latency and saturation may still settle."""
    success_criteria: SuccessCriteria | None = None
    """Optional early-success rule."""
    no_data: NoDataAction
    """What to do when a signal has no data."""
    inconclusive: InconclusiveAction
    """What to do when the bake ends Inconclusive."""

    @classmethod
    def of(cls, guard: GuardSpec, *layers: GuardSpec) -> ResolvedGuard:
        """``guard`` over each of ``layers`` in turn over :data:`BUILTIN_GUARD`, with
        :data:`DEFAULT_GUARD_SIGNALS` when nobody named any."""
        merged = BUILTIN_GUARD
        for layer in reversed(layers):
            merged = layer.merged_over(merged)
        merged = guard.merged_over(merged)
        values = merged.model_dump()
        if not merged.signals:
            values["signals"] = [{"name": n} for n in DEFAULT_GUARD_SIGNALS]
        return cls.model_validate(values)

    @property
    def baseline_period(self) -> timedelta:
        return parse_duration(self.baseline_window)

    @property
    def bake_period(self) -> timedelta:
        return parse_duration(self.bake_time)

    @property
    def check_period(self) -> timedelta:
        return parse_duration(self.interval)

    @property
    def settle_period(self) -> timedelta:
        return parse_duration(self.settle_time)


DEFAULT_GUARD = ResolvedGuard.of(GuardSpec())
"""The guard of a Mitigation that sets nothing under a policy that sets nothing."""
