"""Incident handlers: investigate while open, refresh on an interval and on workload changes,
stop and keep the record when resolved.

One Kopf daemon per open Incident runs the investigation loop. A daemon rather than a timer:
it can be woken early (a rollout, a pod crash-looping) without ever running two refreshes of
the same Incident at once, and each Incident's loop is its own task, so a slow investigation never
holds up another. Changes to Deployments, ReplicaSets and Pods only set a flag (O(1), no API
calls); the daemon refreshes at most once per ``MIN_GAP`` however many changes arrive.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog

import stanch
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.adapters.watch_cache import EvidenceCache
from stanch.core.conditions import rfc3339, set_condition
from stanch.core.investigation.config_memory import ConfigMapMemory, HpaMemory, referenced_config_maps
from stanch.core.models import IncidentPhase, IncidentSpec, TargetRef
from stanch.core.scope import CROSS_NAMESPACE_TARGET, target_scope_problem
from stanch.core.settings import Settings
from stanch.wiring.handlers.startup import MEMO_SETTINGS
from stanch.wiring.investigation import Investigator, target_of
from stanch.wiring.logs import bind_object
from stanch.wiring.metrics import Metrics

MEMO_INVESTIGATOR = "stanch_investigator"
CONFIGMAP_REFERENCES = "stanch_configmap_references"
"""Id of the Kopf index of ConfigMaps referenced by Deployments (also its handler kwarg name)."""
MEMO_POKES = "stanch_incident_pokes"
MEMO_EVIDENCE_CACHE = "stanch_evidence_cache"
PLURAL = "incidents"
# However often the workload changes, an Incident is refreshed at most this often.
MIN_GAP = 2.0
PROMETHEUS_TIMEOUT = 5.0

Key = tuple[str, str]


class Pokes:
    """Which open Incidents watch which workload, and a wake-up flag per Incident."""

    def __init__(self) -> None:
        self._flags: dict[Key, asyncio.Event] = {}
        self._by_target: dict[Key, set[Key]] = defaultdict(set)
        self._targets: dict[Key, Key] = {}

    def register(self, incident: Key, target: Key) -> asyncio.Event:
        old = self._targets.get(incident)
        if old is not None and old != target:
            self._by_target[old].discard(incident)
        self._targets[incident] = target
        self._by_target[target].add(incident)
        return self._flags.setdefault(incident, asyncio.Event())

    def unregister(self, incident: Key) -> None:
        target = self._targets.pop(incident, None)
        if target is not None:
            self._by_target[target].discard(incident)
            if not self._by_target[target]:
                del self._by_target[target]
        self._flags.pop(incident, None)

    def poke_target(self, namespace: str, workload: str) -> int:
        """Wake every Incident about this workload; returns how many."""
        woken = 0
        for incident in self._by_target.get((namespace, workload), ()):
            flag = self._flags.get(incident)
            if flag is not None:
                flag.set()
                woken += 1
        return woken

    def poke_incident(self, incident: Key) -> None:
        flag = self._flags.get(incident)
        if flag is not None:
            flag.set()


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta["namespace"], meta["name"]


def _scope_problem(spec: Mapping[str, Any], namespace: str | None) -> str | None:
    """Why the Incident's target is outside its namespace (design invariant 11), or None."""
    target = spec.get("target") or {}
    return target_scope_problem(
        "Incident",
        namespace or "",
        TargetRef(name=str(target.get("name") or "-"), namespace=target.get("namespace")),
    )


def _is_open(spec: kopf.Spec, namespace: str | None, **_: Any) -> bool:
    # An Incident naming another namespace is never investigated: the evidence (events, logs,
    # config changes, metrics) of a namespace its author may not read would end up in its status.
    return not spec.get("resolved", False) and _scope_problem(spec, namespace) is None


def _out_of_scope(spec: kopf.Spec, namespace: str | None, **_: Any) -> bool:
    return _scope_problem(spec, namespace) is not None


def refuse_out_of_scope(body: kopf.Body, patch: kopf.Patch, problem: str) -> None:
    """``Valid=False`` (reason ``CrossNamespaceTarget``) and one Warning Event naming the field and
    the fix; nothing is read in the other namespace."""
    status = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    old = status.get("conditions")
    conditions = set_condition(
        old,
        type_="Valid",
        status="False",
        reason=CROSS_NAMESPACE_TARGET,
        message=problem,
        observed_generation=generation,
        now=datetime.now(UTC),
    )
    patch.setdefault("status", {})
    patch["status"]["conditions"] = conditions
    patch["status"]["observedGeneration"] = generation
    said = any(
        c.get("type") == "Valid" and c.get("reason") == CROSS_NAMESPACE_TARGET and c.get("message") == problem
        for c in old or ()
    )
    if not said:
        kopf.warn(body, reason=CROSS_NAMESPACE_TARGET, message=f"not investigated: {problem}")
        bind_object(body).warning("incident target outside its namespace", problem=problem)


def _is_resolved(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("resolved", False))


async def _sleep_or_poke(flag: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    async def until_stopped() -> None:
        await stopped.wait(seconds)

    waiters = {asyncio.ensure_future(flag.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _deployment_of_pod(labels: Mapping[str, str], owners: Sequence[Mapping[str, Any]]) -> str | None:
    pod_hash = labels.get("pod-template-hash")
    for ref in owners:
        if ref.get("kind") == "ReplicaSet" and ref.get("controller") and pod_hash:
            name = str(ref.get("name", ""))
            suffix = f"-{pod_hash}"
            return name[: -len(suffix)] if name.endswith(suffix) else None
    return None


def register(
    registry: kopf.OperatorRegistry, metrics: Metrics, clock: Callable[[], datetime] | None = None
) -> None:
    now = clock or (lambda: datetime.now(UTC))
    config_memory = ConfigMapMemory()
    hpa_memory = HpaMemory()

    # Which ConfigMaps each Deployment's pod template references. Kopf fills every index before any
    # handler runs, so the ConfigMap handler below already knows the references of the initial
    # listing (and remembers the values a later flip replaces).
    @kopf.index("apps", "v1", "deployments", id=CONFIGMAP_REFERENCES, registry=registry)
    def configmap_references(namespace: str | None, spec: kopf.Spec, **_: Any) -> dict[str, frozenset[str]]:
        return {namespace or "": referenced_config_maps([spec.get("template") or {}])}

    @kopf.on.event("", "v1", "configmaps", id="incident-remember-configmap", registry=registry)
    async def configmap_seen(
        body: kopf.Body, name: str, namespace: str | None, type: str | None, **kwargs: Any
    ) -> None:
        references = kwargs.get(CONFIGMAP_REFERENCES)
        namespace = namespace or ""
        referenced = references is not None and any(name in names for names in references.get(namespace, ()))
        if type == "DELETED" or not referenced:
            config_memory.forget(namespace, name)  # never keep what no watched workload uses
        else:
            config_memory.observe(body)

    # HPA specs as last seen and the version before: the way back from a bad autoscaler change
    # (Kubernetes keeps no history of them). Status-only updates keep the remembered change.
    @kopf.on.event(
        "autoscaling", "v2", "horizontalpodautoscalers", id="incident-remember-hpa", registry=registry
    )
    async def hpa_seen(body: kopf.Body, name: str, namespace: str | None, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            hpa_memory.forget(namespace or "", name)
        else:
            hpa_memory.observe(body)

    @kopf.on.startup(id="stanch-incident-clients", registry=registry)
    async def start_clients(memo: kopf.Memo, **_: Any) -> None:
        config = memo[MEMO_SETTINGS]
        assert isinstance(config, Settings)
        kube = KubeClient.from_env()
        prometheus = PrometheusClient.connect(config.prometheus, timeout=PROMETHEUS_TIMEOUT)
        metrics.observe_prometheus("investigation", prometheus.outcomes)
        cache = _evidence_cache(config) if config.evidence_cache else None
        if cache is not None:
            memo[MEMO_EVIDENCE_CACHE] = cache
            metrics.observe_cache(cache.stores)
            cache.start()  # warms in the background; until then the collector lists
        memo[MEMO_INVESTIGATOR] = Investigator(
            kube,
            prometheus,
            config.signal_templates,
            clock=now,
            config_memory=config_memory,
            memory=cache,
            hpa_memory=hpa_memory,
        )
        memo[MEMO_POKES] = Pokes()

    @kopf.on.cleanup(id="stanch-incident-clients-close", registry=registry)
    async def close_clients(memo: kopf.Memo, **_: Any) -> None:
        cache = memo.get(MEMO_EVIDENCE_CACHE)
        if isinstance(cache, EvidenceCache):
            await cache.stop()
            await cache.kube.close()
        investigator = memo.get(MEMO_INVESTIGATOR)
        if isinstance(investigator, Investigator):
            await investigator.kube.close()
            await investigator.prometheus.close()

    @kopf.on.create(stanch.GROUP, stanch.VERSION, PLURAL, id="incident-open", registry=registry)
    @metrics.instrument("incident-open")
    async def opened(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        # Visible at once in `kubectl get`; the daemon's first refresh follows within a second.
        parsed = IncidentSpec.model_validate(dict(spec))
        problem = _scope_problem(spec, body["metadata"].get("namespace"))
        if problem is not None:
            refuse_out_of_scope(body, patch, problem)
            return
        namespace, name = target_of(body, parsed)
        patch.setdefault("status", {})
        patch["status"]["target"] = f"{parsed.target.kind}/{namespace}/{name}"
        if parsed.resolved:
            return  # the resolve handler records it
        patch["status"]["phase"] = IncidentPhase.INVESTIGATING.value
        kopf.info(
            body,
            reason="InvestigationStarted",
            message=f"investigating {parsed.target.kind} {namespace}/{name}",
        )
        bind_object(body).info("incident opened", target=f"{namespace}/{name}")

    @kopf.on.update(
        stanch.GROUP, stanch.VERSION, PLURAL, id="incident-spec-changed", when=_is_open, registry=registry
    )
    @metrics.instrument("incident-spec-changed")
    async def spec_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        pokes = memo.get(MEMO_POKES)
        if isinstance(pokes, Pokes):
            pokes.poke_incident(_key(body))

    @kopf.on.update(
        stanch.GROUP,
        stanch.VERSION,
        PLURAL,
        id="incident-out-of-scope",
        when=_out_of_scope,
        registry=registry,
    )
    @metrics.instrument("incident-out-of-scope")
    async def out_of_scope(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        problem = _scope_problem(spec, body["metadata"].get("namespace"))
        if problem is not None:
            refuse_out_of_scope(body, patch, problem)

    async def resolve(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        status = body.get("status") or {}
        if status.get("phase") == IncidentPhase.RESOLVED.value:
            return
        generation = body.get("metadata", {}).get("generation")
        patch.setdefault("status", {})
        patch["status"]["phase"] = IncidentPhase.RESOLVED.value
        patch["status"]["observedGeneration"] = generation
        patch["status"]["conditions"] = set_condition(
            status.get("conditions"),
            type_="Resolved",
            status="True",
            reason="MarkedResolved",
            message=f"spec.resolved set; refreshing stopped at {rfc3339(now())}, the record is kept",
            observed_generation=generation,
            now=now(),
        )
        kopf.info(body, reason="Resolved", message="incident resolved; investigation stopped, record kept")
        bind_object(body).info("incident resolved")

    for handler_id, cause in (
        ("incident-resolve", kopf.on.update),
        ("incident-resolve-on-create", kopf.on.create),
        ("incident-resolve-on-resume", kopf.on.resume),
    ):
        cause(stanch.GROUP, stanch.VERSION, PLURAL, id=handler_id, when=_is_resolved, registry=registry)(
            metrics.instrument(handler_id)(resolve)
        )

    @kopf.daemon(
        stanch.GROUP,
        stanch.VERSION,
        PLURAL,
        id="incident-investigate",
        when=_is_open,
        cancellation_timeout=10.0,
        registry=registry,
    )
    async def investigate_loop(
        body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        investigator = memo[MEMO_INVESTIGATOR]
        pokes = memo[MEMO_POKES]
        config = memo[MEMO_SETTINGS]
        assert isinstance(investigator, Investigator)
        assert isinstance(pokes, Pokes)
        assert isinstance(config, Settings)
        log = bind_object(body)
        incident = _key(body)
        try:
            while not stopped:
                spec = IncidentSpec.model_validate(dict(body["spec"]))
                flag = pokes.register(incident, target_of(body, spec))
                flag.clear()
                await _refresh(investigator, body, stopped, metrics, log)
                await _sleep_or_poke(flag, stopped, MIN_GAP)  # debounce bursts of changes
                if not flag.is_set():
                    await _sleep_or_poke(flag, stopped, max(config.investigation_interval - MIN_GAP, 0.0))
        finally:
            pokes.unregister(incident)

    @kopf.on.event("apps", "v1", "deployments", id="incident-poke-deployment", registry=registry)
    async def deployment_changed(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
        pokes = memo.get(MEMO_POKES)
        if isinstance(pokes, Pokes) and namespace:
            pokes.poke_target(namespace, name)

    @kopf.on.event("apps", "v1", "replicasets", id="incident-poke-replicaset", registry=registry)
    async def replicaset_changed(meta: kopf.Meta, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
        pokes = memo.get(MEMO_POKES)
        if not isinstance(pokes, Pokes) or not namespace:
            return
        for ref in meta.get("ownerReferences") or ():
            if ref.get("kind") == "Deployment" and ref.get("controller"):
                pokes.poke_target(namespace, ref["name"])

    @kopf.on.event(
        "",
        "v1",
        "pods",
        id="incident-poke-pod",
        labels={"pod-template-hash": kopf.PRESENT},
        registry=registry,
    )
    async def pod_changed(meta: kopf.Meta, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
        pokes = memo.get(MEMO_POKES)
        if not isinstance(pokes, Pokes) or not namespace:
            return
        deployment = _deployment_of_pod(meta.get("labels") or {}, list(meta.get("ownerReferences") or ()))
        if deployment:
            pokes.poke_target(namespace, deployment)


def _evidence_cache(config: Settings) -> EvidenceCache:
    """One store per kind and watched namespace; every namespace for --all-namespaces or patterns."""
    patterned = any(ch in ns for ns in config.namespaces for ch in "*?[!")
    namespaces = None if config.all_namespaces or patterned else config.namespaces
    log = structlog.get_logger("stanch").bind(component="evidence-cache")

    def problem(kind: str, namespace: str | None, what: str) -> None:
        log.warning(
            "evidence cache not serving", kind=kind, scope=namespace or "all namespaces", problem=what
        )

    # Its own client: a watch holds a connection open for minutes, apart from the refreshes' pool.
    return EvidenceCache(
        KubeClient.from_env(),
        namespaces,
        max_pods=config.evidence_cache_max_pods,
        max_events=config.evidence_cache_max_events,
        on_problem=problem,
    )


async def _refresh(
    investigator: Investigator, body: kopf.Body, stopped: kopf.DaemonStopped, metrics: Metrics, log: Any
) -> None:
    handler = "incident-investigate"
    metrics.handler_invocations.labels(handler=handler).inc()
    try:
        outcome = await investigator.run(body)
    except Exception as exc:
        # The loop must survive: the next refresh may well succeed (API server back, RBAC fixed).
        metrics.handler_errors.labels(handler=handler, error=type(exc).__name__).inc()
        log.exception("investigation failed")
        kopf.warn(body, reason="InvestigationFailed", message=f"{type(exc).__name__}: {str(exc)[:300]}")
        return
    if stopped:
        return  # resolved or deleted meanwhile: the resolve handler owns the status now
    for collector in outcome.collected.partial:
        log.warning("evidence partial", collector=collector.collector, reason=collector.reason)
    if outcome.patch is not None:
        meta = body["metadata"]
        await investigator.kube.patch(
            "Incident", meta["name"], meta["namespace"], {"status": outcome.patch}, subresource="status"
        )
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    log.info(
        "investigated",
        top=outcome.status.top_hypothesis,
        from_memory=list(outcome.collected.from_memory),
        written=outcome.patch is not None,
        partial=[p.collector for p in outcome.collected.partial],
    )
