"""MitigationPolicy and ClusterMitigationPolicy: what Stanch may do where, kept in Git."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from stanch.core.models.actions import ActionKind
from stanch.core.models.base import CelRule, StanchModel
from stanch.core.models.common import (
    Conditions,
    Duration,
    Identifier,
    LabelKey,
    LabelValue,
    NamespaceName,
    SignalTemplate,
    Text,
    parse_duration,
    preserve_unknown,
)
from stanch.core.models.guard import GuardSpec
from stanch.core.models.identity import ApprovalPolicy
from stanch.core.models.incident import Confidence, HypothesisCategory
from stanch.core.models.meta import ObjectMeta

ACTION_KINDS = len(ActionKind)
"""At most one entry per action kind: the lists below grow with the actions (Autoscaler made 8)."""

LIST_MAP = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"

NamePattern = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$")
]
"""An object name, or a glob with ``*`` (e.g. ``checkout-*``)."""

ImagePattern = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[a-zA-Z0-9*][-a-zA-Z0-9._:/@*]*$")
]
"""An image reference as written in a Mitigation, or a glob with ``*`` (which also matches ``/``).
No ``?`` or ``[``: a pattern is a prefix, a suffix or an exact reference, nothing cleverer."""

ConfigKeyPattern = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9*]+$")
]
"""A ConfigMap key, or a glob with ``*`` (e.g. ``feature.*``)."""

EnvNamePattern = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9*]+$")
]
"""An environment variable name, or a glob with ``*`` (e.g. ``FEATURE_*``)."""


class PolicySelector(StanchModel):
    """Which workloads a policy applies to. All set criteria must match; empty matches everything in scope.

    A namespaced MitigationPolicy only ever applies to workloads in its own namespace; ``namespaces``
    narrows a ClusterMitigationPolicy.
    """

    namespaces: Annotated[list[NamespaceName], Field(max_length=64)] = []
    """Namespaces (ClusterMitigationPolicy only; ignored in a namespaced policy)."""
    workload_names: Annotated[list[NamePattern], Field(max_length=64)] = []
    """Workload names or globs."""
    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=16)] = {}
    """Labels the workload must carry."""


class ApprovalTier(StrEnum):
    """How an action is approved under a policy."""

    AUTO = "Auto"
    MANUAL = "Manual"
    FORBIDDEN = "Forbidden"


class NodeSelection(StanchModel):
    """Which nodes may be evacuated."""

    names: Annotated[list[NamePattern], Field(max_length=64)] = []
    """Node names or globs."""
    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=16)] = {}
    """Labels the node must carry."""


class ConfigMapAllowance(StanchModel):
    """Which keys of which ConfigMaps a ConfigToggle may set, and optionally to which values."""

    name: NamePattern
    """ConfigMap name or glob, in the target's namespace."""
    keys: Annotated[list[ConfigKeyPattern], Field(min_length=1, max_length=64)]
    """Keys (or globs) that may be set; ``*`` for every key of the ConfigMap."""
    values: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=4096)]], Field(min_length=1, max_length=64)
        ]
        | None
    ) = None
    """Exact values the keys may be set to (e.g. ``["on", "off"]``); unset allows any value."""


class ActionLimits(StanchModel):
    """Limits on an action's parameters; exceeding one denies the Mitigation with the numbers."""

    max_replicas: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Scale: highest replica count allowed; Autoscaler: highest minReplicas and maxReplicas it may set."""
    min_replicas: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Scale: lowest replica count allowed (guards against scaling to zero); Autoscaler: lowest
    minReplicas and maxReplicas it may set."""
    max_scale_factor: Annotated[float, Field(ge=0.1, le=10)] | None = None
    """Scale: largest factor allowed."""
    max_canary_replicas: Annotated[int, Field(ge=1, le=100)] | None = None
    """Canary: most canary replicas allowed."""
    canary_images: Annotated[list[ImagePattern], Field(max_length=64)] = []
    """Canary: images the canary may run, as written in the Mitigation (no normalisation:
    ``nginx:1.25`` does not match ``docker.io/library/nginx:*``), exact or with ``*`` globs such as
    ``registry.example.com/shop/*``; empty allows no image change. A canary runs with the target's
    ServiceAccount and mounted Secrets, so this is the list of code trusted with them."""
    canary_require_digest: bool = False
    """Canary: the image must be pinned by digest (``...@sha256:<64 hex>``), so a tag moved after
    the decision cannot swap the code that runs."""
    canary_env: Annotated[list[EnvNamePattern], Field(max_length=64)] = []
    """Canary: environment variables the canary may set or override (names or ``*`` globs); empty
    allows no env change."""
    canary_args: bool = False
    """Canary: whether the canary may replace the container's args (off: the same command line runs).
    The container's command is never changed by a canary."""
    evacuate_nodes: NodeSelection | None = None
    """Evacuate: nodes that may be evacuated; unset means none."""
    config_maps: Annotated[list[ConfigMapAllowance], Field(max_length=32)] = []
    """ConfigToggle: the ConfigMaps, keys and values a toggle may set; empty allows none."""

    cel_rules = (
        CelRule(
            rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
        ),
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> ActionLimits:
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class ActionRule(StanchModel):
    """The approval tier and limits of one action. Actions not listed are denied (default deny)."""

    action: ActionKind
    """The action."""
    tier: ApprovalTier
    """Auto runs without approval, Manual waits for approval, Forbidden denies."""
    limits: ActionLimits = ActionLimits()
    """Parameter limits."""
    reason: Text = ""
    """Why this tier, shown in decisions (e.g. ``rollback forbidden: v42 ran a schema migration``)."""


class RateLimits(StanchModel):
    """Anti-flapping limits."""

    actions_per_hour: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Most Mitigations started per namespace per rolling hour (dry runs excluded)."""
    cooldown_per_target: Duration | None = None
    """Minimum time between the end of one Mitigation and the start of the next on the same target."""


class Weekday(StrEnum):
    """Days of the week."""

    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class WeeklySchedule(StanchModel):
    """A recurring weekly window, e.g. Fridays 16:00 for 64h."""

    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)]
    """Days on which the window starts."""
    start_time: Annotated[str, StringConstraints(pattern=TIME_OF_DAY_PATTERN, max_length=5)]
    """Start time of day, ``HH:MM`` (24h)."""
    duration: Duration
    """Length of the window."""
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    """IANA time zone, e.g. ``Europe/Berlin``."""

    # A window of zero length never freezes anything and one longer than a week freezes forever:
    # both are almost certainly typos, so the API server refuses them.
    cel_rules = (
        CelRule(
            rule="duration(self.duration) > duration('0s') && duration(self.duration) <= duration('168h')",
            message="duration must be longer than 0s and at most 168h (one week)",
            field_path=".duration",
        ),
    )

    @model_validator(mode="after")
    def _duration_within_week(self) -> WeeklySchedule:
        if not timedelta(0) < parse_duration(self.duration) <= timedelta(hours=168):
            raise ValueError("duration must be longer than 0s and at most 168h (one week)")
        return self


class FreezeWindow(StanchModel):
    """A period in which actions are denied: either absolute (``start``/``end``) or weekly (``schedule``)."""

    name: Identifier
    """Name, quoted in decisions."""
    start: AwareDatetime | None = None
    """Absolute start (RFC 3339)."""
    end: AwareDatetime | None = None
    """Absolute end (RFC 3339), after start."""
    schedule: WeeklySchedule | None = None
    """Weekly recurring window."""
    reason: Text = ""
    """Why, shown in decisions."""
    allow_actions: Annotated[list[ActionKind], Field(max_length=ACTION_KINDS)] = []
    """Actions still allowed during the window (e.g. Scale)."""

    cel_rules = (
        CelRule(
            rule="has(self.schedule) != (has(self.start) || has(self.end))",
            message="a freeze window needs either start and end, or schedule",
        ),
        CelRule(
            rule="has(self.start) == has(self.end)",
            message="start and end must be set together",
        ),
        CelRule(
            rule="!has(self.start) || !has(self.end) || timestamp(self.end) > timestamp(self.start)",
            message="end must be after start",
            field_path=".end",
        ),
    )

    @model_validator(mode="after")
    def _one_form(self) -> FreezeWindow:
        absolute = self.start is not None or self.end is not None
        if (self.schedule is not None) == absolute:
            raise ValueError("a freeze window needs either start and end, or schedule")
        if (self.start is None) != (self.end is None):
            raise ValueError("start and end must be set together")
        if isinstance(self.start, datetime) and isinstance(self.end, datetime) and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class GitOpsSettings(StanchModel):
    """Behaviour for targets managed by Argo CD or Flux."""

    require_approval_for_managed: bool = True
    """Mitigations of GitOps-managed targets need manual approval even when the tier is Auto."""
    suspend_auto_sync: bool = False
    """Suspend the GitOps controller's self-heal while a mitigation holds the target (off by default):
    Flux's per-object ``kustomize.toolkit.fluxcd.io/reconcile: disabled``, or the Argo CD
    Application's ``spec.syncPolicy.automated.selfHeal: false``; restored when the Mitigation ends."""
    argo_cd_namespace: NamespaceName = Field(default="argocd", alias="argoCDNamespace")
    """Where the Argo CD Applications live (the control-plane namespace), for tracking ids that do not
    name one (``<namespace>_<app>`` does)."""


class AutoMitigationRule(StanchModel):
    """Turn an Incident hypothesis into a Mitigation automatically (Incidents in Auto mode only)."""

    category: HypothesisCategory
    """Hypothesis category to match."""
    min_confidence: Confidence = 70
    """Minimum confidence in percent."""
    action: ActionKind
    """Action to create; its parameters come from the hypothesis' suggested mitigation."""
    tier: Literal["Auto", "Manual"] = "Manual"
    """Auto applies at once; Manual creates the Mitigation awaiting approval."""
    dry_run: bool = False
    """Create the Mitigation in dry run only."""


class MitigationPolicySpec(StanchModel):
    """What Stanch may do to the selected workloads. Anything not allowed here is denied."""

    selector: PolicySelector = PolicySelector()
    """Which workloads the policy applies to."""
    actions: Annotated[
        list[ActionRule],
        Field(max_length=ACTION_KINDS, json_schema_extra={LIST_MAP: "map", LIST_MAP_KEYS: ["action"]}),
    ] = []
    """Allowed actions with tier and limits, at most one entry per action."""
    guard_defaults: GuardSpec = GuardSpec()
    """Guard settings for Mitigations that do not set them (including no-data and inconclusive behaviour)."""
    signals: Annotated[
        list[SignalTemplate],
        Field(max_length=32, json_schema_extra={LIST_MAP: "map", LIST_MAP_KEYS: ["name"]}),
    ] = []
    """Named PromQL signal templates."""
    rate_limits: RateLimits = RateLimits()
    """Rate limits and cooldowns."""
    freeze_windows: Annotated[
        list[FreezeWindow], Field(max_length=16, json_schema_extra={LIST_MAP: "map", LIST_MAP_KEYS: ["name"]})
    ] = []
    """Periods when actions are denied."""
    rollback_forbidden_reason: Text | None = None
    """When set, Rollback is denied with this reason (e.g. the last release ran an irreversible schema
    migration); freeze or roll forward instead."""
    gitops: GitOpsSettings = GitOpsSettings()
    """GitOps awareness."""
    auto_mitigation: Annotated[list[AutoMitigationRule], Field(max_length=32)] = []
    """Rules turning hypotheses into Mitigations, evaluated in order."""
    approval: ApprovalPolicy = ApprovalPolicy()
    """Who may approve what this policy holds for approval."""

    @model_validator(mode="after")
    def _unique_keys(self) -> MitigationPolicySpec:
        for field, key in (("actions", "action"), ("signals", "name"), ("freeze_windows", "name")):
            values = [getattr(item, key) for item in getattr(self, field)]
            if len(values) != len(set(values)):
                raise ValueError(f"{field}: duplicate {key}")
        return self


class PolicyStatus(StanchModel):
    """Written only by Stanch: whether the policy is valid and in force."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` last validated."""
    conditions: Conditions = []
    """``Valid``: ``True`` when the policy is in force; ``False`` with a reason such as
    ``UnknownPlaceholder`` or ``OverlappingFreezeWindows`` and a message naming the field. An invalid
    policy's allowances are ignored while its restrictions still apply."""
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    """Kopf's own bookkeeping (handler progress); free-form, not part of the API."""


class MitigationPolicy(StanchModel):
    """A whole namespaced MitigationPolicy object."""

    api_version: Literal["stanch.dev/v1alpha1"] = "stanch.dev/v1alpha1"
    """API version."""
    kind: Literal["MitigationPolicy"] = "MitigationPolicy"
    """Kind."""
    metadata: ObjectMeta = ObjectMeta()
    """Object metadata."""
    spec: MitigationPolicySpec
    """Desired state."""
    status: PolicyStatus | None = None
    """Observed state."""


class ClusterMitigationPolicy(StanchModel):
    """A whole cluster-scoped ClusterMitigationPolicy object (cluster-wide defaults)."""

    api_version: Literal["stanch.dev/v1alpha1"] = "stanch.dev/v1alpha1"
    """API version."""
    kind: Literal["ClusterMitigationPolicy"] = "ClusterMitigationPolicy"
    """Kind."""
    metadata: ObjectMeta = ObjectMeta()
    """Object metadata."""
    spec: MitigationPolicySpec
    """Desired state."""
    status: PolicyStatus | None = None
    """Observed state."""
