"""A dry run writes nothing, in any path: every state a dry-run Mitigation can reach, for every
action, fed every observation the wiring can produce (a decision asking for a GitOps suspension,
approvals, targets locked by us, by others or changed, every step's intent, success and failure,
samples worse than the baseline, a resolved Incident, a deletion), yields no mutating effect and no
write-ahead intent. Its own status and Events are all it changes."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stanch.core.effects import Create, Patch, PersistIntent, Step
from stanch.core.identity import OfferedApproval
from stanch.core.machine.observations import (
    ApplyFailed,
    Approved,
    BaselineCollected,
    ChangeApplied,
    DeleteRequested,
    GuardSample,
    IncidentResolved,
    IntentPersisted,
    Observation,
    PassesFailed,
    PolicyDecided,
    RevertApplied,
    SignalSeries,
    TargetObserved,
    Tick,
)
from stanch.core.machine.reading import plan_of
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, MitigationIdentity
from stanch.core.mitigation_context import as_decided
from stanch.core.models import (
    LOCK_ANNOTATION,
    AutoSyncRequest,
    GuardProblem,
    MitigationPhase,
    MitigationSpec,
    MitigationStatus,
    PolicyDecision,
    PolicyDecisionKind,
    UserIdentity,
)
from stanch.core.plans import MutatingEffect
from stanch.core.plans.jsonpatch import apply_ops
from stanch.core.world import World

from .fixtures import deployment
from .test_action_table import CASES, world
from .test_machine import GUARD, T0

P = MitigationPhase
FLUX = AutoSyncRequest(tool="Flux", app="Kustomization flux/apps", policy="MitigationPolicy/shop/p")
DRY_DECISION = PolicyDecision(
    decision=PolicyDecisionKind.ALLOW,
    policy="MitigationPolicy/shop/p",
    rule="dryRun",
    gitops_managed="Flux",
    suspend_auto_sync=FLUX,
)


def _worlds(hpa: bool) -> list[World]:
    plain = deployment(replicas=3)
    ours = deployment(replicas=3)
    ours["metadata"]["annotations"][LOCK_ANNOTATION] = "m1"  # an earlier Mitigation of the same name
    theirs = deployment(replicas=3)
    theirs["metadata"]["annotations"][LOCK_ANNOTATION] = "other"
    changed = deployment(replicas=9, generation=8)
    return [
        world(plain, hpa=hpa),
        world(ours, hpa=hpa),
        replace(world(theirs, hpa=hpa), lock_holder_active=True),
        world(theirs, hpa=hpa),
        world(changed, hpa=hpa),
    ]


def _observations(hpa: bool) -> list[Observation]:
    worse = (SignalSeries("error_ratio", tuple(0.5 for _ in range(6))),)
    good = (SignalSeries("error_ratio", tuple(0.01 + i * 1e-5 for i in range(20))),)
    out: list[Observation] = [
        Tick(),
        PolicyDecided(DRY_DECISION),
        Approved(OfferedApproval("a1", UserIdentity(username="alice"))),
        *(TargetObserved(w) for w in _worlds(hpa)),
        BaselineCollected(T0 - timedelta(minutes=10), T0, good),
        GuardSample(T0 + timedelta(minutes=1), worse),
        GuardSample(T0 + timedelta(minutes=6), good),
        RevertApplied(),
        IncidentResolved(),
        DeleteRequested(),
        PassesFailed("KubeError: 500", 10),
    ]
    for s in Step:
        out += [
            IntentPersisted(s.value, 1),
            ChangeApplied(s.value, "2000", 9),
            ApplyFailed(s.value, "503", retriable=True),
            ApplyFailed(s.value, "test failed", conflict=True),
            ApplyFailed(s.value, "422 denied"),
        ]
    return out


def _human_made_the_change(st: MachineState, hpa: bool) -> list[Observation]:
    """The objects as if someone applied the dry run's plan by hand: the case where a revert would
    undo a human's change."""
    if st.status.snapshot is None:
        return []
    base = world(deployment(replicas=3), hpa=hpa)
    objects: dict[str, Any] = {
        "Deployment": base.target,
        "HorizontalPodAutoscaler": base.hpa,
        "ConfigMap": base.config_map,
        "Node": base.node,
    }
    canary = None
    for effect in plan_of(st).apply:
        if isinstance(effect, Patch) and objects.get(effect.key.kind) is not None:
            objects[effect.key.kind] = apply_ops(objects[effect.key.kind], effect.ops)
            objects[effect.key.kind]["metadata"]["generation"] = 8
        elif isinstance(effect, Create):
            canary = dict(effect.manifest)
    by_hand = replace(
        base,
        target=objects["Deployment"],
        hpa=objects["HorizontalPodAutoscaler"],
        config_map=objects["ConfigMap"],
        node=objects["Node"],
        canary=canary,
    )
    return [TargetObserved(by_hand)]


def _key(st: MachineState) -> str:
    return json.dumps([st.deleting, st.status.to_dict()], sort_keys=True, default=str)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_dry_run_emits_no_mutating_effect_in_any_reachable_state(case: str) -> None:
    action, hpa = CASES[case]
    spec = MitigationSpec.model_validate(
        {
            "target": {"name": "web"},
            **action,
            "dryRun": True,
            "temporary": True,
            "incidentRef": {"name": "checkout-5xx"},
        }
    )
    start = MachineState(MitigationIdentity("m1", "shop", "mit-uid"), spec, MitigationStatus(), GUARD)
    observations = _observations(hpa)
    broken = replace(
        start, guard_problem=GuardProblem("bakeTime", "bakeTime 1m is shorter than interval 10m")
    )
    queue = deque([(start, 0), (replace(start, deleting=True), 0), (broken, 0)])
    seen: set[str] = set()
    phases: set[MitigationPhase | None] = set()
    while queue:
        st, depth = queue.popleft()
        if _key(st) in seen or depth > 4:
            continue
        seen.add(_key(st))
        phases.add(st.status.phase)
        for obs in [*observations, *_human_made_the_change(st, hpa)]:
            now = T0 + timedelta(minutes=depth)
            t = reduce(st, obs, now=now)
            writes = [e for e in t.effects if isinstance(e, MutatingEffect | PersistIntent)]
            assert writes == [], f"{st.status.phase} + {obs}: {writes}"
            queue.append((t.state, depth + 1))
            if not t.state.deleting:
                queue.append((replace(t.state, deleting=True), depth + 1))
    # The paths walked: planned, finished, resolved, deleted (a dry run is never approved, locked,
    # applied, baked or reverted).
    assert {None, P.BASELINE, P.SUCCEEDED, P.FAILED} <= phases, phases
    assert phases <= {None, P.PENDING, P.BASELINE, P.SUCCEEDED, P.FAILED, P.REJECTED}, phases


def test_dry_run_is_what_the_policy_decided_whatever_the_spec_says_now() -> None:
    dry = MitigationSpec.model_validate({"target": {"name": "web"}, "scale": {"replicas": 6}, "dryRun": True})
    real = dry.model_copy(update={"dry_run": False})
    undecided = MitigationStatus()
    decided_dry = MitigationStatus(policy=DRY_DECISION)
    decided_real = MitigationStatus(
        policy=PolicyDecision(decision=PolicyDecisionKind.ALLOW, rule="actions[Scale]")
    )
    # Before the decision the spec says; after it, the decision does: a dry run switched to a real
    # one would act without any policy having allowed it, a real one switched to a dry run mid-bake
    # would leave its change and its lock behind.
    assert as_decided(dry, undecided).dry_run
    assert not as_decided(real, undecided).dry_run
    assert as_decided(real, decided_dry).dry_run
    assert not as_decided(dry, decided_real).dry_run
    assert as_decided(dry, decided_dry) is dry
