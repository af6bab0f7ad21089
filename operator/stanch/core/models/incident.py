"""The Incident resource: what the on-call engineer files, and what Stanch finds out about it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from stanch.core.models.actions import ActionKind, ActionSet
from stanch.core.models.base import Capped, StanchModel
from stanch.core.models.common import (
    Conditions,
    Duration,
    ImageRef,
    ObjectName,
    ObjectRef,
    ShortText,
    SignalRef,
    TargetRef,
    Text,
    preserve_unknown,
)
from stanch.core.models.meta import ObjectMeta
from stanch.core.models.mitigation import MitigationPhase, VerdictResult

# --- spec ---------------------------------------------------------------------------------------


class Severity(StrEnum):
    """Incident severity, SEV1 being the worst (customer-facing outage) and SEV4 the mildest."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class MitigationMode(StrEnum):
    """Whether Stanch only suggests mitigations or may create them (still subject to policy)."""

    SUGGEST = "Suggest"
    AUTO = "Auto"


class IncidentMitigationSettings(StanchModel):
    """How mitigations are handled for this Incident."""

    mode: MitigationMode = MitigationMode.SUGGEST
    """Suggest lists the Mitigation Stanch would create; Auto lets policy auto-mitigation rules create it."""


class AlertState(StrEnum):
    """An Alertmanager alert's state."""

    FIRING = "firing"
    RESOLVED = "resolved"


ALERTS_MAX = 50
"""Alerts an Incident records of its group (the latest starts are kept)."""
ALERT_LABELS_MAX = 24
AlertLabels = Annotated[dict[str, ShortText], Field(max_length=ALERT_LABELS_MAX)]


class AlertRecord(StanchModel):
    """One alert of the group, as Alertmanager last reported it."""

    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Alertmanager's fingerprint of the alert's labels."""
    status: AlertState
    """``firing`` or ``resolved``."""
    starts_at: AwareDatetime
    """When the alert started firing (a later firing of the same alert is a separate record)."""
    ends_at: AwareDatetime | None = None
    """When it resolved; absent while it fires."""
    labels: AlertLabels = {}
    """The alert's labels (at most 24, values cut at 256 characters)."""
    summary: Text = ""
    """The ``summary`` (else ``description``) annotation."""
    generator_url: Annotated[str, StringConstraints(max_length=1024)] = ""
    """Link to the alerting rule's expression in Prometheus."""


class AlertGroup(StanchModel):
    """The Alertmanager alert group an Incident was filed from. Written by Stanch's Alertmanager
    receiver (docs/alertmanager.md); absent on an Incident a human filed."""

    group_key: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    """Alertmanager's key of the group: one Incident per group (and per episode: a group that fires
    again after its Incident was resolved opens a new one)."""
    receiver: ShortText = ""
    """The Alertmanager receiver that delivered it."""
    group_labels: AlertLabels = {}
    """The labels the route groups by."""
    external_url: Annotated[str, StringConstraints(max_length=1024)] = ""
    """The Alertmanager that sent it."""
    alerts: Annotated[list[AlertRecord], Capped(ALERTS_MAX, keep="last")] = []
    """The group's alerts, oldest start first."""
    truncated_alerts: Annotated[int, Field(ge=0)] = 0
    """Alerts Alertmanager left out of its last notification (its ``max_alerts``)."""


class IncidentSpec(StanchModel):
    """What the incident is about. Written by a human or an Alertmanager webhook."""

    target: TargetRef
    """The affected workload."""
    started_at: AwareDatetime | None = None
    """When the incident started, if known (RFC 3339); onset detection refines it."""
    severity: Severity = Severity.SEV3
    """Severity, SEV1 (worst) to SEV4."""
    summary: Text = ""
    """One-line description, e.g. the alert that fired."""
    signals: Annotated[list[SignalRef], Field(max_length=10)] = []
    """Named signal templates to investigate; empty means the matching policy's templates."""
    lookback: Duration = "30m"
    """How far before the onset to look for changes."""
    mitigation: IncidentMitigationSettings = IncidentMitigationSettings()
    """Mitigation handling."""
    resolved: bool = False
    """Set to true when the incident is over: refreshing stops and temporary mitigations are undone."""
    alertmanager: AlertGroup | None = None
    """The alert group the Incident was filed from, when Alertmanager filed it."""


# --- status: scope ------------------------------------------------------------------------------


class IncidentPhase(StrEnum):
    """Lifecycle of an Incident."""

    INVESTIGATING = "Investigating"
    MITIGATING = "Mitigating"
    MONITORING = "Monitoring"
    RESOLVED = "Resolved"


class OnsetSource(StrEnum):
    """Where the onset time came from."""

    CHANGE_POINT = "ChangePoint"
    STARTED_AT = "StartedAt"
    CREATION_TIME = "CreationTime"


class Trend(StrEnum):
    """Direction of the error signal now."""

    WORSENING = "Worsening"
    STABLE = "Stable"
    IMPROVING = "Improving"
    RECOVERED = "Recovered"
    UNKNOWN = "Unknown"


Ratio = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]


class ImpactSummary(StanchModel):
    """How bad it is: error ratio and latency before the onset, now and at the peak."""

    error_ratio_before: Ratio | None = None
    """Error ratio in the window before the onset (0..1)."""
    error_ratio_now: Ratio | None = None
    """Error ratio now (0..1)."""
    error_ratio_peak: Ratio | None = None
    """Highest error ratio since the onset (0..1)."""
    latency_before_seconds: NonNegative | None = None
    """Latency (the latency signal, usually p99) before the onset, in seconds."""
    latency_now_seconds: NonNegative | None = None
    """Latency now, in seconds."""
    latency_peak_seconds: NonNegative | None = None
    """Highest latency since the onset, in seconds."""
    affected_pods: Count | None = None
    """Pods that are not ready, restarting or erroring."""
    total_pods: Count | None = None
    """Pods of the workload."""


class SliState(StrEnum):
    """What the data says about one service-level indicator against its own baseline."""

    ANOMALOUS = "Anomalous"
    NORMAL = "Normal"
    UNKNOWN = "Unknown"
    """No data, or too little to tell: never read as healthy."""


class SliCheck(StanchModel):
    """One SLI looked at by symptom detection, and what it showed."""

    sli: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """``error_ratio``, ``latency_p99``, ``cpu_vs_limit``, ``memory_vs_limit``, ``availability`` or
    ``rollout``."""
    state: SliState
    """Anomalous, Normal or Unknown."""
    detail: Annotated[str, StringConstraints(max_length=512)] = ""
    """What was compared, with the numbers and the window, e.g. ``0.0% now, 0.1% before the
    onset (60 samples, 30m)``."""


class SymptomDetection(StanchModel):
    """Is anything wrong with the target at all? Decided from its SLIs before any cause is blamed."""

    state: SliState
    """Anomalous when any SLI is; Normal only when errors, latency and availability were all seen
    and all normal; Unknown otherwise."""
    summary: Annotated[str, StringConstraints(max_length=1024)] = ""
    """One line saying what was found and what was looked at."""
    window_start: AwareDatetime | None = None
    """Start of the data looked at."""
    window_end: AwareDatetime | None = None
    """End of the data looked at."""
    checks: Annotated[list[SliCheck], Capped(10, keep="first")] = []
    """Every SLI looked at."""


class Scope(StanchModel):
    """When it started, how bad it is, and whether it is getting worse."""

    onset: AwareDatetime | None = None
    """Best estimate of when the incident started."""
    onset_source: OnsetSource | None = None
    """How the onset was determined."""
    impact: ImpactSummary = ImpactSummary()
    """Impact numbers."""
    trend: Trend = Trend.UNKNOWN
    """Is it getting worse?"""
    symptom: SymptomDetection | None = None
    """Whether the target's SLIs are anomalous at all, and what was looked at."""


# --- status: timeline ---------------------------------------------------------------------------


class TimelineKind(StrEnum):
    """Kinds of timeline entries."""

    DEPLOY = "Deploy"
    CONFIG_CHANGE = "ConfigChange"
    POD_EVENT = "PodEvent"
    NODE_CONDITION = "NodeCondition"
    SCALING = "Scaling"
    TRAFFIC = "Traffic"
    MITIGATION = "Mitigation"
    ONSET = "Onset"
    ALERT = "Alert"
    NOTE = "Note"


TIMELINE_MAX = 100


class TimelineEntry(StanchModel):
    """One thing that happened, in the merged timeline."""

    time: AwareDatetime
    """When it happened."""
    kind: TimelineKind
    """What kind of thing happened."""
    summary: Annotated[str, StringConstraints(max_length=512)]
    """One line, e.g. ``revision 7: image api:1.4.2 → api:1.5.0``."""
    object: ObjectRef | None = None
    """The object involved."""
    details: Annotated[
        dict[str, Annotated[str, StringConstraints(max_length=512)]], Field(max_length=16)
    ] = {}
    """Small key/value details (e.g. ``revision``, ``offsetFromOnset``)."""


# --- status: evidence ---------------------------------------------------------------------------


class RolloutRevision(StanchModel):
    """A retained Deployment revision (one ReplicaSet) and how it differs from its predecessor."""

    revision: Annotated[int, Field(ge=0)]
    """``deployment.kubernetes.io/revision`` of the ReplicaSet."""
    replica_set: ObjectName
    """Name of the ReplicaSet."""
    created_at: AwareDatetime | None = None
    """Creation time of the ReplicaSet."""
    rolled_out_at: AwareDatetime | None = None
    """When the Deployment last rolled to this revision, where that is not the ReplicaSet's creation:
    a rollback reuses the old ReplicaSet (from the Deployment's ``ScalingReplicaSet`` Events)."""
    change_cause: Text | None = None
    """``kubernetes.io/change-cause`` annotation, if any."""
    changed_by: Text | None = None
    """Who wrote the Deployment's pod template that made this revision: the newest managedFields
    entry owning ``spec.template`` (manager, operation), never a status or replicas-only writer.
    Kubernetes keeps one entry per manager, so only the current revision has one."""
    images: Annotated[list[ImageRef], Field(max_length=16)] = []
    """Container images of the revision."""
    changes: Annotated[list[Annotated[str, StringConstraints(max_length=512)]], Capped(20, keep="first")] = []
    """Human-readable differences from the previous revision (images, env, args, resources, probes,
    scheduling, volumes)."""
    replicas: Count = 0
    """Pods currently owned by the ReplicaSet."""
    ready_replicas: Count = 0
    """Ready pods owned by the ReplicaSet."""
    current: bool = False
    """Whether this is the Deployment's current template."""
    completed_at: AwareDatetime | None = None
    """When the rollout to this revision completed (the Deployment's ``Progressing`` condition
    turned ``NewReplicaSetAvailable``); only for the current revision, when known."""

    @property
    def since(self) -> datetime | None:
        """When this revision went out: its rollout when known, else its ReplicaSet's creation."""
        return self.rolled_out_at or self.created_at


class ReasonCount(StanchModel):
    """A count of pods in a waiting/terminated reason (CrashLoopBackOff, OOMKilled …)."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """The reason."""
    count: Count
    """How many pods."""


class PodGroup(StanchModel):
    """Pod health of one group of pods (a revision or a node)."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Group key: the revision number or the node name."""
    total: Count = 0
    """Pods in the group."""
    ready: Count = 0
    """Ready pods in the group."""
    restarts: Count = 0
    """Container restarts summed over the group."""
    reasons: Annotated[list[ReasonCount], Capped(10, keep="first")] = []
    """Waiting/terminated reasons in the group, most frequent first."""


class PodHealth(StanchModel):
    """Pods of the target: readiness, restarts and failure reasons, grouped by revision and by node."""

    total: Count = 0
    """Pods of the workload."""
    ready: Count = 0
    """Ready pods."""
    restarts: Count = 0
    """Container restarts summed over all pods."""
    reasons: Annotated[list[ReasonCount], Capped(10, keep="first")] = []
    """Waiting/terminated reasons, most frequent first."""
    by_revision: Annotated[list[PodGroup], Capped(10, keep="first")] = []
    """Health per ReplicaSet revision (newest first)."""
    by_node: Annotated[list[PodGroup], Capped(20, keep="first")] = []
    """Health per node (worst first)."""


class EventGroup(StanchModel):
    """Kubernetes Events aggregated by reason."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    """Event reason, e.g. ``BackOff`` or ``FailedScheduling``."""
    type: Literal["Normal", "Warning"] = "Warning"
    """Event type."""
    count: Count
    """Number of occurrences (including series counts)."""
    first_seen: AwareDatetime | None = None
    """First occurrence."""
    last_seen: AwareDatetime | None = None
    """Last occurrence."""
    objects: Count = 0
    """Distinct objects the events were about."""
    sample_message: Text = ""
    """One representative message."""


class ConfigChange(StanchModel):
    """A change to configuration around the onset (Secrets by metadata only, never data)."""

    object: ObjectRef
    """The changed object (ConfigMap, Secret, Service, HPA, ResourceQuota, LimitRange …)."""
    changed_at: AwareDatetime | None = None
    """Change time from metadata (managedFields or creation time)."""
    created_at: AwareDatetime | None = None
    """Creation time of the object: a change at this time is its creation, and an object created
    together with the workload is part of the initial deploy, not a change."""
    summary: Annotated[str, StringConstraints(max_length=512)] = ""
    """What changed, as far as can be told without reading Secret data."""
    referenced: bool = False
    """Whether the target's pod template references the object."""


class MetricPoint(StanchModel):
    """One sample of a metric series."""

    time: AwareDatetime
    """Sample time."""
    value: float
    """Sample value."""


class MetricSummary(StanchModel):
    """A signal over the investigation window, overall or for one revision or node."""

    signal: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Signal template name."""
    scope: Annotated[str, StringConstraints(max_length=300)] = "overall"
    """``overall``, ``revision:<n>`` or ``node:<name>``."""
    before: float | None = None
    """Mean before the onset."""
    now: float | None = None
    """Latest value."""
    peak: float | None = None
    """Worst value since the onset."""
    unit: Annotated[str, StringConstraints(max_length=32)] | None = None
    """Unit for display."""
    points: Annotated[list[MetricPoint], Capped(60, keep="last")] = []
    """Downsampled series for the report chart (overall scope only)."""
    error: Text | None = None
    """Why the query failed or returned nothing (no data is never good news)."""


class LogSignature(StanchModel):
    """A normalised error message from the pods' logs (numbers, ids and hex stripped)."""

    signature: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    """The normalised message."""
    count: Count
    """Occurrences in the sampled logs."""
    first_seen: AwareDatetime | None = None
    """First occurrence."""
    last_seen: AwareDatetime | None = None
    """Last occurrence."""
    revision: Annotated[int, Field(ge=0)] | None = None
    """Revision of the pods that logged it, if only one."""
    pods: Count = 0
    """Distinct pods that logged it."""
    sample: Text = ""
    """One original (redacted) line."""


class NodeEvidence(StanchModel):
    """A node hosting the target's pods."""

    name: ObjectName
    """Node name."""
    ready: bool | None = None
    """Whether the node is Ready."""
    unschedulable: bool = False
    """Whether the node is cordoned."""
    problems: Annotated[
        list[Annotated[str, StringConstraints(max_length=256)]], Capped(10, keep="first")
    ] = []
    """Abnormal conditions, e.g. ``MemoryPressure=True``."""
    taints: Annotated[list[Annotated[str, StringConstraints(max_length=512)]], Capped(10, keep="first")] = []
    """Taints as ``key=value:Effect``."""
    pods: Count = 0
    """Pods of the target on this node."""


class WorkloadStatus(StanchModel):
    """The Deployment's own view of its replicas and of its latest rollout."""

    desired: Count | None = None
    """``spec.replicas``."""
    updated: Count = 0
    """Pods of the current template."""
    ready: Count = 0
    """Ready pods."""
    available: Count = 0
    """Pods available (ready for ``minReadySeconds``)."""
    progressing_reason: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Reason of the ``Progressing`` condition: ``NewReplicaSetAvailable`` (the rollout completed),
    ``ReplicaSetUpdated`` (under way), ``ProgressDeadlineExceeded`` (stuck)."""
    progressing_since: AwareDatetime | None = None
    """Last update of the ``Progressing`` condition."""
    message: Text = ""
    """Message of the ``Progressing`` (or, when unavailable, ``Available``) condition."""


METRICS_MAX = 32
"""Overall signals plus their per-revision and per-node breakdowns."""


class PodValue(StanchModel):
    """One pod's value of a signal."""

    pod: ObjectName
    """Pod name."""
    value: float
    """The pod's latest value."""
    revision: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Revision of the pod (its ``pod-template-hash`` mapped to the revision number)."""
    node: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Node the pod runs on."""


class PodSpread(StanchModel):
    """One signal across the target's pods at the same moment: how the pods compare with their
    siblings, so one hot pod is told apart from a workload-wide problem."""

    signal: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    """Signal name, e.g. ``cpu_vs_limit``."""
    unit: Annotated[str, StringConstraints(max_length=32)] | None = None
    """Unit of the values."""
    at: AwareDatetime | None = None
    """When the values were taken (the latest common sample)."""
    pods: Count = 0
    """Pods with a value."""
    median: float | None = None
    """Median over all pods."""
    siblings_median: float | None = None
    """Median over all pods but the highest: what the highest pod's siblings show."""
    siblings_mad: float | None = None
    """Median absolute deviation of those siblings (unscaled)."""
    highest: Annotated[list[PodValue], Capped(5, keep="first")] = []
    """The pods with the highest values, highest first."""


class DependencyEvidence(StanchModel):
    """A host the target's pods fail to reach, and what it is in the cluster."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    """The host (and port) as the log lines name it."""
    failures: Annotated[list[Annotated[str, StringConstraints(max_length=32)]], Capped(6, keep="first")] = []
    """How it fails: ``refused``, ``timeout``, ``dns``, ``reset``, ``unavailable``, ``5xx`` (from log
    lines), ``errors`` (from the ``dependency_errors`` metric)."""
    count: Count = 0
    """Log lines about it."""
    pods: Count = 0
    """Distinct pods that logged them."""
    first_seen: AwareDatetime | None = None
    """First line about it."""
    last_seen: AwareDatetime | None = None
    """Last line about it."""
    sample: Text = ""
    """The first line seen (redacted)."""
    service: ObjectRef | None = None
    """The Service the host names or whose address it is."""
    workload: ObjectRef | None = None
    """The Deployment or StatefulSet behind that Service."""
    external: bool = False
    """The host is outside the cluster (or at least outside every Service of the namespace)."""
    resolution: Annotated[str, StringConstraints(max_length=512)] = ""
    """How the host was matched, or why it could not be."""
    endpoints_ready: Count | None = None
    """Ready endpoints of the Service."""
    endpoints_total: Count | None = None
    """All endpoints of the Service."""
    replicas: Count | None = None
    """Desired replicas of the workload."""
    ready_replicas: Count | None = None
    """Ready replicas of the workload."""
    changed_at: AwareDatetime | None = None
    """When the workload last changed (its newest revision, else its last spec write)."""
    change: Annotated[str, StringConstraints(max_length=512)] = ""
    """What that change was."""
    revision: Annotated[int, Field(ge=0)] | None = None
    """The workload's current revision (Deployments)."""
    previous_revision: Annotated[int, Field(ge=0)] | None = None
    """The retained revision before it, which a rollback of the dependency returns to."""
    errors_per_second: float | None = None
    """Errors per second from it now, by the ``dependency_errors`` template (when configured)."""
    errors_since: AwareDatetime | None = None
    """When that metric's current run of errors began."""


class Evidence(StanchModel):
    """Everything Stanch gathered, bounded in size."""

    rollouts: Annotated[list[RolloutRevision], Capped(10, keep="first")] = []
    """Retained revisions, newest first."""
    pod_health: PodHealth = PodHealth()
    """Pod health of the target."""
    events_by_reason: Annotated[list[EventGroup], Capped(20, keep="first")] = []
    """Events aggregated by reason, most relevant first."""
    config_changes: Annotated[list[ConfigChange], Capped(20, keep="first")] = []
    """Configuration changes around the onset, closest first."""
    metrics: Annotated[list[MetricSummary], Capped(METRICS_MAX, keep="first")] = []
    """Signal summaries, overall first."""
    log_signatures: Annotated[list[LogSignature], Capped(20, keep="first")] = []
    """Unique error messages, most frequent first."""
    nodes: Annotated[list[NodeEvidence], Capped(20, keep="first")] = []
    """Nodes hosting the pods, problematic first."""
    workload: WorkloadStatus | None = None
    """Desired and ready replicas and the rollout's progress, from the Deployment's status."""
    pod_spreads: Annotated[list[PodSpread], Capped(8, keep="first")] = []
    """Signals compared across the pods at the same moment (per-pod outliers)."""
    dependencies: Annotated[list[DependencyEvidence], Capped(5, keep="first")] = []
    """Hosts the pods fail to reach, resolved to Services and workloads where possible."""


# --- status: hypotheses -------------------------------------------------------------------------


class HypothesisCategory(StrEnum):
    """Common causes, in the order an on-call engineer checks them."""

    RECENT_DEPLOY = "RecentDeploy"
    CONFIG_CHANGE = "ConfigChange"
    TRAFFIC_CHANGE = "TrafficChange"
    DEPENDENCY = "Dependency"
    RESOURCE_EXHAUSTION = "ResourceExhaustion"
    CAPACITY = "Capacity"
    NODE_INFRASTRUCTURE = "NodeInfrastructure"
    POD_OUTLIER = "PodOutlier"
    """One pod (or a few) worse than its siblings at the same moment."""
    BAD_DATA = "BadData"
    CREDENTIAL_EXPIRY = "CredentialExpiry"
    TRANSIENT = "Transient"
    NO_ANOMALY = "NoAnomaly"
    """The target's SLIs are normal against their own baseline: nothing to blame."""
    UNKNOWN = "Unknown"


Confidence = Annotated[int, Field(ge=0, le=100)]
"""Confidence as an integer percentage (0..100); integers keep schemas and printer columns exact."""

EvidenceLine = Annotated[str, StringConstraints(max_length=512)]


class SuggestedMitigation(ActionSet):
    """The first safe mitigation for a hypothesis, in the shape of a Mitigation spec."""

    target: TargetRef
    """What to act on."""
    summary: Annotated[str, StringConstraints(max_length=512)] = ""
    """Plain description, e.g. ``roll back checkout to revision 6 (api:1.4.2)``."""


class Hypothesis(StanchModel):
    """A possible cause, with the evidence for and against it."""

    category: HypothesisCategory
    """Kind of cause."""
    statement: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    """Plain statement, e.g. ``error spike 4m10s after revision 7 (api:1.4.2 → api:1.5.0)``."""
    confidence: Confidence
    """Confidence in percent (0..100)."""
    supporting: Annotated[list[EvidenceLine], Capped(10, keep="first")] = []
    """Evidence for it."""
    contradicting: Annotated[list[EvidenceLine], Capped(10, keep="first")] = []
    """Evidence against it."""
    suggested_mitigation: SuggestedMitigation | None = None
    """First safe mitigation; absent for causes with no safe action (e.g. Transient)."""


# --- status: mitigations and the status itself --------------------------------------------------


class IncidentMitigation(StanchModel):
    """A Mitigation linked to this Incident and its outcome."""

    name: ObjectName
    """Name of the Mitigation."""
    action: ActionKind
    """Its action."""
    phase: MitigationPhase | None = None
    """Its phase."""
    verdict: VerdictResult | None = None
    """Its guard verdict, once known."""
    created_by: Annotated[str, StringConstraints(max_length=256)] | None = None
    """Who created it: a user or ``policy:<namespace>/<name>#<rule>``."""
    suggested: bool = False
    """True when listed only (Suggest mode): the Mitigation does not exist."""
    created_at: AwareDatetime | None = None
    """When the Mitigation was created (or suggested); places it on the Incident's timeline."""
    dry_run: bool = False
    """True for a dry run: it changed nothing, so the diagnosis is not kept as of it."""


class IncidentStatus(StanchModel):
    """Written only by Stanch."""

    phase: IncidentPhase | None = None
    """Lifecycle phase: Investigating; Mitigating while a linked Mitigation is under way (including
    awaiting approval or needing attention); Monitoring once one succeeded and none is under way;
    Resolved when ``spec.resolved`` is set. Suggestions and dry runs do not move it."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The ``metadata.generation`` last processed."""
    target: Annotated[str, StringConstraints(max_length=320)] | None = None
    """The target as ``Kind/namespace/name``."""
    top_hypothesis: Annotated[str, StringConstraints(max_length=128)] | None = None
    """Short form of the best hypothesis for the printer column, e.g. ``RecentDeploy 85%``."""
    scope: Scope | None = None
    """Onset, impact and trend."""
    timeline: Annotated[list[TimelineEntry], Capped(TIMELINE_MAX, keep="last")] = []
    """Merged timeline, oldest first (the newest entries are kept when it is full)."""
    evidence: Evidence | None = None
    """Gathered evidence."""
    hypotheses: Annotated[list[Hypothesis], Capped(8, keep="first")] = []
    """Hypotheses, most likely first."""
    mitigations: Annotated[list[IncidentMitigation], Capped(20, keep="last")] = []
    """Linked (or, in Suggest mode, suggested) Mitigations."""
    conditions: Conditions = []
    """Conditions, e.g. ``Ready``, ``EvidencePartial``, ``MetricsUnavailable``."""
    last_refreshed: AwareDatetime | None = None
    """When the investigation last ran."""
    kopf: dict[str, Any] | None = Field(default=None, json_schema_extra=preserve_unknown())
    """Kopf's own bookkeeping (handler progress); free-form, not part of the API."""


class Incident(StanchModel):
    """A whole Incident object as stored in Kubernetes."""

    api_version: Literal["stanch.dev/v1alpha1"] = "stanch.dev/v1alpha1"
    """API version."""
    kind: Literal["Incident"] = "Incident"
    """Kind."""
    metadata: ObjectMeta = ObjectMeta()
    """Object metadata."""
    spec: IncidentSpec
    """Desired state."""
    status: IncidentStatus | None = None
    """Observed state."""
