"""Kopf handlers that drive each Mitigation's state machine.

One daemon per Mitigation runs the loop; it holds nothing in memory that matters. Every pass:

1. read the Mitigation fresh (its resourceVersion is the precondition of every status write);
2. rebuild the machine state from spec and status, feed what was observed (a tick, approvals,
   deletion, a resolved Incident);
3. for every transition: **persist the status first** (write-ahead: snapshot, plan and intent are
   in etcd before any effect runs), post its Events, then run its effects in order — reads and
   queries produce observations, mutations run through the effect executor with their
   preconditions — and feed each result back into the reducer.

A crash anywhere loses at most the in-memory transition whose status was not persisted yet, and no
effect of such a transition has run. On restart the daemon starts from the persisted status and the
reducer resumes from the persisted intent.

The finalizer's delete handler runs the same loop with ``deleting=True`` until the machine
finishes (reverting first unless ``revertOnDelete: false``); the daemon and the delete handler
never run a pass at the same time (a per-object lock).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import kopf
import structlog
from pydantic import ValidationError

import stanch
from stanch.adapters.effects import EffectExecutor, EffectResult, Mutation, Outcome
from stanch.adapters.identity import read_admission, read_approvals
from stanch.adapters.kube import KubeClient, KubeError, transient
from stanch.adapters.prometheus import PrometheusClient
from stanch.adapters.signals import SignalSampler
from stanch.adapters.status import write_status
from stanch.adapters.targets import TargetReads, read_target
from stanch.core.effects import MUTATING, Create, Delete, Evict, ObjectKey, Patch, Reads
from stanch.core.identity import ADMISSION_POLICY, admission_problem, approvals_for
from stanch.core.machine.effects import (
    EvaluatePolicy,
    Finish,
    ObserveTarget,
    PersistIntent,
    QuerySignals,
    WakeAt,
)
from stanch.core.machine.observations import (
    ApplyFailed,
    Approved,
    BaselineCollected,
    ChangeApplied,
    DeleteRequested,
    GuardSample,
    IncidentResolved,
    IntentPersisted,
    LegacyApprovalSeen,
    Observation,
    PassesFailed,
    PolicyDecided,
    SignalSeries,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.phases.ending import awaits_resolution
from stanch.core.machine.phases.stopped import ERROR_EVENTS, RETRY_BUDGET_EXHAUSTED
from stanch.core.machine.reducer import invalid_spec, reduce
from stanch.core.machine.state import MachineState, MitigationIdentity, Transition
from stanch.core.mitigation_context import (
    IncidentFacts,
    as_decided,
    default_decision,
    incident_entry,
    incident_facts,
    link_into_incident,
    mitigation_signals,
    phase_after_link,
    phase_summary,
    read_status,
    resolve_guard_or_problem,
    running_guard,
    signal_queries,
    timeline_entry,
)
from stanch.core.models import (
    APPROVED_BY_ANNOTATION,
    DEFAULT_GUARD,
    TERMINAL_PHASES,
    AuditEntry,
    MitigationPhase,
    MitigationSpec,
    PolicyDecision,
    SignalTemplate,
    parse_duration,
)
from stanch.core.plans.sealing import seal, sealed_in, sealed_paths, unseal
from stanch.core.scope import write_scope_problem
from stanch.core.settings import Settings
from stanch.wiring.fault_injection import CrashPoint, crash_now, crash_point
from stanch.wiring.handlers.startup import MEMO_SETTINGS
from stanch.wiring.logs import bind_object
from stanch.wiring.metrics import Metrics
from stanch.wiring.mitigation_policy import PolicyContext, PolicyEvaluator, policy_context

PLURAL = "mitigations"
RUNTIME = "stanch_mitigation_runtime"
OBJECT_LOCK = "stanch_mitigation_lock"
OBJECT_WAKE = "stanch_mitigation_wake"
OBJECT_SEEN = "stanch_mitigation_seen"
FINALIZER_MIN_PAUSE = 0.5
"""Seconds between two passes of the finalizer's loop at the least (it used to spin on the API
server while a revert waited for the next observation)."""
MAX_STEPS_PER_PASS = 200
"""A pass that needs more reducer steps than this is looping; stop and let the next pass resume."""


class PolicyDecider(Protocol):
    """The single policy step: a decision for this Mitigation object (design invariant 4)."""

    async def __call__(self, obj: Mapping[str, Any], now: datetime) -> PolicyDecision: ...


async def default_deny(obj: Mapping[str, Any], now: datetime) -> PolicyDecision:
    """Without a policy evaluator, no policy means dry run only."""
    return default_decision(MitigationSpec.model_validate(obj["spec"]), now)


@dataclass
class Runtime:
    """The clients and knobs the handlers share (one per operator process)."""

    kube: KubeClient
    prometheus: PrometheusClient
    settings: Settings
    metrics: Metrics
    decide: PolicyDecider = default_deny
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    crash_after: CrashPoint | None = None
    """Test-only (``STANCH_TEST_CRASH_AFTER``): SIGKILL the process after this write is accepted."""
    executor: EffectExecutor = field(init=False)
    sampler: SignalSampler = field(init=False)

    def __post_init__(self) -> None:
        self.executor = EffectExecutor(self.kube)
        self.sampler = SignalSampler(self.prometheus, self.settings.signal_templates)


@dataclass
class PassResult:
    """What one pass of the loop ended with."""

    wake_at: datetime | None = None
    finished: bool = False
    phase: MitigationPhase | None = None
    gone: bool = False
    awaits_incident: bool = False
    """Finished, but a temporary change stays in place until its Incident resolves: keep looking."""


class StaleReadError(Exception):
    """The Mitigation changed since we read it; the pass is abandoned before any effect of the
    unpersisted transition ran, and the next pass starts from a fresh read."""


# --- building the machine state -------------------------------------------------------------------


def machine_state(
    obj: dict[str, Any],
    runtime: Runtime,
    context: PolicyContext,
    incident_onset: datetime | None = None,
    snapshot: dict[str, Any] | None = None,
) -> MachineState:
    """The reducer's state from the object; ``snapshot``: ``status.snapshot`` with its sealed values
    restored (:func:`unsealed_snapshot`), which only ever lives in memory."""
    meta = obj["metadata"]
    raw = dict(obj.get("status") or {})
    if snapshot is not None:
        raw["snapshot"] = snapshot
    status, frozen_problem = read_status(raw)
    spec = as_decided(MitigationSpec.model_validate(obj["spec"]), status)
    guard, problem = running_guard(spec, status, context.guard_defaults)
    if frozen_problem is not None:
        guard, problem = DEFAULT_GUARD, frozen_problem
    return MachineState(
        identity=MitigationIdentity(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]),
        spec=spec,
        status=status,
        guard=guard,
        guard_problem=problem,
        signals=_templates(runtime, context),
        deleting=bool(meta.get("deletionTimestamp")),
        legacy_approval=_legacy_approval(obj),
        incident_onset=incident_onset,
    )


def _legacy_approval(obj: Mapping[str, Any]) -> str | None:
    """The old ways of approving, still found on objects stored before MitigationApproval."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(APPROVED_BY_ANNOTATION):
        return f"the {APPROVED_BY_ANNOTATION} annotation"
    if ((obj.get("spec") or {}).get("approval") or {}).get("approved"):
        return "spec.approval.approved"
    return None


def _templates(runtime: Runtime, context: PolicyContext) -> dict[str, SignalTemplate]:
    """The operator's templates, overridden by the deciding policy's."""
    return mitigation_signals(runtime.settings.signal_templates, context.templates)


def initial_observations(
    state: MachineState, incident_resolved: bool, approvals: Sequence[Approved] = ()
) -> list[Observation]:
    """What happened since the last pass, as the reducer's inputs. ``approvals`` are the
    MitigationApprovals naming this Mitigation (read only while it awaits approval): nothing on the
    Mitigation itself (``spec.approval``, the old ``stanch.dev/approved-by`` annotation) approves it."""
    phase = state.status.phase
    out: list[Observation] = [Tick()]
    if state.deleting and phase not in TERMINAL_PHASES:
        out.append(DeleteRequested())
    if phase == MitigationPhase.AWAITING_APPROVAL and not state.deleting:
        if state.legacy_approval:
            out.append(LegacyApprovalSeen())
        out.extend(approvals)
    if incident_resolved and (phase not in TERMINAL_PHASES or phase == MitigationPhase.SUCCEEDED):
        # Every phase that may hold a temporary change reacts, not only Succeeded: one holding on
        # NoData in Baking was never undone and kept its lock. The reducer decides what it means.
        out.append(IncidentResolved())
    return out


def _world(reads: TargetReads) -> World:
    return World(
        target=reads.target,
        replica_sets=reads.replica_sets,
        hpa=reads.hpa,
        config_map=reads.config_map,
        node=reads.node,
        pods=reads.pods,
        pods_on_node=reads.pods_on_node,
        canary=reads.canary,
        lock_holder_active=reads.lock_holder_active,
    )


# --- one pass -----------------------------------------------------------------------------------


class Pass:
    """One pass of the loop over one Mitigation: reduce, persist, act, feed back."""

    def __init__(
        self,
        runtime: Runtime,
        obj: dict[str, Any],
        incident: IncidentFacts,
        context: PolicyContext,
        approvals: Sequence[Approved] = (),
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.approvals = approvals
        self.obj = obj
        self.log = bind_object(obj)
        self.context = context
        self.state = machine_state(obj, runtime, context, incident.onset, snapshot)
        self.incident_resolved = incident.resolved
        self.result = PassResult(phase=self.state.status.phase)

    async def run(self, observations: Sequence[Observation] | None = None) -> PassResult:
        """Reduce ``observations`` (by default, what happened since the last pass) and everything
        they lead to."""
        if observations is None:
            observations = initial_observations(self.state, self.incident_resolved, self.approvals)
        queue: deque[Observation] = deque(observations)
        steps = 0
        while queue and steps < MAX_STEPS_PER_PASS:
            steps += 1
            observation = queue.popleft()
            before = self.state.status.phase
            transition = reduce(self.state, observation, now=self.runtime.clock())
            await self._persist(transition)
            self._report(transition, before)
            self.state = transition.state
            if before != self.state.status.phase:
                await self._link_incident(before)
            queue.extend(await self._run_effects(transition))
        self.result.phase = self.state.status.phase
        self.result.awaits_incident = awaits_resolution(self.state)
        if steps >= MAX_STEPS_PER_PASS:
            self.log.warning("mitigation pass stopped after too many steps", steps=steps)
        return self.result

    async def _persist(self, transition: Transition) -> None:
        new = transition.state.status.to_dict()
        if new.get("snapshot"):
            # The machine works on the values; status never holds them (design invariant 9).
            new["snapshot"] = seal(new["snapshot"])
        generation = self.obj["metadata"].get("generation")
        if generation is not None:
            new["observedGeneration"] = generation
        try:
            updated = await write_status(self.runtime.kube, "Mitigation", self.obj, new)
        except KubeError as exc:
            if exc.conflict:
                raise StaleReadError(exc.message) from exc
            raise
        if updated is not None:
            self.obj = updated

    def _report(self, transition: Transition, before: MitigationPhase | None) -> None:
        body = kopf.Body(self.obj)  # type: ignore[arg-type]
        for event in transition.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        for entry in transition.audit:
            self.log.info(
                "mitigation audit",
                audit_event=entry.event,
                actor=entry.actor,
                from_phase=entry.from_phase,
                to_phase=entry.to_phase,
                reason=entry.reason,
            )
        after = transition.state.status.phase
        if after is not None and after != before:
            action = transition.state.status.action
            self.runtime.metrics.mitigation_phases.labels(
                phase=after.value, action=action.value if action else "unknown"
            ).inc()
        for entry in transition.audit:
            if stopped_by_error(entry):
                phase = entry.to_phase.value if entry.to_phase else "unknown"
                self.runtime.metrics.mitigation_failures.labels(reason=entry.event, phase=phase).inc()

    async def _run_effects(self, transition: Transition) -> list[Observation]:
        out: list[Observation] = []
        effects = list(transition.effects)
        i = 0
        while i < len(effects):
            effect = effects[i]
            if isinstance(effect, MUTATING):
                # Consecutive mutations of one step succeed or fail together as one observation.
                group: list[Mutation] = []
                while i < len(effects) and isinstance(effects[i], MUTATING):
                    candidate = effects[i]
                    assert isinstance(candidate, Patch | Create | Delete | Evict)
                    if group and candidate.step != group[0].step:
                        break
                    group.append(candidate)
                    i += 1
                observation = await self._mutate(group)
                if observation is not None:
                    out.append(observation)
                continue
            i += 1
            if isinstance(effect, PersistIntent):
                # The transition's status (holding this intent) was persisted before its effects ran.
                out.append(IntentPersisted(step=effect.intent.step, attempt=effect.intent.attempt))
            elif isinstance(effect, ObserveTarget):
                reads = await read_target(self.runtime.kube, effect.reads)
                out.append(TargetObserved(world=_world(reads)))
            elif isinstance(effect, QuerySignals):
                out.append(await self._query(effect))
            elif isinstance(effect, EvaluatePolicy):
                decision = await self.runtime.decide(self.obj, self.runtime.clock())
                await self._under_policy(decision.policy)
                out.append(PolicyDecided(decision=decision))
            elif isinstance(effect, WakeAt):
                if self.result.wake_at is None or effect.at < self.result.wake_at:
                    self.result.wake_at = effect.at
            elif isinstance(effect, Finish):
                self.result.finished = True
        return out

    async def _under_policy(self, ref: str | None) -> None:
        """Resolve the guard and the templates under the deciding policy before its decision is fed
        to the reducer, which freezes that guard into ``status.guard`` (or ends the Mitigation, if
        the merge is invalid, before anything is done)."""
        self.context = await policy_context(self.runtime.kube, ref)
        guard, problem = resolve_guard_or_problem(self.state.spec, self.context.guard_defaults, ref)
        self.state = replace(
            self.state, guard=guard, guard_problem=problem, signals=_templates(self.runtime, self.context)
        )

    async def _mutate(self, group: Sequence[Mutation]) -> Observation | None:
        step = group[0].step
        primary: EffectResult | None = None
        essential = [e for e in group if not (isinstance(e, Patch) and e.best_effort)]
        refused: list[EffectResult] = []
        target = self.state.spec.target
        target_ns = self.state.identity.namespace
        for effect in group:
            if sealed_in(effect):
                # A secret value the snapshot does not keep could not be restored: writing the
                # placeholder would corrupt the workload, so the write is refused before it is sent.
                missing = ", ".join(sealed_paths(self.state.status.snapshot or {})) or "unknown"
                return ApplyFailed(
                    step=step,
                    reason=f"{effect.key.display()}: not sent: it would write secret-looking values"
                    f" Stanch does not keep and could no longer restore from the cluster ({missing});"
                    " the ReplicaSet that held them is gone (revisionHistoryLimit?): put them back by"
                    " hand (kubectl rollout undo, or edit the Deployment)",
                    key=effect.key,
                )
            result = self._out_of_scope(effect) or await self.runtime.executor.run(effect)
            self.log.info(
                "mitigation effect",
                step=step,
                effect=type(effect).__name__,
                object=effect.key.display(),
                outcome=result.outcome.value,
                detail=result.message,
                precondition=effect.precondition.describe() if not isinstance(effect, Create) else "owner",
            )
            crash = self.runtime.crash_after
            if crash is not None and result.ok and crash.matches(step, effect.key.kind):
                self.log.warning("test crash point reached: killing the operator", crash_after=crash.text)
                crash_now()
            if effect not in essential:
                continue
            if not result.ok and isinstance(effect, Evict):
                # Each eviction stands alone (idempotent, none undone): try every pod, report all
                # refusals together so status names every budget that said no.
                refused.append(result)
                continue
            if not result.ok:
                # A write whose object is gone is a failed precondition too: observe, then decide.
                conflict = result.conflict or result.outcome is Outcome.NOT_FOUND
                return ApplyFailed(
                    step=step,
                    reason=result.describe(),
                    retriable=result.retriable,
                    conflict=conflict,
                    code=result.code,
                    key=effect.key,
                )
            # The step's version is the target's when the step touched it (drift and revert
            # preconditions are about the target), else the first object it changed.
            on_target = effect.key.kind == target.kind.value and (effect.key.name, effect.key.namespace) == (
                target.name,
                target_ns,
            )
            if primary is None or on_target:
                primary = result
        if refused:
            return ApplyFailed(
                step=step,
                reason="; ".join(r.describe() for r in refused),
                retriable=all(r.retriable for r in refused),
                conflict=any(r.conflict for r in refused) and not any(r.retriable for r in refused),
                code=refused[0].code,
                key=refused[0].effect.key,
            )
        if not essential:
            return None
        assert primary is not None
        return ChangeApplied(
            step=step, resource_version=primary.resource_version, generation=primary.generation
        )

    def _out_of_scope(self, effect: Mutation) -> EffectResult | None:
        """A refusal, without sending it, of a write outside the Mitigation's namespace (design
        invariant 11): the last check before Stanch's own rights are used, whatever planned it."""
        key = effect.key
        auto_sync = self.state.status.auto_sync
        allowed = frozenset({auto_sync.object}) if auto_sync is not None else frozenset()
        problem = write_scope_problem(
            key.kind, key.name, key.namespace, self.state.identity.namespace, allowed
        )
        if problem is None:
            return None
        return EffectResult(effect=effect, outcome=Outcome.FORBIDDEN, message=problem)

    async def _query(self, effect: QuerySignals) -> Observation:
        target = self.state.spec.target
        workload = target.name
        if effect.purpose != "baseline" and self.state.spec.canary is not None and self.state.status.canary:
            # A canary is judged on its own pods against the stable pods' baseline; the target's
            # series during the bake are the stable pods, which the canary does not change.
            workload = self.state.status.canary
        values = {"namespace": self.state.identity.namespace, "workload": workload}
        samples = await self.runtime.sampler.sample(
            effect.signals,
            values=values,
            start=effect.start,
            end=effect.end,
            step_seconds=effect.step_seconds,
            # This Mitigation's templates (the deciding policy's over the operator's): the sampler's
            # own table is only the operator's, so without them a policy's custom signal was never
            # queried (no data, a guard holding forever) and an override ran the built-in query.
            templates=signal_queries(self.state.signals),
        )
        series = tuple(SignalSeries(signal=s.signal, points=s.points, error=s.error) for s in samples)
        if effect.purpose == "baseline":
            return BaselineCollected(start=effect.start, end=effect.end, series=series)
        return GuardSample(at=effect.end, series=series)

    async def _link_incident(self, before: MitigationPhase | None) -> None:
        """Show this Mitigation and its phase change in the Incident's status (only those fields)."""
        ref = self.state.spec.incident_ref
        if ref is None:
            return
        ns = self.state.identity.namespace
        now = self.runtime.clock()
        created = self.obj["metadata"].get("creationTimestamp")
        created_at = datetime.fromisoformat(created) if created else None
        entry = incident_entry(self.state.identity.name, self.state.spec, self.state.status, created_at)
        summary = phase_summary(self.state.identity.name, self.state.spec, before, self.state.status)
        details = {"phase": self.state.status.phase.value if self.state.status.phase else ""}
        if self.state.status.verdict is not None:
            details["verdict"] = self.state.status.verdict.result.value
        line = timeline_entry(now, ns, self.state.identity.name, self.state.identity.uid, summary, details)
        for _ in range(5):
            incident = await self.runtime.kube.get("Incident", ref.name, ns)
            if incident is None:
                self.log.warning("incident not found", incident=ref.name)
                return
            mitigations, timeline = link_into_incident(incident.get("status"), entry, line)
            phase = phase_after_link(incident, mitigations)
            try:
                await write_status(
                    self.runtime.kube,
                    "Incident",
                    incident,
                    {"mitigations": mitigations, "timeline": timeline, "phase": phase.value},
                    only=("mitigations", "timeline", "phase"),
                )
                return
            except KubeError as exc:
                if not exc.conflict:
                    raise
        self.log.warning("incident status kept changing; link not written this time", incident=ref.name)


# --- Kopf glue ------------------------------------------------------------------------------------


async def linked_incident(runtime: Runtime, obj: dict[str, Any]) -> IncidentFacts:
    ref = (obj.get("spec") or {}).get("incidentRef")
    if not ref:
        return IncidentFacts()
    incident = await runtime.kube.get("Incident", ref["name"], obj["metadata"]["namespace"])
    return incident_facts(incident)


async def drive_once(runtime: Runtime, namespace: str, name: str) -> PassResult:
    obj = await runtime.kube.get("Mitigation", name, namespace)
    if obj is None:
        return PassResult(gone=True, finished=True)
    try:
        MitigationSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        return await _fail_invalid_spec(runtime, obj, exc)
    incident = await linked_incident(runtime, obj)
    policy = ((obj.get("status") or {}).get("policy") or {}).get("policy")
    context = await policy_context(runtime.kube, policy)
    approvals: list[Approved] = []
    if (obj.get("status") or {}).get("phase") == MitigationPhase.AWAITING_APPROVAL.value:
        approvals = await approval_offers(runtime, obj)
    snapshot = await unsealed_snapshot(runtime, obj)
    return await Pass(runtime, obj, incident, context, approvals, snapshot).run()


async def approval_offers(runtime: Runtime, obj: Mapping[str, Any]) -> list[Approved]:
    """The MitigationApprovals naming this Mitigation (name and uid), each with whether the admission
    policy that vouches for its approver is in force right now. Read on every pass while awaiting
    approval, so an approval takes effect within one interval and a policy put back is noticed."""
    meta = obj["metadata"]
    offered = approvals_for(await read_approvals(runtime.kube, meta["namespace"]), meta["name"], meta["uid"])
    if not offered:
        return []
    try:
        problem = admission_problem(*await read_admission(runtime.kube, ADMISSION_POLICY))
    except KubeError as exc:
        # Unreadable is not in force: the approval waits, visibly, and is judged again next pass.
        problem = f"cannot read the admission policy {ADMISSION_POLICY} ({exc}); check the operator's RBAC"
    return [Approved(o, problem) for o in offered]


async def unsealed_snapshot(runtime: Runtime, obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """``status.snapshot`` with the secret values it does not keep restored from the target and its
    ReplicaSets (:mod:`stanch.core.plans.sealing`); None when it seals nothing. Read failures leave
    the values sealed: any write needing them is then refused visibly, never sent with a placeholder."""
    raw = (obj.get("status") or {}).get("snapshot")
    if not isinstance(raw, Mapping) or not sealed_paths(raw):
        return None
    target = (obj.get("spec") or {}).get("target") or {}
    namespace = target.get("namespace") or obj["metadata"]["namespace"]
    key = ObjectKey("apps/v1", "Deployment", str(target.get("name")), namespace)
    log = bind_object(dict(obj))
    try:
        reads = await read_target(runtime.kube, Reads(target=key, replica_sets=True))
    except KubeError as exc:
        log.warning("snapshot values not restored: the target could not be read", error=exc.message)
        return dict(raw)
    result = unseal(raw, target=reads.target, replica_sets=reads.replica_sets)
    if result.missing:
        log.warning(
            "snapshot values not restored", missing=list(result.missing), sources=list(result.sources)
        )
    return result.snapshot


def stopped_by_error(entry: AuditEntry) -> bool:
    """Whether an audit entry is a Mitigation stopped by an error (counted in
    ``stanch_mitigation_failures_total``): it entered Failed or NeedsAttention, or an error sent it
    to revert."""
    entered = entry.to_phase != entry.from_phase
    return entry.event in ERROR_EVENTS or (
        entered and entry.to_phase in (MitigationPhase.FAILED, MitigationPhase.NEEDS_ATTENTION)
    )


def spec_errors(exc: ValidationError) -> str:
    """Each problem as ``spec.<field>: <message>``, for status, Event and condition."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in ("spec", *err["loc"]))
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts) + "; fix the spec (kubectl edit) or recreate the Mitigation"


async def _fail_invalid_spec(runtime: Runtime, obj: dict[str, Any], exc: ValidationError) -> PassResult:
    """A spec that passed an older CRD schema but does not parse: Failed once, never retried."""
    status, _ = read_status(obj.get("status") or {})
    new, event = invalid_spec(status, spec_errors(exc), runtime.clock())
    log = bind_object(obj)
    if event is not None:
        await write_status(runtime.kube, "Mitigation", obj, new.to_dict())
        kopf.event(kopf.Body(obj), type=event.type, reason=event.reason, message=event.message)  # type: ignore[arg-type]
        runtime.metrics.mitigation_failures.labels(reason=event.reason, phase=P_FAILED).inc()
        log.warning("mitigation spec invalid", reason=event.message)
    return PassResult(finished=True, phase=new.phase)


P_FAILED = MitigationPhase.FAILED.value

MAX_PASS_FAILURES = 5
"""Passes in a row that may raise an error other than a passing outage before the Mitigation is
stopped (Failed, reverted, or NeedsAttention): with the backoff, about half a minute of retries
(2 + 4 + 8 + 16 s). A deterministic error repeats on every pass; retrying it forever left a
Mitigation holding its target's lock, its change unguarded, with nothing but a log line."""
MAX_PASS_BACKOFF = 60.0


@dataclass
class RetryBudget:
    """Consecutive failed passes of one Mitigation's loop.

    A passing outage (the API server's 5xx or 429, the network, a timeout: see ``transient``) is
    retried with backoff for as long as it lasts: the Mitigation did nothing wrong, and while the API
    server is away nothing could be written anyway. Any other error counts against the budget."""

    limit: int = MAX_PASS_FAILURES
    counted: int = 0
    """Failures in a row that count against the budget."""
    streak: int = 0
    """Failures in a row of any kind (the backoff grows with these)."""
    last_error: str = ""

    def failed(self, exc: BaseException) -> None:
        self.streak += 1
        if not transient(exc):
            self.counted += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    def succeeded(self) -> None:
        self.counted = self.streak = 0

    @property
    def exhausted(self) -> bool:
        return self.counted >= self.limit

    @property
    def delay(self) -> float:
        return min(2.0**self.streak, MAX_PASS_BACKOFF)


async def stop_failing(runtime: Runtime, namespace: str, name: str, budget: RetryBudget) -> PassResult:
    """The retry budget is spent: one pass that feeds ``PassesFailed`` to the reducer, which stops the
    Mitigation (Failed, Reverting, NeedsAttention) with a condition and an Event; its effects run as
    in any pass, so the lock is released or the change reverted. Nothing but the Mitigation itself
    is read first: the Incident or the policy may be what keeps failing."""
    obj = await runtime.kube.get("Mitigation", name, namespace)
    if obj is None:
        return PassResult(gone=True, finished=True)
    stop = PassesFailed(error=budget.last_error, attempts=budget.counted)
    try:
        snapshot = await unsealed_snapshot(runtime, obj)
    except Exception as exc:
        bind_object(obj).warning("snapshot values not restored", error=str(exc)[:300])
        snapshot = None
    return await Pass(runtime, obj, IncidentFacts(), PolicyContext(), snapshot=snapshot).run([stop])


def _count_pass_error(runtime: Runtime, exc: BaseException) -> None:
    runtime.metrics.mitigation_pass_errors.labels(
        error=type(exc).__name__, transient="true" if transient(exc) else "false"
    ).inc()


def _lock(memo: kopf.Memo) -> asyncio.Lock:
    lock = memo.get(OBJECT_LOCK)
    if not isinstance(lock, asyncio.Lock):
        lock = asyncio.Lock()
        memo[OBJECT_LOCK] = lock
    return lock


def _wake(memo: kopf.Memo) -> asyncio.Event:
    wake = memo.get(OBJECT_WAKE)
    if not isinstance(wake, asyncio.Event):
        wake = asyncio.Event()
        memo[OBJECT_WAKE] = wake
    return wake


def wake_key(body: kopf.Body) -> tuple[Any, ...]:
    """The parts of a Mitigation whose change the machine must react to promptly."""
    meta = body.get("metadata") or {}
    return (
        meta.get("generation"),
        meta.get("deletionTimestamp"),
    )


def _interval(body: kopf.Body) -> float:
    """How often to look again when the machine asked for no wake-up: the guard's interval (the one
    frozen at the decision, else the spec's, else the built-in default)."""
    default = DEFAULT_GUARD.check_period.total_seconds()
    frozen = ((body.get("status") or {}).get("guard") or {}).get("interval")
    raw = frozen or ((body.get("spec") or {}).get("guard") or {}).get("interval")
    try:
        return max(parse_duration(raw).total_seconds(), 1.0) if raw else default
    except ValueError:
        return default


async def run_daemon(runtime: Runtime, body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped) -> None:
    """The loop: a pass, then sleep until the machine's next wake-up, a change to the object, or stop."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    log = bind_object(body)
    wake = _wake(memo)
    budget = RetryBudget()
    while not stopped:
        wake.clear()
        delay: float
        try:
            async with _lock(memo):
                if budget.exhausted:
                    log.error("mitigation retry budget spent; stopping it", error=budget.last_error)
                    result = await stop_failing(runtime, namespace, name, budget)
                else:
                    result = await drive_once(runtime, namespace, name)
            budget.succeeded()
        except StaleReadError:
            continue
        except Exception as exc:
            _count_pass_error(runtime, exc)
            stopping = budget.exhausted
            if stopping and not transient(exc):
                # Even stopping it fails (its status cannot be written): say so where it can still
                # be seen and end this loop rather than retry forever.
                _abandon(runtime, body, f"{type(exc).__name__}: {exc}", budget)
                return
            if stopping:
                budget.streak += 1  # an outage while stopping: wait for it, then stop
            else:
                budget.failed(exc)
            log.warning(
                "mitigation pass failed; retrying",
                error=f"{type(exc).__name__}: {exc}",
                retry_in=budget.delay,
                failures=budget.counted,
                budget=budget.limit,
            )
            if stopping or not budget.exhausted:
                await _sleep(stopped, wake, budget.delay)
            continue
        if result.gone:
            return
        if result.phase in TERMINAL_PHASES and result.wake_at is None:
            if not result.awaits_incident:
                log.info("mitigation finished", phase=result.phase.value if result.phase else None)
                return
            delay = _interval(body)
        elif result.wake_at is not None:
            delay = max((result.wake_at - runtime.clock()).total_seconds(), 0.0)
        else:
            delay = _interval(body)
        await _sleep(stopped, wake, delay)


def _abandon(runtime: Runtime, body: kopf.Body, error: str, budget: RetryBudget) -> None:
    """The last resort when not even the stop can be persisted: an Event, the metric and the log."""
    message = (
        f"Stanch stopped driving this Mitigation: its passes failed {budget.counted} times"
        f" ({budget.last_error}) and recording that failed too ({error}); its status is stale and"
        " its target may carry its change and lock: check the target, then delete the Mitigation"
    )[:1024]
    kopf.event(body, type="Warning", reason=RETRY_BUDGET_EXHAUSTED, message=message)
    runtime.metrics.mitigation_failures.labels(reason=RETRY_BUDGET_EXHAUSTED, phase="unknown").inc()
    bind_object(body).error("mitigation abandoned", error=error, cause=budget.last_error)


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    waiter = asyncio.ensure_future(wake.wait())
    stopper = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waiter, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopper.cancel()


async def on_delete(runtime: Runtime, body: kopf.Body, memo: kopf.Memo) -> None:
    """Finalizer: run the machine with deletion requested until it finishes (reverting first unless
    revertOnDelete is false). Kopf keeps the finalizer until this returns without raising."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deadline = runtime.clock() + timedelta(seconds=60)
    budget = RetryBudget()
    while runtime.clock() < deadline:
        try:
            async with _lock(memo):
                result = await drive_once(runtime, namespace, name)
        except StaleReadError:
            await asyncio.sleep(FINALIZER_MIN_PAUSE)
            continue
        except Exception as exc:
            _count_pass_error(runtime, exc)
            budget.failed(exc)
            if budget.exhausted:
                # A deletion always completes (design invariant 13): the object goes, the Event,
                # the metric and the log say what may be left on the target.
                _deleted_unfinished(runtime, body, budget)
                return
            await asyncio.sleep(min(budget.delay, 10.0))
            continue
        budget.succeeded()
        if result.gone or result.finished or result.phase in TERMINAL_PHASES:
            return
        # Never spin: a pass that asked for no wake-up (or one already due) still waits a little.
        due = (result.wake_at - runtime.clock()).total_seconds() if result.wake_at else FINALIZER_MIN_PAUSE
        await asyncio.sleep(min(max(due, FINALIZER_MIN_PAUSE), 5.0))
    raise kopf.TemporaryError("still reverting before deletion", delay=_interval(body))


def _deleted_unfinished(runtime: Runtime, body: kopf.Body, budget: RetryBudget) -> None:
    target = ((body.get("spec") or {}).get("target") or {}).get("name", "?")
    message = (
        f"deleted although its passes failed {budget.counted} times in a row ({budget.last_error});"
        f" the deletion completes, but the revert may not have run: check Deployment {target} for"
        " Stanch's change and its stanch.dev/active-mitigation annotation"
    )[:1024]
    kopf.event(body, type="Warning", reason=RETRY_BUDGET_EXHAUSTED, message=message)
    runtime.metrics.mitigation_failures.labels(reason=RETRY_BUDGET_EXHAUSTED, phase="Deleted").inc()
    bind_object(body).error("mitigation deleted without finishing", cause=budget.last_error)


async def start_runtime(memo: kopf.Memo, metrics: Metrics) -> None:
    config = memo[MEMO_SETTINGS]
    assert isinstance(config, Settings)
    crash_after = crash_point(os.environ)
    if crash_after is not None:
        structlog.get_logger("stanch").warning(
            "test-only crash point set: this operator will kill itself", crash_after=crash_after.text
        )
    kube = KubeClient.from_env()
    prometheus = PrometheusClient.connect(config.prometheus)
    metrics.observe_prometheus("mitigation", prometheus.outcomes)
    memo[RUNTIME] = Runtime(
        kube=kube,
        prometheus=prometheus,
        settings=config,
        metrics=metrics,
        decide=PolicyEvaluator(kube),
        crash_after=crash_after,
    )
    await _announce_admission(kube)


async def _announce_admission(kube: KubeClient) -> None:
    """Say at start whether approvals can be trusted. Only a log line: the check that counts runs
    before every approval is judged (``approval_offers``), so a policy removed later is noticed too."""
    log = structlog.get_logger("stanch.identity")
    try:
        problem = admission_problem(*await read_admission(kube, ADMISSION_POLICY))
    except Exception as exc:  # a start-up notice must never stop the operator
        problem = f"cannot read the admission policy {ADMISSION_POLICY} ({exc})"
    if problem:
        log.warning(
            "approvals will be refused until the identity admission policy is in force", problem=problem
        )
    else:
        log.info("identity admission policy in force", policy=ADMISSION_POLICY)


async def stop_runtime(memo: kopf.Memo) -> None:
    runtime = memo.get(RUNTIME)
    if isinstance(runtime, Runtime):
        await runtime.kube.close()
        await runtime.prometheus.close()


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime = memo[RUNTIME]
    assert isinstance(runtime, Runtime)
    return runtime


def register(registry: kopf.OperatorRegistry, metrics: Metrics) -> None:
    group, version = stanch.GROUP, stanch.VERSION

    async def startup(memo: kopf.Memo, **_: Any) -> None:
        await start_runtime(memo, metrics)

    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        await stop_runtime(memo)

    kopf.on.startup(id="stanch-mitigation-clients", registry=registry)(startup)
    kopf.on.cleanup(id="stanch-mitigation-clients-close", registry=registry)(cleanup)

    async def daemon(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await run_daemon(_runtime(memo), body, memo, stopped)

    async def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await on_delete(_runtime(memo), body, memo)

    async def changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # Approvals, spec edits and deletion wake the daemon rather than waiting out its sleep.
        # Our own status writes are events too; they must not wake it, or every write would
        # trigger a pass.
        seen = wake_key(body)
        if memo.get(OBJECT_SEEN) != seen:
            memo[OBJECT_SEEN] = seen
            _wake(memo).set()

    instrumented: Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]
    instrumented = metrics.instrument("mitigation-machine")
    kopf.daemon(
        group,
        version,
        PLURAL,
        id="mitigation-machine",
        registry=registry,
        # Asked to stop, the daemon finishes its pass (a status write and at most one step's
        # mutations) instead of being cancelled between persisting an intent and acting on it;
        # even then, resuming from the persisted intent is safe.
        cancellation_backoff=30.0,
        cancellation_timeout=30.0,
    )(instrumented(daemon))
    kopf.on.delete(group, version, PLURAL, id="mitigation-finalize", registry=registry)(
        metrics.instrument("mitigation-finalize")(deleted)
    )
    kopf.on.event(group, version, PLURAL, id="mitigation-wake", registry=registry)(changed)
