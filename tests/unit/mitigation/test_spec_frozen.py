"""What runs is exactly what the policy allowed (design invariant 12): the decision records the digest
of the spec it decided on, and a spec that no longer matches ends the Mitigation visibly.

The CRD refuses such an edit (tests/unit/test_crd_cel.py, e2e test_spec_frozen); this is the
operator's own check, for a CRD older than the rule or an edit that landed while the decision was
being written."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stanch.core.effects import MUTATING, EvaluatePolicy
from stanch.core.machine.observations import PolicyDecided, Tick
from stanch.core.machine.phases.stopped import SPEC_CHANGED
from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState
from stanch.core.models import (
    MitigationPhase,
    MitigationSpec,
    PolicyDecision,
    PolicyDecisionKind,
    spec_digest,
)

from .test_machine import ALLOW, T0, new_cluster, state, step

P = MitigationPhase
NEEDS_APPROVAL = PolicyDecision(decision=PolicyDecisionKind.REQUIRE_APPROVAL, rule="actions[Scale]")


def edited(st: MachineState, **spec: Any) -> MachineState:
    body = {"target": {"name": "web"}, **spec}
    return replace(st, spec=MitigationSpec.model_validate(body))


def awaiting() -> MachineState:
    t = reduce(state({"scale": {"replicas": 4}}), PolicyDecided(NEEDS_APPROVAL), now=T0)
    assert t.state.status.phase is P.AWAITING_APPROVAL
    return t.state


def test_the_decision_records_the_digest_of_the_spec_it_decided_on() -> None:
    st = awaiting()
    assert st.status.policy is not None
    assert st.status.policy.spec_digest == spec_digest(state({"scale": {"replicas": 4}}).spec)
    assert st.status.policy.spec_digest.startswith("sha256:")


def test_the_issues_swap_while_awaiting_approval_is_rejected_and_never_runs() -> None:
    """A permitted Scale swapped for a forbidden ConfigToggle: nothing runs, and no approval given
    later for the Scale can carry over to it."""
    swapped = edited(awaiting(), configToggle={"configMap": "flags", "key": "k", "value": "v"})
    t = reduce(swapped, Tick(), now=T0)
    assert t.state.status.phase is P.REJECTED
    assert not any(isinstance(e, (*MUTATING, EvaluatePolicy)) for e in t.effects)
    (event,) = t.events
    assert (event.type, event.reason) == ("Warning", SPEC_CHANGED)
    assert "delete this Mitigation and create a new one" in event.message
    (valid,) = [c for c in t.state.status.conditions if c.type == "Valid"]
    assert (valid.status.value, valid.reason) == ("False", SPEC_CHANGED)


def test_what_does_not_change_what_runs_is_not_a_change() -> None:
    relaxed = edited(awaiting(), scale={"replicas": 4}, revertOnDelete=False, approval={"reason": "looked"})
    t = reduce(relaxed, Tick(), now=T0)
    assert t.state.status.phase is P.AWAITING_APPROVAL
    assert t.events == ()


def test_a_change_after_the_change_was_applied_reverts_it() -> None:
    cluster = new_cluster()
    st, _ = step(state({"scale": {"replicas": 6}}), Tick(), cluster, T0)
    assert st.status.phase is P.BAKING
    t = reduce(edited(st, scale={"replicas": 60}), Tick(), now=T0)
    assert t.state.status.phase is P.REVERTING, "the live change has no allowed spec behind it any more"
    assert t.events[0].reason == SPEC_CHANGED


def test_a_decision_recorded_before_digests_is_left_alone() -> None:
    st = awaiting()
    assert st.status.policy is not None
    old = replace(
        st,
        status=st.status.model_copy(
            update={"policy": st.status.policy.model_copy(update={"spec_digest": None})}
        ),
    )
    assert (
        reduce(edited(old, scale={"replicas": 5}), Tick(), now=T0).state.status.phase is P.AWAITING_APPROVAL
    )


def test_a_dry_run_decision_is_frozen_too() -> None:
    t = reduce(state({"scale": {"replicas": 4}}, dryRun=True), PolicyDecided(ALLOW), now=T0)
    changed = edited(t.state, scale={"replicas": 5}, dryRun=True)
    assert reduce(changed, Tick(), now=T0).state.status.phase is P.FAILED


@given(
    replicas=st.integers(min_value=0, max_value=50),
    keep=st.booleans(),
    revert=st.booleans(),
    approved=st.booleans(),
)
def test_the_digest_ignores_exactly_the_editable_fields(
    replicas: int, keep: bool, revert: bool, approved: bool
) -> None:
    base = MitigationSpec.model_validate(
        {"target": {"name": "web"}, "scale": {"replicas": replicas}, "temporary": True}
    )
    other = base.model_copy(
        update={
            "keep_on_resolve": keep,
            "revert_on_delete": revert,
            "approval": {"approved": approved} if approved else None,
        }
    )
    assert spec_digest(other) == spec_digest(base)
    more = base.model_copy(update={"scale": base.scale.model_copy(update={"replicas": replicas + 1})})  # type: ignore[union-attr]
    assert spec_digest(more) != spec_digest(base)


def test_a_field_written_out_at_its_default_is_no_change() -> None:
    """The API server defaults fields, and a newer Stanch may add one: neither is an edit."""
    bare = MitigationSpec.model_validate({"target": {"name": "web"}, "rollback": {}})
    spelled = MitigationSpec.model_validate(
        {"target": {"name": "web"}, "rollback": {}, "dryRun": False, "temporary": False}
    )
    assert spec_digest(bare) == spec_digest(spelled)
