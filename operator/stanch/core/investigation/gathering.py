"""Shaping raw Kubernetes objects and metric series into bounded evidence models.

Pure: the evidence collectors (``stanch.adapters.evidence``) fetch plain JSON dicts and hand them to
these functions, so every grouping and summary rule is testable with hand-built objects. Nothing
here ranks causes; that is ``stanch.core.investigation.analysis``. Every function is linear in its input: an
investigation of a namespace with thousands of pods and events must stay well under a second.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.core.investigation.attribution import SPEC_ROOTS, Writer, config_writer, config_writers, roots_of
from stanch.core.investigation.diffs import HASH_LABEL, images_of, template_diff
from stanch.core.models import (
    ConfigChange,
    EventGroup,
    MetricPoint,
    MetricSummary,
    NodeEvidence,
    ObjectRef,
    PodGroup,
    PodHealth,
    RolloutRevision,
    WorkloadStatus,
)
from stanch.core.models.incident import ReasonCount

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
UNSCHEDULED = "<unscheduled>"
MAX_POINTS = 60

Obj = Mapping[str, Any]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the API server, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def revision_of(replica_set: Obj) -> int | None:
    raw = (_meta(replica_set).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def controlled_by(obj: Obj, uid: str | None) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or ()
    )


def owned_replica_sets(deployment: Obj, replica_sets: Iterable[Obj]) -> list[Obj]:
    """The Deployment's ReplicaSets (by controller reference, not just by labels), oldest revision first."""
    uid = _meta(deployment).get("uid")
    owned = [rs for rs in replica_sets if controlled_by(rs, uid)]
    return sorted(owned, key=lambda rs: (revision_of(rs) or 0, _meta(rs).get("name", "")))


def revisions_by_hash(replica_sets: Iterable[Obj]) -> dict[str, int]:
    """``pod-template-hash`` → revision number, for mapping pods and metric series to revisions."""
    out: dict[str, int] = {}
    for rs in replica_sets:
        rev = revision_of(rs)
        h = (_meta(rs).get("labels") or {}).get(HASH_LABEL)
        if rev is not None and h:
            out[h] = rev
    return out


def _strip_hash(template: Obj) -> dict[str, Any]:
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    return {**template, "metadata": meta}


REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
"""Earlier revision numbers of a ReplicaSet the Deployment rolled back to (it reuses the old one)."""
_SCALED_UP = re.compile(r"^Scaled up replica set (\S+?)(?: from \d+)? to \d+")


def _rolled_out_at(rs: Obj, deployment_events: Sequence[Obj]) -> datetime | None:
    """When the Deployment last scaled a *reused* ReplicaSet up (None for one used once: its
    creation is its rollout). Events expire (1 h by default), so an old rollback has no time."""
    meta = _meta(rs)
    if not (meta.get("annotations") or {}).get(REVISION_HISTORY):
        return None
    name = meta.get("name")
    times = [
        _event_times(e)[1]
        for e in deployment_events
        if e.get("reason") == "ScalingReplicaSet"
        and (m := _SCALED_UP.match(str(e.get("message") or ""))) is not None
        and m.group(1) == name
    ]
    return max((t for t in times if t is not None), default=None)


_WRITE_SKEW = timedelta(seconds=5)


def _template_writer(writer: Writer | None, rs: Obj) -> str | None:
    """The template's writer, when it wrote no earlier than this ReplicaSet was created (an older
    write made an older revision; a rollback to this one by another manager is its own write)."""
    created = parse_time(_meta(rs).get("creationTimestamp"))
    if writer is None or writer.time is None or (created is not None and writer.time < created - _WRITE_SKEW):
        return None
    return f"{writer.manager} ({writer.operation})" if writer.operation else writer.manager


def rollout_history(
    deployment: Obj, replica_sets: Iterable[Obj], deployment_events: Sequence[Obj] = ()
) -> list[RolloutRevision]:
    """Every retained revision, newest first, each diffed against the previous retained revision."""
    owned = owned_replica_sets(deployment, replica_sets)
    current_rev = revision_of(deployment)
    writer = next(iter(config_writers(deployment, SPEC_ROOTS, fields=("template",))), None)
    completed = rollout_completed_at(deployment)
    out: list[RolloutRevision] = []
    previous: Obj | None = None
    for rs in owned:
        rev = revision_of(rs)
        template = (rs.get("spec") or {}).get("template") or {}
        status = rs.get("status") or {}
        meta = _meta(rs)
        cause = (meta.get("annotations") or {}).get(CHANGE_CAUSE)
        out.append(
            RolloutRevision(
                revision=rev or 0,
                replica_set=meta.get("name", "unknown"),
                created_at=parse_time(meta.get("creationTimestamp")),
                rolled_out_at=_rolled_out_at(rs, deployment_events),
                change_cause=cause[:1024] if isinstance(cause, str) else None,
                images=images_of(template)[:16],
                changes=template_diff(
                    _strip_hash(previous) if previous is not None else None, _strip_hash(template)
                ),
                replicas=int(status.get("replicas") or 0),
                ready_replicas=int(status.get("readyReplicas") or 0),
                current=rev is not None and rev == current_rev,
                completed_at=completed if rev is not None and rev == current_rev else None,
                changed_by=_template_writer(writer, rs) if rev is not None and rev == current_rev else None,
            )
        )
        previous = template
    out.reverse()
    return out


def rollout_completed_at(deployment: Obj) -> datetime | None:
    """When the Deployment's latest rollout completed: its ``Progressing`` condition says
    ``NewReplicaSetAvailable`` (every pod updated and available, older ReplicaSets scaled to zero)
    since ``lastUpdateTime``. None while a rollout is under way or stuck."""
    cond = _condition(deployment, "Progressing")
    if cond is None or cond.get("status") != "True" or cond.get("reason") != "NewReplicaSetAvailable":
        return None
    return parse_time(cond.get("lastUpdateTime")) or parse_time(cond.get("lastTransitionTime"))


def workload_status(deployment: Obj) -> WorkloadStatus:
    """Desired, updated, ready and available replicas, and the rollout's progress, as the
    Deployment controller reports them."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    progressing = _condition(deployment, "Progressing") or {}
    available = _condition(deployment, "Available") or {}
    desired = spec.get("replicas")
    message = str(progressing.get("message") or "")
    if available.get("status") == "False":
        message = str(available.get("message") or message)
    reason = progressing.get("reason")
    return WorkloadStatus(
        desired=int(desired) if isinstance(desired, int) and desired >= 0 else None,
        updated=max(0, int(status.get("updatedReplicas") or 0)),
        ready=max(0, int(status.get("readyReplicas") or 0)),
        available=max(0, int(status.get("availableReplicas") or 0)),
        progressing_reason=str(reason)[:128] if reason else None,
        progressing_since=parse_time(progressing.get("lastUpdateTime"))
        or parse_time(progressing.get("lastTransitionTime")),
        message=message[:1024],
    )


# --- pods ---------------------------------------------------------------------------------------


def _condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def restarts_of(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def pod_reasons(pod: Obj) -> set[str]:
    """Why a pod is unwell: waiting/terminated reasons, Unschedulable, eviction, not ready."""
    status = pod.get("status") or {}
    reasons: set[str] = set()
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] not in ("ContainerCreating", "PodInitializing"):
            reasons.add(str(waiting["reason"]))
        terminated = state.get("terminated") or {}
        if terminated.get("reason") and terminated["reason"] != "Completed":
            reasons.add(str(terminated["reason"]))
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if int(cs.get("restartCount") or 0) > 0 and last.get("reason") and last["reason"] != "Completed":
            reasons.add(str(last["reason"]))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        reasons.add(str(scheduled.get("reason") or "Unschedulable"))
    if status.get("reason"):  # Evicted, NodeLost, ...
        reasons.add(str(status["reason"]))
    if status.get("phase") == "Failed" and not reasons:
        reasons.add("Failed")
    if status.get("phase") == "Running" and not is_ready(pod) and not reasons:
        reasons.add("NotReady")
    return reasons


def pod_revision(pod: Obj, by_hash: Mapping[str, int]) -> str:
    h = (_meta(pod).get("labels") or {}).get(HASH_LABEL)
    if h and h in by_hash:
        return str(by_hash[h])
    return h or "unknown"


def is_terminating(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


@dataclass
class _Group:
    total: int = 0
    ready: int = 0
    restarts: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, ready: bool, restarts: int, reasons: set[str]) -> None:
        self.total += 1
        self.ready += ready
        self.restarts += restarts
        self.reasons.update(reasons)


def _reason_counts(counter: Counter[str]) -> list[ReasonCount]:
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [ReasonCount(reason=r[:128], count=c) for r, c in ordered[:10]]


def _group(key: str, g: _Group) -> PodGroup:
    return PodGroup(
        key=key[:253], total=g.total, ready=g.ready, restarts=g.restarts, reasons=_reason_counts(g.reasons)
    )


def pod_health(pods: Iterable[Obj], by_hash: Mapping[str, int]) -> PodHealth:
    """Readiness, restarts and reasons, overall, per revision (newest first) and per node (worst first).

    Terminating pods are left out: during a rollout they are on their way out and would count twice.
    """
    overall = _Group()
    by_rev: dict[str, _Group] = defaultdict(_Group)
    by_node: dict[str, _Group] = defaultdict(_Group)
    for pod in pods:
        if is_terminating(pod):
            continue
        ready, restarts, reasons = is_ready(pod), restarts_of(pod), pod_reasons(pod)
        overall.add(ready, restarts, reasons)
        by_rev[pod_revision(pod, by_hash)].add(ready, restarts, reasons)
        node = (pod.get("spec") or {}).get("nodeName") or UNSCHEDULED
        by_node[node].add(ready, restarts, reasons)

    def rev_key(key: str) -> tuple[int, int, str]:
        return (0, -int(key), "") if key.isdigit() else (1, 0, key)

    def worst(item: tuple[str, _Group]) -> tuple[float, int, str]:
        key, g = item
        return (g.ready / g.total if g.total else 1.0, -g.restarts, key)

    return PodHealth(
        total=overall.total,
        ready=overall.ready,
        restarts=overall.restarts,
        reasons=_reason_counts(overall.reasons),
        by_revision=[_group(k, by_rev[k]) for k in sorted(by_rev, key=rev_key)[:10]],
        by_node=[_group(k, g) for k, g in sorted(by_node.items(), key=worst)[:20]],
    )


def unhealthy_score(pod: Obj) -> int:
    """Higher for pods whose logs are more likely to explain the incident (for log sampling)."""
    return (0 if is_ready(pod) else 4) + min(restarts_of(pod), 3) + (2 if pod_reasons(pod) else 0)


# --- events -------------------------------------------------------------------------------------


def _event_times(event: Obj) -> tuple[datetime | None, datetime | None, int]:
    series = event.get("series") or {}
    first = (
        parse_time(event.get("firstTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(_meta(event).get("creationTimestamp"))
    )
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or first
    )
    count = int(series.get("count") or event.get("count") or 1)
    return first, last, count


@dataclass
class _EventAgg:
    type: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    objects: set[tuple[str, str]] = field(default_factory=set)
    sample: str = ""


@dataclass(frozen=True)
class EventSelections:
    """The three Event selections an investigation reads: Warnings of anything in the namespace
    (field selector ``type=Warning``), any Event of the Deployment (``involvedObject.kind=Deployment,
    involvedObject.name=<target>``), and any Event of a ReplicaSet (``involvedObject.kind=ReplicaSet``).
    Normal pod Events are most of the volume and none of the diagnosis, so none selects them."""

    warnings: Sequence[Obj] = ()
    of_deployment: Sequence[Obj] = ()
    of_replica_sets: Sequence[Obj] = ()

    def all(self) -> list[Obj]:
        return [*self.warnings, *self.of_deployment, *self.of_replica_sets]


def _by_name(objs: Iterable[Obj]) -> list[Obj]:
    # The order a list answers in, so a capped selection is the same whether listed or remembered.
    return sorted(objs, key=lambda o: str(_meta(o).get("name", "")))


def select_events(events: Iterable[Obj], deployment: str, cap: int) -> EventSelections:
    """The three selections of :class:`EventSelections` made from Events already in memory, each
    capped at ``cap`` like the list it replaces."""
    warnings: list[Obj] = []
    of_deployment: list[Obj] = []
    of_replica_sets: list[Obj] = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if event.get("type") == "Warning":
            warnings.append(event)
        if involved.get("kind") == "Deployment" and involved.get("name") == deployment:
            of_deployment.append(event)
        elif involved.get("kind") == "ReplicaSet":
            of_replica_sets.append(event)
    return EventSelections(
        _by_name(warnings)[:cap], _by_name(of_deployment)[:cap], _by_name(of_replica_sets)[:cap]
    )


def relevant_objects(
    deployment: str, replica_sets: Iterable[str], pods: Iterable[str]
) -> set[tuple[str, str]]:
    """``(kind, name)`` of the objects whose Events concern the target: the Deployment, the
    ReplicaSets it controls and their pods. A Warning about anything else in the namespace (another
    team's pod) says nothing about this workload."""
    relevant = {("Deployment", deployment)}
    relevant |= {("ReplicaSet", n) for n in replica_sets}
    relevant |= {("Pod", n) for n in pods}
    return relevant


def _involved(event: Obj) -> tuple[str, str]:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return str(involved.get("kind", "")), str(involved.get("name", ""))


def target_events(selections: EventSelections, relevant: set[tuple[str, str]]) -> list[Obj]:
    """Events about the target, each once: the selections overlap (a Warning of the Deployment is
    in two of them). An Event is the same Event when its uid is, else its namespace and name."""
    seen: set[tuple[str, ...]] = set()
    out: list[Obj] = []
    for event in selections.all():
        if _involved(event) not in relevant:
            continue
        meta = _meta(event)
        uid, name = meta.get("uid"), meta.get("name")
        if uid or name:
            key = ("uid", str(uid)) if uid else ("name", str(meta.get("namespace", "")), str(name))
            if key in seen:
                continue
            seen.add(key)
        out.append(event)
    return out


def events_by_reason(events: Iterable[Obj], relevant: set[tuple[str, str]]) -> list[EventGroup]:
    """Events about ``relevant`` ``(kind, name)`` objects, aggregated by reason: Warnings first, then
    the most recent; the sample message is the latest one."""
    groups: dict[tuple[str, str], _EventAgg] = {}
    for event in events:
        key_obj = _involved(event)
        if key_obj not in relevant:
            continue
        reason = str(event.get("reason") or "Unknown")[:128]
        type_ = "Warning" if event.get("type") == "Warning" else "Normal"
        agg = groups.setdefault((reason, type_), _EventAgg(type_))
        first, last, count = _event_times(event)
        agg.count += count
        agg.objects.add(key_obj)
        if first is not None and (agg.first is None or first < agg.first):
            agg.first = first
        if last is not None and (agg.last is None or last >= agg.last):
            agg.last = last
            agg.sample = str(event.get("message") or event.get("note") or "")
        elif not agg.sample:
            agg.sample = str(event.get("message") or event.get("note") or "")
    epoch = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(
        groups.items(),
        key=lambda kv: (kv[1].type != "Warning", -(kv[1].last or epoch).timestamp(), -kv[1].count, kv[0][0]),
    )
    return [
        EventGroup(
            reason=reason,
            type="Warning" if agg.type == "Warning" else "Normal",
            count=agg.count,
            first_seen=agg.first,
            last_seen=agg.last,
            objects=len(agg.objects),
            sample_message=agg.sample[:1024],
        )
        for (reason, _), agg in ordered[:20]
    ]


# --- nodes --------------------------------------------------------------------------------------

_NODE_PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def node_evidence(nodes: Iterable[Obj], pods_per_node: Mapping[str, int]) -> list[NodeEvidence]:
    """Nodes hosting the target's pods: readiness, cordon, pressure, taints; problematic first."""
    out: list[NodeEvidence] = []
    for node in nodes:
        name = _meta(node).get("name")
        if not name or name not in pods_per_node:
            continue
        ready_cond = _condition(node, "Ready")
        ready = None if ready_cond is None else ready_cond.get("status") == "True"
        problems = []
        if ready_cond is not None and not ready:
            why = ready_cond.get("reason") or ready_cond.get("message") or ""
            problems.append(f"Ready={ready_cond.get('status')}" + (f" ({why})" if why else ""))
        for type_ in _NODE_PRESSURE:
            cond = _condition(node, type_)
            if cond and cond.get("status") == "True":
                problems.append(f"{type_}=True")
        taints = [
            f"{t.get('key')}" + (f"={t['value']}" if t.get("value") else "") + f":{t.get('effect')}"
            for t in (node.get("spec") or {}).get("taints") or ()
        ]
        out.append(
            NodeEvidence(
                name=name,
                ready=ready,
                unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
                problems=problems[:10],
                taints=taints[:10],
                pods=pods_per_node[name],
            )
        )
    out.sort(key=lambda n: (n.ready is not False and not n.problems and not n.unschedulable, -n.pods, n.name))
    return out[:20]


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """Objects a pod template refers to by name."""

    config_maps: frozenset[str]
    secrets: frozenset[str]


def template_references(template: Obj) -> References:
    spec = template.get("spec") or {}
    cms: set[str] = set()
    secrets: set[str] = set()
    for vol in spec.get("volumes") or ():
        if (vol.get("configMap") or {}).get("name"):
            cms.add(vol["configMap"]["name"])
        if (vol.get("secret") or {}).get("secretName"):
            secrets.add(vol["secret"]["secretName"])
        for source in (vol.get("projected") or {}).get("sources") or ():
            if (source.get("configMap") or {}).get("name"):
                cms.add(source["configMap"]["name"])
            if (source.get("secret") or {}).get("name"):
                secrets.add(source["secret"]["name"])
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        for var in container.get("env") or ():
            source = var.get("valueFrom") or {}
            if (source.get("configMapKeyRef") or {}).get("name"):
                cms.add(source["configMapKeyRef"]["name"])
            if (source.get("secretKeyRef") or {}).get("name"):
                secrets.add(source["secretKeyRef"]["name"])
        for env_from in container.get("envFrom") or ():
            if (env_from.get("configMapRef") or {}).get("name"):
                cms.add(env_from["configMapRef"]["name"])
            if (env_from.get("secretRef") or {}).get("name"):
                secrets.add(env_from["secretRef"]["name"])
    for pull in spec.get("imagePullSecrets") or ():
        if pull.get("name"):
            secrets.add(pull["name"])
    return References(frozenset(cms), frozenset(secrets))


def last_change(obj: Obj, kind: str | None = None) -> tuple[datetime | None, str]:
    """When an object's configuration last changed and who wrote it: the newest managedFields entry
    owning its spec (a ConfigMap's data), never a status writer nor a metadata-only one (see
    ``attribution``); else its creation."""
    writer = config_writer(obj, roots_of(kind or obj.get("kind")))
    if writer is None:
        return parse_time(_meta(obj).get("creationTimestamp")), "created"
    return writer.time, writer.describe()


def _ref(kind: str, obj: Obj) -> ObjectRef:
    meta = _meta(obj)
    return ObjectRef(kind=kind, name=meta["name"], namespace=meta.get("namespace"), uid=meta.get("uid"))


def _selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


# Published into every namespace by the control plane; its creation is not a change anyone made.
_PUBLISHED = frozenset({"kube-root-ca.crt"})


def config_changes(
    *,
    namespace: str,
    template: Obj,
    deployment_name: str,
    config_maps: Sequence[Obj],
    services: Sequence[Obj],
    endpoint_slices: Sequence[Obj],
    hpas: Sequence[Obj],
    quotas: Sequence[Obj],
    limit_ranges: Sequence[Obj],
    since: datetime,
) -> list[ConfigChange]:
    """Configuration the workload depends on, most recently changed first.

    Referenced ConfigMaps are always listed; other ConfigMaps only when they changed after ``since``.
    Secrets are listed by name only: Stanch is granted no access to Secrets by default, so their
    change times are unknown, and their data is never read.
    """
    refs = template_references(template)
    labels = (template.get("metadata") or {}).get("labels") or {}
    out: list[ConfigChange] = []
    for cm in config_maps:
        name = _meta(cm).get("name", "")
        changed, what = last_change(cm, "ConfigMap")
        referenced = name in refs.config_maps
        if not referenced and (changed is None or changed < since or name in _PUBLISHED):
            continue
        keys = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
        out.append(
            ConfigChange(
                object=_ref("ConfigMap", cm),
                changed_at=changed,
                created_at=parse_time(_meta(cm).get("creationTimestamp")),
                summary=f"ConfigMap {name} ({keys} keys): {what}"[:512],
                referenced=referenced,
            )
        )
    for secret in sorted(refs.secrets):
        out.append(
            ConfigChange(
                object=ObjectRef(kind="Secret", name=secret, namespace=namespace),
                summary=(
                    f"Secret {secret} is referenced by the pod template; its change time is unknown"
                    " because Stanch has no Secret access by default (data is never read)"
                ),
                referenced=True,
            )
        )
    slices_by_service: dict[str, list[Obj]] = defaultdict(list)
    for es in endpoint_slices:
        service = (_meta(es).get("labels") or {}).get("kubernetes.io/service-name")
        if service:
            slices_by_service[service].append(es)
    for svc in services:
        selector = (svc.get("spec") or {}).get("selector")
        if not _selects(selector, labels):
            continue
        name = _meta(svc).get("name", "")
        changed, what = last_change(svc, "Service")
        endpoints = [ep for es in slices_by_service.get(name, ()) for ep in es.get("endpoints") or ()]
        ready = sum(1 for ep in endpoints if (ep.get("conditions") or {}).get("ready"))
        out.append(
            ConfigChange(
                object=_ref("Service", svc),
                changed_at=changed,
                created_at=parse_time(_meta(svc).get("creationTimestamp")),
                summary=f"Service {name} selects the pods; {ready}/{len(endpoints)} endpoints ready; {what}"[
                    :512
                ],
                referenced=True,
            )
        )
    for hpa in hpas:
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") != deployment_name:
            continue
        spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
        changed, what = last_change(hpa, "HorizontalPodAutoscaler")
        scaled = parse_time(status.get("lastScaleTime"))
        summary = (
            f"HPA {_meta(hpa).get('name')}: {spec.get('minReplicas', 1)}..{spec.get('maxReplicas')} replicas,"
            f" current {status.get('currentReplicas')}, desired {status.get('desiredReplicas')}"
        )
        # A spec change in the window is the change, even when the HPA rescaled after it (a lowered
        # maxReplicas makes it scale down at once): the rescale is its effect, not the news.
        spec_changed = what != "created" and changed is not None and changed >= since
        if not spec_changed and scaled is not None and (changed is None or scaled > changed):
            changed, summary = scaled, summary + "; last scaled"
        else:
            summary += f"; {what}"
        out.append(
            ConfigChange(
                object=_ref("HorizontalPodAutoscaler", hpa),
                changed_at=changed,
                created_at=parse_time(_meta(hpa).get("creationTimestamp")),
                summary=summary[:512],
                referenced=True,
            )
        )
    for quota in quotas:
        changed, what = last_change(quota, "ResourceQuota")
        hard = (quota.get("status") or {}).get("hard") or {}
        used = (quota.get("status") or {}).get("used") or {}
        full = sorted(k for k in hard if k in used and used[k] == hard[k])
        summary = f"ResourceQuota {_meta(quota).get('name')}: " + (
            f"at its limit for {', '.join(full)}" if full else "below its limits"
        )
        if full or (changed is not None and changed >= since):
            out.append(
                ConfigChange(
                    object=_ref("ResourceQuota", quota),
                    changed_at=changed,
                    created_at=parse_time(_meta(quota).get("creationTimestamp")),
                    summary=f"{summary}; {what}"[:512],
                )
            )
    for lr in limit_ranges:
        changed, what = last_change(lr, "LimitRange")
        if changed is not None and changed >= since:
            out.append(
                ConfigChange(
                    object=_ref("LimitRange", lr),
                    changed_at=changed,
                    created_at=parse_time(_meta(lr).get("creationTimestamp")),
                    summary=f"LimitRange {_meta(lr).get('name')}: {what}"[:512],
                )
            )
    epoch = datetime.min.replace(tzinfo=UTC)
    out.sort(key=lambda c: (c.changed_at is None, -(c.changed_at or epoch).timestamp()))
    return out[:20]


# --- metrics ------------------------------------------------------------------------------------


def downsample(points: Sequence[tuple[datetime, float]], limit: int = MAX_POINTS) -> list[MetricPoint]:
    """At most ``limit`` points spread evenly over the series, always keeping the latest."""
    clean = [(t, v) for t, v in points if math.isfinite(v)]
    if len(clean) > limit:
        step = (len(clean) - 1) / (limit - 1)
        clean = [clean[round(i * step)] for i in range(limit)]
    return [MetricPoint(time=t, value=v) for t, v in clean]


def summarise(
    signal: str,
    scope: str,
    points: Sequence[tuple[datetime, float]],
    *,
    reference: datetime,
    unit: str | None,
    keep_points: bool,
    fresh_after: datetime | None = None,
) -> MetricSummary:
    """Mean before ``reference``, latest value, and the highest value from ``reference`` on.

    ``reference`` is the Incident's own start hint (``startedAt``, else its creation time); the
    analysis refines the onset from the overall points. A series with no samples says so in
    ``error``: no data is never reported as a zero. A series whose last sample is older than
    ``fresh_after`` (a revision whose pods are gone) has no ``now``.
    """
    clean = [(t, v) for t, v in points if math.isfinite(v)]
    if not clean:
        return MetricSummary(signal=signal, scope=scope[:300], unit=unit, error="no data in the window")
    before = [v for t, v in clean if t < reference]
    after = [v for t, v in clean if t >= reference] or [v for _, v in clean]
    return MetricSummary(
        signal=signal,
        scope=scope[:300],
        before=sum(before) / len(before) if before else None,
        now=clean[-1][1] if fresh_after is None or clean[-1][0] >= fresh_after else None,
        peak=max(after),
        unit=unit,
        points=downsample(clean) if keep_points else [],
    )
