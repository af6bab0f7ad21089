"""One investigation of one Incident: collect (adapters), analyse (core), build the status.

Kept apart from the Kopf handlers so the CLI, the benchmark and the handlers run the very same
steps. Nothing here talks to Kopf.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from stanch.adapters.evidence import Collected, CollectorLimits, EvidenceRequest, MemoryEvidence, collect
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.core.investigation.analysis import EventTuple, LogLine, group_log_signatures, investigate
from stanch.core.investigation.config_memory import (
    ConfigMapMemory,
    HpaMemory,
    describe_hpa_changes,
    describe_key_changes,
)
from stanch.core.investigation.gathering import parse_time
from stanch.core.mitigation_context import incident_phase
from stanch.core.models import (
    Condition,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
    parse_duration,
)
from stanch.core.scope import target_scope_problem

# Status fields this module owns; everything else in status (Kopf's bookkeeping, mitigations
# written by the mitigation machinery) is left as it is.
OWNED = (
    "phase",
    "observedGeneration",
    "target",
    "topHypothesis",
    "scope",
    "timeline",
    "evidence",
    "hypotheses",
    "conditions",
    "lastRefreshed",
)
# lastRefreshed alone is rewritten at most this often, so an unchanged investigation still shows
# it is alive without writing to etcd on every refresh.
HEARTBEAT = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What a refresh produced: the status fields to write (None: nothing changed), the Events to
    post, and the collectors that did not deliver."""

    patch: dict[str, Any] | None
    status: IncidentStatus
    events: list[EventTuple]
    collected: Collected


def previous_status(body: Mapping[str, Any]) -> IncidentStatus | None:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    if not raw:
        return None
    try:
        return IncidentStatus.model_validate(raw)
    except ValidationError:
        # A status written by another version: investigate afresh rather than fail.
        return None


def target_of(body: Mapping[str, Any], spec: IncidentSpec) -> tuple[str, str]:
    """The Incident's target, always in its own namespace (design invariant 11): the handlers never
    start an investigation of a target elsewhere, and this refuses one if anything tried."""
    namespace = body["metadata"]["namespace"]
    problem = target_scope_problem("Incident", namespace, spec.target)
    if problem is not None:
        raise ValueError(problem)
    return namespace, spec.target.name


def _merge_conditions(old: list[Condition], new: list[Condition]) -> list[Condition]:
    mine = {c.type for c in new}
    return [*(c for c in old if c.type not in mine), *new]


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in OWNED if k != "lastRefreshed"}


class Investigator:
    """Shared by every Incident handled by this process: the clients and the settings."""

    def __init__(
        self,
        kube: KubeClient,
        prometheus: PrometheusClient,
        templates: Mapping[str, str],
        *,
        limits: CollectorLimits | None = None,
        clock: Callable[[], datetime] = _now,
        config_memory: ConfigMapMemory | None = None,
        memory: MemoryEvidence | None = None,
        hpa_memory: HpaMemory | None = None,
    ) -> None:
        self.kube = kube
        self.prometheus = prometheus
        self.templates = dict(templates)
        self.limits = limits or CollectorLimits()
        self.clock = clock
        self.config_memory = config_memory
        """ConfigMap values remembered from the watch: turns "data updated" into "key K: OLD → NEW"."""
        self.memory = memory
        self.hpa_memory = hpa_memory
        """HPA specs remembered from the watch: an HPA change reads "maxReplicas 10 → 3" and can be undone."""
        """Pods and Events kept by a watch; the collector lists what it cannot vouch for."""

    async def run(self, body: Mapping[str, Any]) -> Outcome:
        """Investigate the Incident ``body`` (a live Kopf body or a plain dict) once."""
        now = self.clock()
        spec = IncidentSpec.model_validate(body["spec"])
        meta = body["metadata"]
        created = parse_time(meta.get("creationTimestamp")) or now
        previous = previous_status(body)
        namespace, name = target_of(body, spec)
        request = EvidenceRequest(
            namespace=namespace,
            name=name,
            now=now,
            reference=spec.started_at or created,
            lookback=parse_duration(spec.lookback),
            signals=tuple(s.name for s in spec.signals),
        )
        collected = await collect(
            self.kube, self.prometheus, request, self.templates, self.limits, memory=self.memory
        )
        began = time.perf_counter()
        lines = (LogLine(ln.time, ln.pod, ln.revision, ln.message, ln.previous) for ln in collected.log_lines)
        update: dict[str, Any] = {"log_signatures": group_log_signatures(lines)}
        changes = collected.evidence.config_changes
        if self.config_memory is not None:
            changes = describe_key_changes(changes, namespace, self.config_memory)
        if self.hpa_memory is not None:
            changes = describe_hpa_changes(changes, namespace, self.hpa_memory)
        update["config_changes"] = changes
        evidence = collected.evidence.model_copy(update=update)
        mitigations = previous.mitigations if previous else []
        findings = investigate(
            spec,
            evidence,
            now=now,
            created_at=created,
            mitigations=mitigations,
            partial=[p.collector for p in collected.partial],
            previous=previous,
        )
        collected.timings["analysis"] = time.perf_counter() - began
        before = previous.phase if previous else None
        phase = incident_phase(before, spec.resolved, mitigations)
        kept_conditions = previous.conditions if previous else []
        if before is IncidentPhase.RESOLVED and phase is not IncidentPhase.RESOLVED:
            # Reopened: no longer claiming to be resolved.
            kept_conditions = [c for c in kept_conditions if c.type != "Resolved"]
        status = IncidentStatus(
            phase=phase,
            observed_generation=meta.get("generation"),
            target=f"{spec.target.kind}/{namespace}/{name}",
            top_hypothesis=findings.top_hypothesis,
            scope=findings.scope,
            timeline=findings.timeline,
            evidence=evidence,
            hypotheses=findings.hypotheses,
            mitigations=mitigations,
            conditions=_merge_conditions(kept_conditions, findings.conditions),
            last_refreshed=now,
        )
        return Outcome(
            status_patch(body.get("status") or {}, status, now), status, findings.events, collected
        )


def status_patch(old: Mapping[str, Any], new: IncidentStatus, now: datetime) -> dict[str, Any] | None:
    """A merge patch of the owned status fields, or None when nothing but the refresh time changed
    (and the last write is recent enough). Fields that disappeared are written as null."""
    wanted = new.to_dict()
    normalised_old = previous_status({"status": old})
    old_wire = normalised_old.to_dict() if normalised_old is not None else {}
    last = parse_time(old.get("lastRefreshed"))
    stale = last is None or now - last >= HEARTBEAT
    if _comparable(old_wire) == _comparable(wanted) and not stale:
        return None
    return {k: wanted.get(k) for k in OWNED}
