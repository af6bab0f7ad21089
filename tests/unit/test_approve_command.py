"""``stanch approve``: who the approval names (the caller, from a SelfSubjectReview), which groups it
may list, the uid it pins, and that a retry does not create a second approval."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from stanch.adapters.kube import KubeClient, KubeError
from stanch.core.identity import approval_manifest
from stanch.core.models import UserIdentity
from stanch.wiring.approve_command import ApproveError, approve
from stanch.wiring.cli import main


class FakeKube:
    def __init__(self, *, exists: bool = False) -> None:
        self.created: list[dict[str, Any]] = []
        self.exists = exists

    async def create(self, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        if obj["kind"] == "SelfSubjectReview":
            return {
                "status": {"userInfo": {"username": "bob", "groups": ["sre-oncall", "system:authenticated"]}}
            }
        if self.exists:
            raise KubeError(409, "AlreadyExists", "exists")
        self.created.append(obj)
        return obj

    async def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        assert kind == "Mitigation"
        return {"metadata": {"name": name, "namespace": namespace, "uid": "u-1"}} if name == "grow" else None


def run(kube: FakeKube, name: str = "grow", groups: tuple[str, ...] = ()) -> tuple[dict[str, Any], bool]:
    return asyncio.run(approve(cast(KubeClient, kube), "shop", name, groups, "checked"))


def test_the_approval_names_the_caller_and_pins_the_uid() -> None:
    kube = FakeKube()
    approval, created = run(kube, groups=("sre-oncall",))
    assert created
    assert kube.created == [approval]
    assert approval["spec"] == {
        "mitigationRef": {"name": "grow", "uid": "u-1"},
        "approver": {"username": "bob", "groups": ["sre-oncall"]},
        "reason": "checked",
    }


def test_only_the_callers_own_groups_and_existing_mitigations() -> None:
    with pytest.raises(ApproveError, match="--group platform-admins: you \\(bob\\) are not in it"):
        run(FakeKube(), groups=("platform-admins",))
    with pytest.raises(ApproveError, match="Mitigation shop/gone not found"):
        run(FakeKube(), name="gone")


def test_a_retry_finds_its_own_approval() -> None:
    approval, created = run(FakeKube(exists=True))
    assert not created
    again = approval_manifest("shop", "grow", "u-1", UserIdentity(username="bob"), "checked")
    assert approval["metadata"]["name"] == again["metadata"]["name"]
    other = approval_manifest("shop", "grow", "u-2", UserIdentity(username="bob"), "checked")
    assert other["metadata"]["name"] != again["metadata"]["name"], (
        "a new Mitigation of that name: a new approval"
    )


def test_the_command_wants_name_or_namespace_and_name(capsys: pytest.CaptureFixture[str]) -> None:
    # `approve NAME -n NS` (kubectl's way) and `approve NS/NAME` both name one Mitigation.
    assert main(["approve", "shop/grow/x"]) == 2
    assert "neither NAME nor NAMESPACE/NAME" in capsys.readouterr().err
