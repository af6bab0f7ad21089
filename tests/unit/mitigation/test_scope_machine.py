"""The machine never reads or writes outside the Mitigation's namespace (design invariant 11), and
its lock names it as ``<namespace>/<name>``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stanch.core.effects import MUTATING, Finish
from stanch.core.machine.observations import DeleteRequested, PolicyDecided, TargetObserved, Tick
from stanch.core.machine.reading import target_key
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MitigationIdentity
from stanch.core.models import LOCK_ANNOTATION, MitigationPhase
from stanch.core.scope import CROSS_NAMESPACE_TARGET

from .test_machine import ALLOW, T0, new_cluster, state, step

P = MitigationPhase


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_mitigation_naming_another_namespace_is_rejected_before_anything_is_read(dry_run: bool) -> None:
    st = state({"scale": {"replicas": 0}}, dryRun=dry_run)
    st = replace(
        st,
        spec=st.spec.model_copy(
            update={"target": st.spec.target.model_copy(update={"namespace": "kube-system"})}
        ),
    )
    t = reduce(st, Tick(), now=T0)
    assert t.state.status.phase is P.REJECTED
    assert t.effects == (Finish(P.REJECTED.value),), "no read, no policy, no write"
    (event,) = t.events
    assert (event.type, event.reason) == ("Warning", CROSS_NAMESPACE_TARGET)
    assert "spec.target.namespace 'kube-system' is not this Mitigation's namespace 'shop'" in event.message
    (valid,) = [c for c in t.state.status.conditions if c.type == "Valid"]
    assert (valid.status.value, valid.reason) == ("False", CROSS_NAMESPACE_TARGET)
    assert t.state.status.audit[-1].event == CROSS_NAMESPACE_TARGET
    # Said once: a finished Mitigation is not rejected again.
    assert reduce(t.state, Tick(), now=T0).events == ()


def test_one_taken_up_before_the_rule_stops_for_a_human_without_writing_there() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    assert st.status.phase is P.BAKING
    legacy = replace(
        st,
        spec=st.spec.model_copy(update={"target": st.spec.target.model_copy(update={"namespace": "prod"})}),
    )
    t = reduce(legacy, Tick(), now=T0)
    assert t.state.status.phase is P.NEEDS_ATTENTION
    assert not any(isinstance(e, MUTATING) for e in t.effects), "Stanch no longer writes in prod for it"
    assert "kubectl -n prod annotate deployment web stanch.dev/active-mitigation-" in t.events[0].message


def test_a_deletion_of_one_naming_another_namespace_still_completes() -> None:
    st = state({"scale": {"replicas": 0}})
    st = replace(
        st,
        spec=st.spec.model_copy(
            update={"target": st.spec.target.model_copy(update={"namespace": "kube-system"})}
        ),
    )
    t = reduce(replace(st, deleting=True), DeleteRequested(), now=T0)
    assert any(isinstance(e, Finish) for e in t.effects)
    assert not any(isinstance(e, MUTATING) for e in t.effects)


def test_the_target_is_read_in_the_own_namespace_whatever_the_spec_says() -> None:
    st = state({"scale": {"replicas": 0}})
    st = replace(
        st,
        spec=st.spec.model_copy(update={"target": st.spec.target.model_copy(update={"namespace": "prod"})}),
    )
    assert target_key(st).namespace == "shop"


def test_the_lock_names_namespace_and_name() -> None:
    me = MitigationIdentity("m1", "shop", "uid")
    assert me.lock == "shop/m1"
    assert me.holds("shop/m1")
    assert me.holds("m1"), "a bare name from before: a Mitigation in the target's (our) namespace"
    assert not me.holds("dev/m1"), "the same name in another namespace is someone else"
    assert not me.holds(None)


def test_a_same_named_mitigation_from_another_namespace_does_not_take_over_the_lock() -> None:
    """Before, the lock held only ``m1``: a live ``dev/m1`` holding it looked like us (or, looked up
    in the target's namespace, like a finished holder) and the lock was taken over."""
    cluster = new_cluster()
    cluster.objects[("Deployment", "web")]["metadata"]["annotations"][LOCK_ANNOTATION] = "dev/m1"
    st = reduce(state({"scale": {"replicas": 6}}), PolicyDecided(ALLOW), now=T0).state
    t = reduce(st, TargetObserved(cluster.world(lock_holder_active=True)), now=T0)
    assert t.state.status.phase is P.REJECTED
    assert "locked by active Mitigation 'dev/m1'" in t.state.status.message
    assert not any(isinstance(e, MUTATING) for e in t.effects)
