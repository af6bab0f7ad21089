"""The lock is released after a crash at the terminal step: the terminal status says the release is
pending (``LockReleased=False``, written before the unlock is sent), and a later pass that finds the
lock still naming the finished Mitigation releases it, conditionally, exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from stanch.core.effects import ObserveTarget, Patch, WakeAt
from stanch.core.machine.observations import ApplyFailed, DeleteRequested, TargetObserved, Tick
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState
from stanch.core.machine.transitions import LOCK_RELEASED
from stanch.core.models import LOCK_ANNOTATION, Condition, MitigationPhase

from .crashing import CrashingCluster, last_transition_before_the_crash
from .test_machine import T0, Cluster, bake, new_cluster, state, step

P = MitigationPhase


def lock_of(cluster: Cluster) -> str | None:
    holder: str | None = cluster.objects[("Deployment", "web")]["metadata"]["annotations"].get(
        LOCK_ANNOTATION
    )
    return holder


def released(st: MachineState) -> Condition:
    (condition,) = [c for c in st.status.conditions if c.type == LOCK_RELEASED]
    return condition


def crashed_at_the_end(monkeypatch: pytest.MonkeyPatch) -> tuple[MachineState, Cluster]:
    """A Mitigation whose terminal status (Succeeded) was persisted, and whose unlock never ran."""
    cluster = CrashingCluster(new_cluster().objects, crash_on=("Unlock",))
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    ending = last_transition_before_the_crash(monkeypatch, lambda: bake(st, cluster, T0)).state
    assert ending.status.phase == P.SUCCEEDED
    assert lock_of(cluster) == "shop/m1", "the crash lost the unlock"
    return ending, Cluster(cluster.objects)


def test_the_release_is_written_ahead_with_the_terminal_status(monkeypatch: pytest.MonkeyPatch) -> None:
    ending, _ = crashed_at_the_end(monkeypatch)
    condition = released(ending)
    assert (condition.status.value, condition.reason) == ("False", "Releasing")


def test_the_next_pass_after_a_crash_unlocks_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ending, cluster = crashed_at_the_end(monkeypatch)
    later = T0 + timedelta(minutes=20)
    st, log = step(ending, Tick(), cluster, later)
    assert lock_of(cluster) is None
    assert cluster.mutations == ["Unlock:Deployment"]
    assert released(st).status.value == "True"
    assert st.status.audit == ending.status.audit, "no audit entry, no Event: nothing new happened"
    assert not [e for t in log for e in t.events]
    # Nothing more to do on later passes: no read, no write.
    again, log = step(st, Tick(), cluster, later + timedelta(seconds=10))
    assert again.status == st.status
    assert not [e for t in log for e in t.effects]
    assert cluster.mutations == ["Unlock:Deployment"]


def test_a_normal_end_confirms_its_release_in_the_same_pass() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st = bake(st, cluster, T0)
    assert st.status.phase == P.SUCCEEDED
    assert released(st).status.value == "True"
    assert cluster.mutations.count("Unlock:Deployment") == 1
    assert not reduce(st, Tick(), now=T0 + timedelta(hours=1)).effects


def test_a_lock_someone_else_holds_by_then_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    ending, cluster = crashed_at_the_end(monkeypatch)
    # Another Mitigation took the stale lock over meanwhile (conditionally on it naming us).
    cluster.objects[("Deployment", "web")]["metadata"]["annotations"][LOCK_ANNOTATION] = "m2"
    st, _ = step(ending, Tick(), cluster, T0 + timedelta(minutes=20))
    assert lock_of(cluster) == "m2"
    assert cluster.mutations == []
    assert released(st).status.value == "True"


def test_a_failing_release_is_retried_then_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ending, cluster = crashed_at_the_end(monkeypatch)
    now = T0 + timedelta(minutes=20)
    t = reduce(ending, TargetObserved(cluster.world()), now=now)
    (unlock,) = t.effects
    assert isinstance(unlock, Patch)
    assert not unlock.best_effort, "this time its answer is awaited"
    assert unlock.precondition.tests == (("/metadata/annotations/stanch.dev~1active-mitigation", "shop/m1"),)
    failing = ApplyFailed("Unlock", "503 Service Unavailable", retriable=True)
    st = reduce(t.state, failing, now=now).state
    assert (released(st).status.value, released(st).reason) == ("Unknown", "StillHeld")
    retry = reduce(t.state, failing, now=now).effects
    assert retry == (WakeAt(now + st.guard.check_period),)
    st = reduce(st, failing, now=now + timedelta(minutes=11)).state  # still failing 10 minutes on
    condition = released(st)
    assert (condition.status.value, condition.reason) == ("False", "NotReleased")
    assert st.status.audit[-1].event == "LockNotReleased"
    assert "kubectl annotate deployment web stanch.dev/active-mitigation-" in condition.message
    said = reduce(st, failing, now=now + timedelta(minutes=12))
    assert (said.audit, said.effects) == ((), ())
    # A refusal (403, an admission denial) is named at once.
    refused = reduce(t.state, ApplyFailed("Unlock", "403 Forbidden"), now=now)
    assert refused.events[0].type == "Warning"
    assert released(refused.state).reason == "NotReleased"


def test_a_finished_mitigation_being_deleted_releases_without_looping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ending, cluster = crashed_at_the_end(monkeypatch)
    deleting = replace(ending, deleting=True)
    st, log = step(deleting, DeleteRequested(), cluster, T0 + timedelta(minutes=20))
    assert lock_of(cluster) is None
    assert released(st).status.value == "True"
    assert len(log) < 10


def test_a_mitigation_finished_before_the_condition_existed_is_looked_at_once() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    st = bake(st, cluster, T0)
    legacy = replace(
        st,
        status=st.status.model_copy(
            update={"conditions": [c for c in st.status.conditions if c.type != LOCK_RELEASED]}
        ),
    )
    cluster.objects[("Deployment", "web")]["metadata"]["annotations"][LOCK_ANNOTATION] = "m1"  # leaked then
    t = reduce(legacy, Tick(), now=T0 + timedelta(hours=1))
    assert [type(e) for e in t.effects] == [ObserveTarget]
    st2, _ = step(legacy, Tick(), cluster, T0 + timedelta(hours=1))
    assert lock_of(cluster) is None
    assert released(st2).status.value == "True"
    dry, _ = step(state({"scale": {"replicas": 6}}, dryRun=True), Tick(), new_cluster(), T0)
    assert not reduce(dry, Tick(), now=T0 + timedelta(hours=1)).effects


def test_a_write_conflict_on_the_re_sent_unlock_is_retried_not_taken_for_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 409 is the API server's own write conflict: the unlock was not applied, and the annotation
    may still name us. Taken for "no longer ours" (like a failed test), it left the lock for good."""
    ending, cluster = crashed_at_the_end(monkeypatch)
    now = T0 + timedelta(minutes=20)
    t = reduce(ending, TargetObserved(cluster.world()), now=now)
    busy = ApplyFailed("Unlock", "Operation cannot be fulfilled", conflict=True, code=409)
    st = reduce(t.state, busy, now=now)
    assert (released(st.state).status.value, released(st.state).reason) == ("Unknown", "StillHeld")
    assert st.effects == (WakeAt(now + ending.guard.check_period),)
    assert not st.events
    # The next pass looks again and releases it.
    later, _ = step(st.state, Tick(), cluster, now + ending.guard.check_period)
    assert lock_of(cluster) is None
    assert released(later).status.value == "True"
    # Its failed test (a bare 422) or a gone target (404) does mean the lock no longer names us.
    for code in (422, 404):
        gone = reduce(t.state, ApplyFailed("Unlock", "test failed", conflict=True, code=code), now=now)
        assert released(gone.state).status.value == "True", code
