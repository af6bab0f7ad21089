"""The wiring behind approvals: which MitigationApprovals a pass feeds the reducer, and with what
verdict on the admission policy (read before any approval is judged; unreadable counts as not in
force)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

from stanch.adapters.kube import KubeError
from stanch.core.identity import admission_binding, admission_policy
from stanch.core.machine.observations import LegacyApprovalSeen
from stanch.core.machine.reducer import reduce
from stanch.core.models import APPROVED_BY_ANNOTATION
from stanch.wiring.handlers.mitigation import Runtime, _legacy_approval, approval_offers, initial_observations

from .test_machine import T0, P, state

MITIGATION = {"metadata": {"name": "grow", "namespace": "shop", "uid": "u1"}}


def approval(name: str, uid: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2025-03-07T12:00:00Z"},
        "spec": {"mitigationRef": {"name": "grow", "uid": uid}, "approver": {"username": name}},
    }


class FakeKube:
    def __init__(
        self, approvals: list[dict[str, Any]], objects: dict[str, Any], error: KubeError | None = None
    ):
        self.approvals = approvals
        self.objects = objects
        self.error = error
        self.gets: list[str] = []

    async def list(self, kind: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        assert (kind, namespace) == ("MitigationApproval", "shop")
        return self.approvals

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        assert name == "stanch-identity"
        self.gets.append(kind)
        if self.error is not None:
            raise self.error
        result: dict[str, Any] | None = self.objects.get(kind)
        return result


def offers(kube: FakeKube) -> list[tuple[str, str | None]]:
    runtime = cast(Runtime, SimpleNamespace(kube=kube))
    return [(o.approval.name, o.admission) for o in asyncio.run(approval_offers(runtime, MITIGATION))]


IN_FORCE = {
    "ValidatingAdmissionPolicy": admission_policy(),
    "ValidatingAdmissionPolicyBinding": admission_binding(),
}


def test_the_approvals_of_this_mitigation_with_the_policy_in_force() -> None:
    kube = FakeKube([approval("bob"), approval("old", uid="u0")], IN_FORCE)
    assert offers(kube) == [("bob", None)]


def test_without_approvals_nothing_is_read_or_fed() -> None:
    kube = FakeKube([approval("old", uid="u0")], IN_FORCE)
    assert offers(kube) == []
    assert kube.gets == []


def test_a_missing_binding_or_an_unreadable_policy_is_not_in_force() -> None:
    missing = FakeKube([approval("bob")], {"ValidatingAdmissionPolicy": admission_policy()})
    ((_, problem),) = offers(missing)
    assert problem is not None
    assert "ValidatingAdmissionPolicyBinding stanch-identity does not exist" in problem
    forbidden = FakeKube([approval("bob")], IN_FORCE, KubeError(403, "Forbidden", "no get"))
    ((_, problem),) = offers(forbidden)
    assert problem is not None
    assert "cannot read the admission policy stanch-identity" in problem
    assert "RBAC" in problem


def test_an_old_approval_on_the_mitigation_is_said_to_approve_nothing() -> None:
    obj = {
        "metadata": {
            "name": "grow",
            "namespace": "shop",
            "uid": "u1",
            "annotations": {APPROVED_BY_ANNOTATION: "eve"},
        },
        "spec": {"target": {"name": "web"}, "scale": {"replicas": 3}},
    }
    assert _legacy_approval(obj) == "the stanch.dev/approved-by annotation"
    old_spec = {"metadata": {}, "spec": {"approval": {"approved": True, "approvedBy": "eve"}}}
    assert _legacy_approval(old_spec) == "spec.approval.approved"
    assert _legacy_approval({"metadata": {}, "spec": {}}) is None

    st = state({"scale": {"replicas": 3}})
    st = replace(
        st,
        status=st.status.model_copy(update={"phase": P.AWAITING_APPROVAL}),
        legacy_approval="the stanch.dev/approved-by annotation",
    )
    observations = initial_observations(st, False)
    assert LegacyApprovalSeen() in observations
    first = reduce(st, LegacyApprovalSeen(), now=T0)
    assert first.state.status.phase == P.AWAITING_APPROVAL
    assert [a.event for a in first.audit] == ["ApprovalIgnored"]
    assert "approves nothing" in first.audit[0].reason
    assert first.events[0].type == "Warning"
    again = reduce(first.state, LegacyApprovalSeen(), now=T0)
    assert again.audit == ()  # said once
    assert again.state.status.phase == P.AWAITING_APPROVAL
