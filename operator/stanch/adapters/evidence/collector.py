"""Gather an Incident's evidence: concurrent, bounded, and honest about what it could not get.

One refresh makes a fixed set of requests whatever the namespace's size: one GET of the
Deployment, then one LIST (paged) each of its ReplicaSets, its pods, three event selections,
ConfigMaps, Services, EndpointSlices, HPAs, ResourceQuotas, LimitRanges and Nodes, the signal
queries, and a capped sample of pod logs (the only per-pod requests). With a warm evidence cache
(``memory``) the pods and the three Event selections come from memory instead, selected the same
way. Each collector that fails or runs out of time becomes a :class:`Partial` entry instead of
failing the investigation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from stanch.adapters.evidence.logs import LogLimits, SampledLine, choose, read_logs
from stanch.adapters.evidence.metrics import BREAKDOWN_POINTS, SignalResult, query_signals, step_for
from stanch.adapters.kube import KubeClient, KubeError
from stanch.adapters.prometheus import PrometheusClient
from stanch.core.investigation.breakdowns import (
    DEFAULT_BREAKDOWN_TEMPLATES,
    HOST,
    HOST_LABELS,
    POD,
    UNITS,
    overall_signals,
)
from stanch.core.investigation.dependencies import (
    HostErrors,
    Namespace,
    dependency_evidence,
    services_to_examine,
    workload_behind,
)
from stanch.core.investigation.gathering import (
    EventSelections,
    config_changes,
    events_by_reason,
    is_terminating,
    node_evidence,
    owned_replica_sets,
    pod_health,
    relevant_objects,
    revisions_by_hash,
    rollout_history,
    select_events,
    summarise,
    target_events,
    workload_status,
)
from stanch.core.investigation.per_pod import PodPlace, latest_values, places, restart_spread, spread
from stanch.core.label_selectors import selects
from stanch.core.models import METRICS_MAX, Evidence, MetricSummary, PodSpread

T = TypeVar("T")

# The Incident window never reaches further back than this, however old the Incident.
MAX_WINDOW = timedelta(hours=6)
# Breakdowns in the order they matter, so the entry cap drops the least useful ones.
_BREAKDOWN_PRIORITY = (
    ("error_ratio", "revision"),
    ("error_ratio", "node"),
    ("latency_p99", "revision"),
    ("latency_p99", "node"),
    ("throughput", "revision"),
    ("throughput", "node"),
)


@dataclass(frozen=True)
class CollectorLimits:
    concurrency: int = 8
    """Kubernetes requests in flight at once."""
    prometheus_concurrency: int = 4
    """Prometheus queries in flight at once; separate, so slow queries never starve the API reads."""
    max_pods: int = 5000
    max_events: int = 5000
    max_objects: int = 1000
    max_nodes: int = 5000
    seconds_per_collector: float = 10.0
    prometheus_seconds: float = 8.0
    """Per query."""
    prometheus_budget: float = 15.0
    """All signal queries of one refresh together; what answered in time is kept."""
    logs: LogLimits = field(default_factory=LogLimits)


class MemoryEvidence(Protocol):
    """Pods and Events already in memory (a watch cache); None where it cannot vouch for them."""

    def pods(self, namespace: str) -> list[dict[str, Any]] | None: ...

    def events(self, namespace: str) -> list[dict[str, Any]] | None: ...


@dataclass(frozen=True)
class EvidenceRequest:
    namespace: str
    name: str
    now: datetime
    reference: datetime
    """The Incident's start hint: ``spec.startedAt``, else its creation time."""
    lookback: timedelta
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Partial:
    """A collector that did not deliver, and why (shown as an ``EvidencePartial`` condition)."""

    collector: str
    reason: str


@dataclass
class Collected:
    evidence: Evidence
    log_lines: list[SampledLine]
    partial: list[Partial]
    workload_found: bool
    window_start: datetime
    window_end: datetime
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each collector took (the slowest request of a kind), for logs and the benchmark."""
    from_memory: tuple[str, ...] = ()
    """Collectors served by the watch cache instead of a list."""


Objs = list[dict[str, Any]]


@dataclass(frozen=True)
class Listed:
    """What the Kubernetes lists of one refresh returned (empty where a collector failed; the
    failure is a :class:`Partial`)."""

    replica_sets: Objs
    pods: Objs
    events: EventSelections
    config_maps: Objs
    services: Objs
    endpoint_slices: Objs
    hpas: Objs
    quotas: Objs
    limit_ranges: Objs
    nodes: Objs


def label_selector(selector: Mapping[str, Any] | None) -> str | None:
    """A LabelSelector object as a label-selector query string; None when it selects nothing."""
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KubeError):
        hint = " (RBAC does not allow it)" if exc.forbidden else ""
        return f"{exc.status} {exc.reason}: {exc.message}"[:400] + hint
    return f"{type(exc).__name__}: {exc}"[:400]


async def collect(
    kube: KubeClient,
    prometheus: PrometheusClient,
    request: EvidenceRequest,
    templates: Mapping[str, str],
    limits: CollectorLimits | None = None,
    memory: MemoryEvidence | None = None,
) -> Collected:
    limits = limits or CollectorLimits()
    ns, name = request.namespace, request.name
    sem = asyncio.Semaphore(limits.concurrency)
    prom_sem = asyncio.Semaphore(limits.prometheus_concurrency)
    partial: list[Partial] = []
    start = max(min(request.reference, request.now) - request.lookback, request.now - MAX_WINDOW)
    end = request.now

    timings: dict[str, float] = {}

    async def guarded(collector: str, work: Awaitable[T], default: T) -> T:
        began = time.perf_counter()
        try:
            return await asyncio.wait_for(work, limits.seconds_per_collector)
        except TimeoutError:
            partial.append(Partial(collector, f"no answer within {limits.seconds_per_collector:g}s"))
        except Exception as exc:  # a failed collector is recorded, never fatal
            partial.append(Partial(collector, _describe(exc)))
        finally:
            timings[collector] = max(timings.get(collector, 0.0), time.perf_counter() - began)
        return default

    async def listed(kind: str, limit: int, **selectors: str | None) -> list[dict[str, Any]]:
        async with sem:
            # Evidence may be a moment old; the watch cache spares etcd a 10,000-Event read per refresh.
            return await kube.list(kind, ns, limit=limit, cached=True, **selectors)

    all_templates = {**DEFAULT_BREAKDOWN_TEMPLATES, **templates}
    signals = overall_signals(templates, request.signals)
    values = {"namespace": ns, "workload": name}

    async def metrics_timed() -> list[SignalResult]:
        began = time.perf_counter()
        try:
            return await query_signals(
                prometheus,
                all_templates,
                signals,
                values,
                start,
                end,
                prom_sem,
                limits.prometheus_seconds,
                limits.prometheus_budget,
            )
        finally:
            timings["metrics"] = time.perf_counter() - began

    # Not under the per-collector timeout: query_signals keeps the answers that arrived in time.
    metrics_task = asyncio.ensure_future(metrics_timed())

    async def get_deployment() -> dict[str, Any] | None:
        async with sem:
            return await kube.get("Deployment", name, ns)

    deployment = await guarded("deployment", get_deployment(), None)
    found = deployment is not None
    if deployment is None and not any(p.collector == "deployment" for p in partial):
        partial.append(Partial("deployment", f"Deployment {ns}/{name} not found (deleted, or never existed)"))

    selector_obj = (deployment or {}).get("spec", {}).get("selector")
    selector = label_selector(selector_obj)
    none: list[dict[str, Any]] = []

    async def nothing() -> list[dict[str, Any]]:
        return []

    async def given(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return items

    from_memory: list[str] = []
    remembered_pods = memory.pods(ns) if memory is not None and selector else None
    if remembered_pods is not None:
        assert selector_obj is not None
        from_memory.append("pods")
        pods_q = given(
            _by_name([p for p in remembered_pods if selects(selector_obj, _labels(p))])[: limits.max_pods]
        )
    else:
        pods_q = listed("Pod", limits.max_pods, label_selector=selector) if selector else nothing()
    remembered_events = memory.events(ns) if memory is not None else None
    if remembered_events is not None:
        from_memory.append("events")

    async def event_lists() -> EventSelections:
        if remembered_events is not None:
            return select_events(remembered_events, name, limits.max_events)
        of = await asyncio.gather(
            guarded("events", listed("Event", limits.max_events, field_selector="type=Warning"), none),
            guarded(
                "events",
                listed(
                    "Event",
                    limits.max_events,
                    field_selector=f"involvedObject.kind=Deployment,involvedObject.name={name}",
                ),
                none,
            ),
            guarded(
                "events",
                listed("Event", limits.max_events, field_selector="involvedObject.kind=ReplicaSet"),
                none,
            ),
        )
        return EventSelections(*of)

    rs_q = listed("ReplicaSet", limits.max_objects, label_selector=selector) if selector else nothing()

    events_task = asyncio.ensure_future(event_lists())
    lists = await _gather_named(
        replica_sets=guarded("replicasets", rs_q, none),
        pods=guarded("pods", pods_q, none),
        config_maps=guarded("configmaps", listed("ConfigMap", limits.max_objects), none),
        services=guarded("services", listed("Service", limits.max_objects), none),
        endpoint_slices=guarded("endpointslices", listed("EndpointSlice", limits.max_objects), none),
        hpas=guarded("hpas", listed("HorizontalPodAutoscaler", limits.max_objects), none),
        quotas=guarded("resourcequotas", listed("ResourceQuota", limits.max_objects), none),
        limit_ranges=guarded("limitranges", listed("LimitRange", limits.max_objects), none),
        nodes=guarded("nodes", _list_nodes(kube, sem, limits.max_nodes), none),
    )
    got = Listed(
        replica_sets=lists["replica_sets"],
        pods=lists["pods"],
        events=await events_task,
        config_maps=lists["config_maps"],
        services=lists["services"],
        endpoint_slices=lists["endpoint_slices"],
        hpas=lists["hpas"],
        quotas=lists["quotas"],
        limit_ranges=lists["limit_ranges"],
        nodes=lists["nodes"],
    )
    # A capped list is a sample: say so rather than present its counts as the whole.
    for collector, items, cap in (
        ("pods", got.pods, limits.max_pods),
        ("events", got.events.warnings, limits.max_events),
        ("events", got.events.of_replica_sets, limits.max_events),
    ):
        if len(items) >= cap:
            partial.append(Partial(collector, f"more than {cap} objects; only the first {cap} were read"))
    owned = owned_replica_sets(deployment, got.replica_sets) if deployment else []
    by_hash = revisions_by_hash(owned)
    owned_pods = [p for p in got.pods if _owned_by_any(p, {rs["metadata"].get("uid") for rs in owned})]

    log_requests = choose(owned_pods, by_hash, limits.logs)
    log_lines, log_problems = await guarded(
        "logs", read_logs(kube, ns, log_requests, limits.logs, sem), ([], [])
    )
    if log_problems:
        partial.append(
            Partial("logs", f"{len(log_problems)} of {len(log_requests)} log reads failed: {log_problems[0]}")
        )
    if found and owned_pods and not log_requests:
        partial.append(Partial("logs", "no pod is running on a node, so there are no logs to read"))

    try:
        signal_results = await metrics_task
    except Exception as exc:  # a failed collector is recorded, never fatal
        partial.append(Partial("metrics", _describe(exc)))
        signal_results = []
    host_errors = _host_errors(signal_results)
    neighbours = await guarded(
        "dependencies",
        _dependency_objects(
            Namespace(ns, got.services, got.endpoint_slices),
            log_lines,
            host_errors,
            listed,
            limits.max_objects,
        ),
        None,
    )
    fresh = end - 3 * step_for(start, end, BREAKDOWN_POINTS)
    metrics, metric_problems = _metric_summaries(signal_results, by_hash, request.reference, fresh)
    partial.extend(Partial(f"metrics:{s}", why) for s, why in metric_problems)
    where = places(owned_pods, by_hash)
    spreads = _pod_spreads(signal_results, where, fresh)
    restarts = restart_spread(owned_pods, by_hash)
    if restarts is not None:
        spreads.append(restarts)
    evidence = _shape(ns, name, deployment, got, owned, owned_pods, start, metrics)
    dependencies = dependency_evidence(log_lines, neighbours, host_errors) if neighbours is not None else []
    evidence = evidence.model_copy(update={"pod_spreads": spreads[:8], "dependencies": dependencies})
    return Collected(evidence, log_lines, _dedupe(partial), found, start, end, timings, tuple(from_memory))


def _shape(
    ns: str,
    name: str,
    deployment: Mapping[str, Any] | None,
    got: Listed,
    owned: Sequence[Mapping[str, Any]],
    owned_pods: Sequence[Mapping[str, Any]],
    since: datetime,
    metrics: list[MetricSummary],
) -> Evidence:
    """The evidence (all but metrics and logs) shaped by the core from what the lists returned."""
    by_hash = revisions_by_hash(owned)
    relevant = relevant_objects(
        name, (rs["metadata"]["name"] for rs in owned), (p["metadata"]["name"] for p in owned_pods)
    )
    per_node: Counter[str] = Counter(
        p["spec"]["nodeName"]
        for p in owned_pods
        if not is_terminating(p) and p.get("spec", {}).get("nodeName")
    )
    if deployment is None:
        return Evidence(
            pod_health=pod_health(owned_pods, by_hash),
            events_by_reason=events_by_reason(target_events(got.events, relevant), relevant),
            nodes=node_evidence(got.nodes, per_node),
            metrics=metrics,
        )
    template = (deployment.get("spec") or {}).get("template") or {}
    return Evidence(
        rollouts=rollout_history(deployment, owned, got.events.of_deployment),
        pod_health=pod_health(owned_pods, by_hash),
        events_by_reason=events_by_reason(target_events(got.events, relevant), relevant),
        config_changes=config_changes(
            namespace=ns,
            template=template,
            deployment_name=name,
            config_maps=got.config_maps,
            services=got.services,
            endpoint_slices=got.endpoint_slices,
            hpas=got.hpas,
            quotas=got.quotas,
            limit_ranges=got.limit_ranges,
            since=since,
        ),
        nodes=node_evidence(got.nodes, per_node),
        metrics=metrics,
        workload=workload_status(deployment),
    )


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def _by_name(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The order a list answers in, so a capped selection is the same whether listed or remembered.
    return sorted(objs, key=lambda o: str(o.get("metadata", {}).get("name", "")))


async def _list_nodes(kube: KubeClient, sem: asyncio.Semaphore, limit: int) -> list[dict[str, Any]]:
    async with sem:
        return await kube.list("Node", limit=limit, cached=True)


def _owned_by_any(obj: Mapping[str, Any], uids: set[str | None]) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") in uids
        for ref in obj.get("metadata", {}).get("ownerReferences") or ()
    )


async def _gather_named(**work: Awaitable[Objs]) -> dict[str, Objs]:
    """Await every list at once; each answer under its own name."""
    answers = await asyncio.gather(*work.values())
    return dict(zip(work, answers, strict=True))


def _dedupe(partial: Sequence[Partial]) -> list[Partial]:
    merged: dict[str, list[str]] = defaultdict(list)
    for p in partial:
        if p.reason not in merged[p.collector]:
            merged[p.collector].append(p.reason)
    return [Partial(c, "; ".join(reasons)[:500]) for c, reasons in merged.items()]


def _metric_summaries(
    results: Sequence[SignalResult], by_hash: Mapping[str, int], reference: datetime, fresh: datetime
) -> tuple[list[MetricSummary], list[tuple[str, str]]]:
    overall: list[MetricSummary] = []
    broken: dict[tuple[str, str], list[MetricSummary]] = defaultdict(list)
    problems: list[tuple[str, str]] = []
    for result in results:
        unit = UNITS.get(result.signal)
        if result.dimension in (POD, HOST):
            if result.error is not None:
                problems.append((f"{result.signal}_by_{result.dimension}", result.error))
            continue  # kept as a spread (_pod_spreads) or per dependency (_host_errors)
        if result.dimension == "overall":
            if result.error is not None:
                overall.append(MetricSummary(signal=result.signal, unit=unit, error=result.error))
                problems.append((result.signal, result.error))
                continue
            points = result.series[0].points if len(result.series) == 1 else []
            summary = summarise(
                result.signal, "overall", points, reference=reference, unit=unit, keep_points=True
            )
            if len(result.series) > 1:
                summary = summary.model_copy(
                    update={"error": f"the template returned {len(result.series)} series; expected one"}
                )
            overall.append(summary)
            continue
        if result.error is not None:
            problems.append((f"{result.signal}_by_{result.dimension}", result.error))
            continue
        for series in result.series:
            key = series.labels.get(result.dimension, "")
            if not key:
                continue  # load-balancer answers with no pod behind them carry no revision/node
            if result.dimension == "revision":
                key = str(by_hash.get(key, key))
            broken[(result.signal, result.dimension)].append(
                summarise(
                    result.signal,
                    f"{result.dimension}:{key}",
                    series.points,
                    reference=reference,
                    unit=unit,
                    keep_points=False,
                    fresh_after=fresh,
                )
            )
    ordered = list(overall)
    priority: list[tuple[str, str]] = [*_BREAKDOWN_PRIORITY]
    priority += [k for k in broken if k not in _BREAKDOWN_PRIORITY]
    for which in priority:
        ordered.extend(sorted(broken.get(which, []), key=lambda m: -(m.peak or 0.0)))
    return ordered[:METRICS_MAX], problems


def _pod_spreads(
    results: Sequence[SignalResult], where: Mapping[str, PodPlace], fresh: datetime
) -> list[PodSpread]:
    """Each per-pod breakdown as a spread over the target's current pods, at the latest moment."""
    out: list[PodSpread] = []
    for result in results:
        if result.dimension != POD or result.error is not None:
            continue
        values, at = latest_values(((s.labels.get(POD, ""), s.points) for s in result.series), fresh)
        got = spread(result.signal, values, unit=UNITS.get(result.signal), at=at, where=where)
        if got is not None:
            out.append(got)
    return out


class _Lister(Protocol):
    def __call__(self, kind: str, limit: int, **selectors: str | None) -> Awaitable[list[dict[str, Any]]]: ...


async def _dependency_objects(
    ns: Namespace,
    lines: Sequence[SampledLine],
    host_errors: Sequence[HostErrors],
    listed: _Lister,
    cap: int,
) -> Namespace:
    """The namespace's objects a failing host is matched against. Only when the error lines name a
    Service of the namespace are its Deployments and StatefulSets listed (to find the workload
    behind it), and then the ReplicaSets of the matched Deployments (its revisions)."""
    wanted = set(services_to_examine(lines, ns, host_errors))
    if not wanted:
        return ns
    deployments, stateful_sets = await asyncio.gather(listed("Deployment", cap), listed("StatefulSet", cap))
    ns = replace(ns, deployments=deployments, stateful_sets=stateful_sets)
    selectors = []
    for svc in ns.services:
        if svc.get("metadata", {}).get("name") not in wanted:
            continue
        behind = workload_behind(svc, ns)
        if behind is not None and behind[0] == "Deployment":
            selector = label_selector((behind[1].get("spec") or {}).get("selector"))
            if selector and selector not in selectors:
                selectors.append(selector)
    found = await asyncio.gather(*(listed("ReplicaSet", cap, label_selector=s) for s in selectors))
    return replace(ns, replica_sets=[rs for got in found for rs in got])


def _host_errors(results: Sequence[SignalResult]) -> list[HostErrors]:
    """The per-host dependency template's series, each under the host its labels name."""
    out: list[HostErrors] = []
    for result in results:
        if result.dimension != HOST or result.error is not None:
            continue
        for series in result.series:
            host = next((series.labels[k] for k in HOST_LABELS if series.labels.get(k)), None)
            if host:
                out.append(HostErrors(host, tuple(series.points)))
    return out
