"""While a mitigation's new pods start, latency and saturation settle; they are not its verdict.

Scenario 14 (a rollback, operator killed mid-bake) was reverted 6 s into its bake for p99 0.099 →
0.118 s during the rollback's own rollout, while the error ratio it was curing had not yet fallen
by more than the baseline's noise: the revert restored the outage.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stanch.core.guard import SignalSpec, read_rollout, run_check, settling_reason
from stanch.core.machine.observations import SignalSeries, Tick
from stanch.core.machine.state import MachineState
from stanch.core.models import (
    CheckVerdict,
    MitigationPhase,
    MitigationSpec,
    RolloutProgress,
    SignalKind,
    SignalRef,
    SignalTemplate,
    VerdictResult,
)
from stanch.core.plans import starts_pods
from stanch.core.plans.snapshot import CommonSnapshot, NoSnapshot, Snapshot, TargetSnapshot

from .fixtures import deployment
from .test_guard import ERRORS, LATENCY, T0
from .test_machine import GUARD, Cluster, state, step

P = MitigationPhase
SETTLE = timedelta(seconds=30)
INTERVAL = timedelta(seconds=10)


def _dep(
    *,
    generation: int = 8,
    observed: int = 8,
    desired: int = 3,
    updated: int = 3,
    available: int = 3,
    stalled: bool = False,
) -> dict[str, Any]:
    dep = deployment(replicas=desired, generation=generation)
    dep["status"] = {
        "observedGeneration": observed,
        "replicas": desired,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "conditions": (
            [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
            if stalled
            else []
        ),
    }
    return dep


# --- reading the rollout --------------------------------------------------------------------------


def test_pods_starting_then_available_sets_the_settled_time() -> None:
    starting = read_rollout(_dep(updated=1, available=2), previous=None, now=T0)
    assert starting is not None
    assert starting.starting
    assert starting.settled_at is None
    done = read_rollout(_dep(), previous=starting, now=T0 + timedelta(seconds=12))
    assert done is not None
    assert not done.starting
    assert done.settled_at == T0 + timedelta(seconds=12)
    # Later reads keep the time it settled, not the time they were made.
    again = read_rollout(_dep(), previous=done, now=T0 + timedelta(seconds=40))
    assert again is not None
    assert again.settled_at == T0 + timedelta(seconds=12)


def test_a_rollout_never_seen_starting_gets_no_grace() -> None:
    # A scale-down: nothing starts. Its first read may come before the controller saw the new spec,
    # when the old counts look like a rollout; that must not count as pods that started.
    unseen = read_rollout(
        _dep(generation=9, observed=8, desired=1, updated=3, available=3), previous=None, now=T0
    )
    assert unseen is None
    seen = read_rollout(
        _dep(generation=9, observed=9, desired=1, updated=1, available=3), previous=unseen, now=T0
    )
    assert seen is not None
    assert not seen.starting
    assert seen.settled_at is None
    assert settling_reason(seen, now=T0, settle_time=SETTLE) is None


def test_a_stalled_rollout_is_not_settling() -> None:
    stalled = read_rollout(_dep(updated=1, available=0, stalled=True), previous=None, now=T0)
    assert stalled is not None
    assert stalled.stalled
    assert not stalled.starting
    assert settling_reason(stalled, now=T0, settle_time=SETTLE) is None


def test_settling_lasts_settle_time_after_the_pods_are_available() -> None:
    progress = RolloutProgress(desired=3, updated=3, available=3, settled_at=T0)
    assert settling_reason(progress, now=T0 + timedelta(seconds=29), settle_time=SETTLE) is not None
    assert settling_reason(progress, now=T0 + timedelta(seconds=30), settle_time=SETTLE) is None
    starting = RolloutProgress(desired=3, updated=2, available=1, starting=True)
    reason = settling_reason(starting, now=T0, settle_time=SETTLE)
    assert reason is not None
    assert "2/3 updated" in reason
    assert "1/3 available" in reason


# --- one check ------------------------------------------------------------------------------------


def _noisy(level: float, n: int, seed: int, rel: float = 0.01) -> list[float]:
    rng = random.Random(seed)
    return [level * (1 + rng.gauss(0, rel)) for _ in range(n)]


BASELINE = {"error_ratio": _noisy(0.4, 21, 1, 0.3), "latency_p99": _noisy(0.099, 21, 2)}
SLOWER = {"error_ratio": _noisy(0.35, 4, 3, 0.3), "latency_p99": _noisy(0.118, 4, 4)}


def test_latency_worse_while_settling_is_recorded_not_counted() -> None:
    plain = run_check([ERRORS, LATENCY], BASELINE, SLOWER, at=T0, previous=[], tolerance=0.1)
    assert plain.observation.check == CheckVerdict.FAIL
    result = run_check(
        [ERRORS, LATENCY], BASELINE, SLOWER, at=T0, previous=[], tolerance=0.1, settling="new pods starting"
    )
    obs = result.observation
    assert obs.check == CheckVerdict.SETTLING
    assert obs.consecutive_failures == 0
    latency = next(v for v in obs.values if v.signal == "latency_p99")
    assert latency.failed is False
    assert latency.settling is True
    assert obs.note.startswith("settling, new pods starting")


def test_errors_worse_while_settling_still_fail() -> None:
    worse = {"error_ratio": _noisy(0.95, 4, 5, 0.01), "latency_p99": _noisy(0.118, 4, 6)}
    result = run_check([ERRORS, LATENCY], BASELINE, worse, at=T0, previous=[], tolerance=0.1, settling="x")
    assert result.observation.check == CheckVerdict.FAIL
    failed = {v.signal: v.failed for v in result.observation.values}
    assert failed == {"error_ratio": True, "latency_p99": False}


def test_saturation_settles_throughput_does_not() -> None:
    saturation = SignalSpec("cpu", SignalKind.SATURATION)
    throughput = SignalSpec("rps", SignalKind.THROUGHPUT, higher_is_worse=False)
    base = {"cpu": _noisy(0.5, 21, 7), "rps": _noisy(100, 21, 8)}
    during = {"cpu": _noisy(0.9, 4, 9), "rps": _noisy(40, 4, 10)}
    result = run_check(
        [saturation, throughput], base, during, at=T0, previous=[], tolerance=0.1, settling="x"
    )
    assert {v.signal: (v.failed, v.settling) for v in result.observation.values} == {
        "cpu": (False, True),
        "rps": (True, None),
    }


# --- the machine ----------------------------------------------------------------------------------

TEMPLATES = {
    "error_ratio": SignalTemplate(name="error_ratio", query="e", kind=SignalKind.ERROR_RATIO),
    "latency_p99": SignalTemplate(name="latency_p99", query="l", kind=SignalKind.LATENCY),
}
GUARD2 = GUARD.model_copy(
    update={
        "signals": [SignalRef(name="error_ratio"), SignalRef(name="latency_p99")],
        "interval": "10s",
        "bake_time": "2m",
        "settle_time": "30s",
    }
)


class World:
    """A Deployment controller and a Prometheus the test moves by hand."""

    def __init__(self, replicas: int) -> None:
        self.cluster = Cluster({("Deployment", "web"): deployment(replicas=replicas)})
        self.errors = 0.4
        self.latency = 0.099
        self.error_noise = 0.3
        self.seed = 100

    def rollout(self, *, updated: int, available: int) -> None:
        dep = self.cluster.objects[("Deployment", "web")]
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": dep["spec"]["replicas"],
            "updatedReplicas": updated,
            "availableReplicas": available,
        }

    def sample(self, purpose: str) -> tuple[SignalSeries, ...]:
        n = 21 if purpose == "baseline" else 4
        self.seed += 2
        errors = (
            BASELINE["error_ratio"]
            if purpose == "baseline"
            else _noisy(self.errors, n, self.seed, self.error_noise)
        )
        latency = BASELINE["latency_p99"] if purpose == "baseline" else _noisy(self.latency, n, self.seed + 1)
        return (SignalSeries("error_ratio", tuple(errors)), SignalSeries("latency_p99", tuple(latency)))


def _start(world: World, action: dict[str, Any]) -> MachineState:
    st = replace(state(action), guard=GUARD2, signals=TEMPLATES)
    st, _ = step(st, Tick(), world.cluster, T0, world.sample)
    assert st.status.phase == P.BAKING, st.status.message
    return st


def _check(st: MachineState, world: World, i: int) -> MachineState:
    st, _ = step(st, Tick(), world.cluster, T0 + INTERVAL * (i + 1), world.sample)
    return st


def test_a_scale_up_whose_new_pods_start_slowly_is_not_reverted() -> None:
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.latency = 0.118
    checks = []
    for i in range(12):
        if i < 3:
            world.rollout(updated=6, available=3 + i)
        else:
            world.rollout(updated=6, available=6)
        if i >= 6:  # the rate window has moved past the rollout
            world.latency = 0.099
        st = _check(st, world, i)
        checks.append(st.status.observations[-1].check)
        if st.status.phase != P.BAKING:
            break
    assert st.status.phase == P.SUCCEEDED, st.status.message
    # Three checks with pods starting, then settleTime (30 s = three checks) after they were all up.
    assert checks[:6] == [CheckVerdict.SETTLING] * 6
    assert st.status.rollout is not None
    assert st.status.rollout.settled_at == T0 + INTERVAL * 4
    assert any(a.event == "Check" and "settling, new pods starting" in a.reason for a in st.status.audit)


def test_latency_still_worse_after_settling_is_reverted() -> None:
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.latency = 0.15
    for i in range(12):
        world.rollout(updated=6, available=6 if i >= 2 else 4)
        st = _check(st, world, i)
        if st.status.phase != P.BAKING:
            break
    assert st.status.verdict is not None
    assert st.status.verdict.result == VerdictResult.WORSE
    # Pods up at the third check; settling until 30 s later; then two counted failures.
    assert i == 2 + 3 + 1


def test_a_scale_down_that_slows_the_remaining_pods_is_reverted_at_once() -> None:
    world = World(6)
    st = _start(world, {"scale": {"replicas": 3}})
    world.latency = 0.15
    world.rollout(updated=3, available=3)
    st = _check(st, world, 0)
    st = _check(st, world, 1)
    assert st.status.verdict is not None
    assert st.status.verdict.result == VerdictResult.WORSE
    assert all(o.check == CheckVerdict.FAIL for o in st.status.observations)


def test_errors_rising_while_pods_start_are_reverted_at_once() -> None:
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.errors = 0.99
    world.error_noise = 0.01
    world.latency = 0.15
    world.rollout(updated=6, available=3)
    st = _check(st, world, 0)
    st = _check(st, world, 1)
    assert st.status.verdict is not None
    assert st.status.verdict.result == VerdictResult.WORSE


def test_the_bake_runs_on_while_pods_settle_and_ends_after() -> None:
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.latency = 0.118
    world.rollout(updated=6, available=4)
    i = 0
    for i in range(24):
        if i == 14:  # pods up 140 s in, after the 2 m bake; latency settles within settleTime
            world.rollout(updated=6, available=6)
        if i == 17:
            world.latency = 0.099
        st = _check(st, world, i)
        if st.status.phase != P.BAKING:
            break
    assert st.status.phase == P.SUCCEEDED, st.status.message
    assert i == 14 + 3  # settling for 30 s after the pods were up; the first plain pass ends it


def test_a_passing_check_ends_the_bake_even_while_pods_start() -> None:
    # Settling excuses latency; it never holds back a bake whose checks pass.
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.rollout(updated=6, available=4)
    for i in range(24):
        st = _check(st, world, i)
        if st.status.phase != P.BAKING:
            break
    assert st.status.phase == P.SUCCEEDED
    assert i == 11


def test_a_change_that_starts_pods_settles_even_if_the_rollout_ends_before_the_first_read() -> None:
    # kwok (and a fast cluster) can finish a 3-pod rollout within one interval: the machine knows
    # from the plan that pods started, so settleTime runs from the first read that sees them up.
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    assert st.status.rollout is not None
    assert st.status.rollout.starting
    world.rollout(updated=6, available=6)
    world.latency = 0.118
    checks = []
    for i in range(5):
        st = _check(st, world, i)
        checks.append(st.status.observations[-1].check)
    assert checks[:3] == [CheckVerdict.SETTLING] * 3
    assert st.status.verdict is not None
    assert st.status.verdict.result == VerdictResult.WORSE


def test_a_scale_down_starts_no_pods_so_nothing_settles() -> None:
    world = World(6)
    st = _start(world, {"scale": {"replicas": 3}})
    assert st.status.rollout is None


def test_a_bake_that_ends_still_settling_is_inconclusive() -> None:
    world = World(3)
    st = _start(world, {"scale": {"replicas": 6}})
    world.latency = 0.118
    world.rollout(updated=6, available=4)  # pods that never become ready, deadline not yet passed
    for i in range(24):
        st = _check(st, world, i)
        if st.status.verdict is not None:
            break
    # At most twice bakeTime.
    assert i == 23
    assert st.status.verdict is not None
    assert st.status.verdict.result == VerdictResult.INCONCLUSIVE
    assert "still settling" in st.status.verdict.reason
    assert st.status.phase != P.SUCCEEDED


@pytest.mark.parametrize(
    ("action", "want"),
    [
        ({"rollback": {}}, True),
        ({"restart": {}}, True),
        ({"canary": {"image": "web:v3"}}, True),
        ({"evacuate": {"node": "n1"}}, True),
        ({"scale": {"replicas": 4}}, True),
        ({"scale": {"factor": 1.5}}, True),
        ({"scale": {"replicas": 3}}, False),
        ({"scale": {"replicas": 1}}, False),
        ({"pause": {}}, False),
        ({"configToggle": {"configMap": "flags", "key": "k", "value": "off"}}, False),
        ({"configToggle": {"configMap": "flags", "key": "k", "value": "off", "restart": True}}, True),
    ],
)
def test_which_actions_start_pods(action: dict[str, Any], want: bool) -> None:
    spec = MitigationSpec.model_validate({"target": {"name": "web"}, **action})
    # Only the target matters here; the action's own part is left empty.
    common = CommonSnapshot(
        taken_at="2025-03-01T12:00:00Z", target=TargetSnapshot.model_validate(deployment(replicas=3))
    )
    assert starts_pods(spec, Snapshot(common=common, action=NoSnapshot())) is want
