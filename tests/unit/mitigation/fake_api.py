"""An in-memory API server and a driver that runs the pure reducer the way the wiring does, with
crashes and failed writes injected anywhere.

:class:`FakeApi` applies the machine's writes as the API server does: a JSON patch with its ``test``
ops (a failed test is a bare 422, which the adapter reports as a conflict), a create (AlreadyExists
is done when the object is ours, else a conflict), a delete or an eviction with its uid precondition
(NotFound is done). A Deployment's generation moves with its spec and annotations, other kinds' with
their spec or data; every change moves the resourceVersion. Failures are scheduled by the global
number of the write sent (one-off) or by object and step (persistent).

:class:`Driver` is the wiring's loop without I/O: reduce, persist the status first, run the effects,
feed the results back (a step's writes as one group that stops at its first failure, like
``Pass._mutate``). A crash drops everything in memory and resumes from the last persisted status.
After a terminal phase it keeps running passes exactly when ``run_daemon`` does: while a pass asks
for a wake-up (a lock release retried later), and once after a crash (the new process's daemon runs
a pass for every Mitigation, finished ones included) — the pass that releases a lock the crash left.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.core.effects import (
    Create,
    Delete,
    EvaluatePolicy,
    Evict,
    Finish,
    ObserveTarget,
    Patch,
    PersistIntent,
    QuerySignals,
    WakeAt,
)
from stanch.core.machine.observations import (
    ApplyFailed,
    BaselineCollected,
    ChangeApplied,
    GuardSample,
    IntentPersisted,
    Observation,
    PolicyDecided,
    SignalSeries,
    TargetObserved,
    Tick,
    World,
)
from stanch.core.machine.phases.ending import awaits_resolution
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import KubeEvent, MachineState, MitigationIdentity
from stanch.core.models import (
    BUILTIN_GUARD,
    LOCK_ANNOTATION,
    TERMINAL_PHASES,
    MitigationSpec,
    MitigationStatus,
    PolicyDecision,
    PolicyDecisionKind,
    ResolvedGuard,
    SignalRef,
)
from stanch.core.plans.jsonpatch import PatchError, apply_ops

from .fixtures import deployment, replica_set

Write = Patch | Create | Delete | Evict
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALLOW = PolicyDecision(decision=PolicyDecisionKind.ALLOW, policy="MitigationPolicy/shop/p", rule="r")
GUARD = ResolvedGuard.of(
    BUILTIN_GUARD.model_copy(
        # A short bake: the matrix runs hundreds of Mitigations to their end.
        update={"signals": [SignalRef(name="error_ratio")], "bake_time": "30s", "interval": "10s"}
    )
)
TIMEOUT = 0
"""The code of a write that got no answer (a timeout, a lost connection)."""


def machine(action: dict[str, Any]) -> MachineState:
    spec = MitigationSpec.model_validate({"target": {"name": "web"}, **action})
    return MachineState(
        identity=MitigationIdentity("m1", "shop", "mit-uid"),
        spec=spec,
        status=MitigationStatus(),
        guard=GUARD,
    )


def failure(step: str, write: Write, code: int, message: str) -> ApplyFailed:
    """What the wiring feeds back for a failed write with this HTTP status (see ``Pass._mutate``)."""
    return ApplyFailed(
        step,
        f"{write.description or write.key.display()}: {message}",
        retriable=code == TIMEOUT or code == 429 or code >= 500,
        conflict=code in (404, 409) or message == "test failed",
        code=code,
        key=write.key,
    )


@dataclass
class FakeApi:
    objects: dict[tuple[str, str], dict[str, Any]]
    mutations: list[str] = field(default_factory=list)
    """Every write that changed something, as ``Step:Kind/name``."""
    sent: int = 0
    sent_log: list[str] = field(default_factory=list)
    """Every write sent, as ``Step:Kind/name``, whatever its outcome."""
    failed: int = 0
    fail_at: dict[int, int] = field(default_factory=dict)
    """One-off failures: the number of the write sent (1-based, over the whole run) → HTTP status."""
    refuse: dict[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)
    """Persistent failures: (step, kind, name) → (HTTP status, message), every time it is sent."""
    before: dict[int, Callable[[], None]] = field(default_factory=dict)
    """Someone else acting just before the write with this number is applied."""
    rv: int = 1000

    def take_lock(self, holder: str) -> None:
        """Another Mitigation takes the target's lock (over a finished holder's, or a free one)."""
        key = ("Deployment", "web")
        old = self.objects[key]
        new = copy.deepcopy(old)
        new["metadata"].setdefault("annotations", {})[LOCK_ANNOTATION] = holder
        self._changed(key, old, new, f"Lock:{holder}")

    def world(self) -> World:
        get = self.objects.get
        return World(
            target=get(("Deployment", "web")),
            hpa=get(("HorizontalPodAutoscaler", "web")),
            canary=get(("Deployment", "web-canary-m1")),
            config_map=get(("ConfigMap", "flags")),
            node=get(("Node", "n1")),
            pods=[o for (kind, _), o in self.objects.items() if kind == "Pod"],
            pods_on_node=[o for (kind, _), o in self.objects.items() if kind == "Pod"],
            replica_sets=[o for (kind, _), o in self.objects.items() if kind == "ReplicaSet"],
            lock_holder_active=False,
        )

    def send(self, write: Write) -> ApplyFailed | None:
        self.sent += 1
        self.sent_log.append(f"{write.step}:{write.key.kind}/{write.key.name}")
        if self.sent in self.before:
            self.before[self.sent]()
        scheduled = self.fail_at.get(self.sent)
        refused = self.refuse.get((str(write.step), write.key.kind, write.key.name))
        if scheduled is not None or refused is not None:
            self.failed += 1
            code, message = refused or (scheduled or 0, "injected")
            return failure(write.step, write, code, message)
        result = self._apply(write)
        if result is not None:
            self.failed += 1
        return result

    def _changed(
        self, key: tuple[str, str], old: dict[str, Any] | None, new: dict[str, Any], what: str
    ) -> None:
        self.rv += 1
        new.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        if old is not None:
            moved = new.get("spec") != old.get("spec") or (
                key[0] == "Deployment"
                and new["metadata"].get("annotations") != old["metadata"].get("annotations")
            )
            if moved:
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        self.objects[key] = new
        self.mutations.append(what)

    def _apply(self, write: Write) -> ApplyFailed | None:
        key = (write.key.kind, write.key.name)
        what = f"{write.step}:{write.key.kind}/{write.key.name}"
        old = self.objects.get(key)
        if isinstance(write, Patch):
            if old is None:
                return failure(write.step, write, 404, "not found")
            try:
                new = apply_ops(old, write.wire_ops())
            except PatchError:
                return None if write.best_effort else failure(write.step, write, 422, "test failed")
            self._changed(key, old, new, what)
            return None
        if isinstance(write, Create):
            if old is not None:
                ours = any(
                    r.get("uid") == write.owner_uid for r in old["metadata"].get("ownerReferences") or ()
                )
                return None if ours else failure(write.step, write, 409, "AlreadyExists, not ours")
            new = copy.deepcopy(dict(write.manifest))
            new["metadata"]["generation"] = 1
            self._changed(key, None, new, what)
            return None
        uid = write.precondition.uid
        if old is None or (uid is not None and old["metadata"].get("uid") != uid):
            return None  # NotFound (or a replacement): done
        del self.objects[key]
        self.mutations.append(what)
        return None


Sampler = Callable[[str], float]
"""The error ratio Prometheus answers with, by query purpose ("baseline" or "check")."""


def healthy(purpose: str) -> float:
    return 0.01


def worse(purpose: str) -> float:
    return 0.01 if purpose == "baseline" else 0.4


def series(value: float, n: int) -> tuple[SignalSeries, ...]:
    return (SignalSeries("error_ratio", tuple(value + i * 1e-5 for i in range(n))),)


@dataclass
class Driver:
    """Runs a Mitigation to its end against a :class:`FakeApi`, like the wiring, with a crash after
    the ``crash_after``-th event (a status persisted or a write sent, counted over the whole run)."""

    state: MachineState
    api: FakeApi
    sampler: Sampler = healthy
    crash_after: int | None = None
    now: datetime = T0
    events: int = 0
    """Status writes and writes sent so far (the crash points)."""
    persisted: MitigationStatus = field(default_factory=MitigationStatus)
    kube_events: list[KubeEvent] = field(default_factory=list)
    status_writes: int = 0
    crashed: bool = False
    on_crash: Callable[[], None] | None = None
    """Someone else acting while the operator is down (after the crash, before the restart)."""
    wakes: list[datetime] = field(default_factory=list)

    def _event(self) -> bool:
        """Count one crash point; True when the process dies right after it."""
        self.events += 1
        if self.crash_after is not None and self.events == self.crash_after and not self.crashed:
            self.crashed = True
            if self.on_crash is not None:
                self.on_crash()
            return True
        return False

    def run(self, max_passes: int = 200) -> MachineState:
        """Passes until the daemon would return, as ``run_daemon`` decides: a finished Mitigation
        whose pass asked for no wake-up (and awaits no Incident) ends the loop; one that did (a lock
        release retried later) sleeps until then and runs another pass. A crash starts a new
        process, whose daemon runs a pass for every Mitigation, finished ones included (Kopf
        resumes the daemons at start-up): that pass is what releases a lock the crash left."""
        for _ in range(max_passes):
            if self._pass():
                continue  # crashed: a new process resumes from what was persisted
            finished = self.state.status.phase in TERMINAL_PHASES
            if finished and not self.wakes and not awaits_resolution(self.state):
                return self.state
            self.now = min(self.wakes) if self.wakes else self.now + timedelta(seconds=1)
        raise AssertionError(f"no end after {max_passes} passes: {self.state.status.message}")

    def _pass(self) -> bool:
        """One pass from a fresh read; True when the process crashed during it."""
        self.wakes = []
        fresh = MitigationStatus.model_validate(self.persisted.to_dict()) if self.persisted.phase else None
        if fresh is not None:
            self.state = replace(self.state, status=fresh)
        queue: list[Observation] = [Tick()]
        steps = 0
        while queue:
            steps += 1
            assert steps < 200, "a pass that loops"
            t = reduce(self.state, queue.pop(0), now=self.now)
            if t.state.status != self.state.status:
                self.persisted = t.state.status
                self.status_writes += 1
                self.state = t.state
                if self._event():
                    return True
            self.state = t.state
            self.kube_events.extend(t.events)
            group: list[Write] = []
            for effect in t.effects:
                same_step = isinstance(effect, Patch | Create | Delete | Evict) and effect.step == (
                    group[0].step if group else effect.step
                )
                if group and not same_step:
                    # Consecutive writes of one step are one group, as in ``Pass._run_effects``.
                    crashed, obs = self._writes(group)
                    if crashed:
                        return True
                    queue.extend(obs)
                    group = []
                if isinstance(effect, Patch | Create | Delete | Evict):
                    group.append(effect)
                    continue
                queue.extend(self._other(effect))
            if group:
                crashed, obs = self._writes(group)
                if crashed:
                    return True
                queue.extend(obs)
        return False

    def _other(self, effect: Any) -> list[Observation]:
        if isinstance(effect, PersistIntent):
            return [IntentPersisted(effect.intent.step, effect.intent.attempt)]
        if isinstance(effect, ObserveTarget):
            return [TargetObserved(self.api.world())]
        if isinstance(effect, QuerySignals):
            value = self.sampler(effect.purpose)
            if effect.purpose == "baseline":
                return [BaselineCollected(effect.start, effect.end, series(value, 20))]
            return [GuardSample(self.now, series(value, 6))]
        if isinstance(effect, EvaluatePolicy):
            return [PolicyDecided(ALLOW)]
        if isinstance(effect, WakeAt):
            self.wakes.append(effect.at)
        assert isinstance(effect, WakeAt | Finish), effect
        return []

    def _writes(self, group: list[Write]) -> tuple[bool, list[Observation]]:
        """A step's writes in order, as ``Pass._mutate``: the first failure stops the rest (evictions
        are all tried and reported together); best-effort writes report nothing."""
        refused: list[ApplyFailed] = []
        essential = [w for w in group if not (isinstance(w, Patch) and w.best_effort)]
        for write in group:
            result = self.api.send(write)
            if self._event():
                return True, []
            if write not in essential:
                continue
            if result is not None and isinstance(write, Evict):
                refused.append(result)
            elif result is not None:
                return False, [result]
        if refused:
            return False, [refused[0]]
        if not essential:
            return False, []
        target = self.api.objects.get(("Deployment", "web"), {})
        meta = target.get("metadata", {})
        return False, [ChangeApplied(essential[0].step, meta.get("resourceVersion"), meta.get("generation"))]


# --- worlds ----------------------------------------------------------------------------------------


def world_for(action: dict[str, Any], *, hpa: bool = False) -> FakeApi:
    objects: dict[tuple[str, str], dict[str, Any]] = {("Deployment", "web"): deployment(replicas=3)}
    if "rollback" in action:
        objects[("ReplicaSet", "web-h1")] = replica_set("1", "web:v1")
        objects[("ReplicaSet", "web-h2")] = replica_set("2", "web:v2")
    if "configToggle" in action:
        objects[("ConfigMap", "flags")] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "flags", "namespace": "shop", "uid": "cm-uid", "resourceVersion": "901"},
            "data": {"checkout_v2": "on", "other": "x"},
        }
    if "evacuate" in action:
        objects[("Node", "n1")] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1", "uid": "n-uid", "annotations": {"kwok": "fake"}},
            "spec": {},
        }
    if "evacuate" in action or "restart" in action:
        for name in ("web-a", "web-b"):
            objects[("Pod", name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "shop",
                    "uid": f"uid-{name}",
                    "labels": {"app": "web"},
                },
            }
    if hpa:
        objects[("HorizontalPodAutoscaler", "web")] = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop", "uid": "hpa-uid"},
            "spec": {
                "minReplicas": 2,
                "maxReplicas": 4,
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "memory",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    },
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 90},
                        },
                    },
                ],
            },
        }
    return FakeApi(objects)
