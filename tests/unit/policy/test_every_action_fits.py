"""A policy may list every action kind once: the CRD's caps grow with the actions."""

from __future__ import annotations

from pathlib import Path

import yaml

from stanch.core.models import ActionKind
from stanch.core.models.policy import FreezeWindow, MitigationPolicySpec

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_a_policy_allowing_every_action_is_valid() -> None:
    spec = MitigationPolicySpec.model_validate(
        {"actions": [{"action": a.value, "tier": "Auto"} for a in ActionKind]}
    )
    assert [r.action for r in spec.actions] == list(ActionKind)
    window = FreezeWindow.model_validate(
        {
            "name": "release-freeze",
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-02T00:00:00Z",
            "allowActions": list(ActionKind),
        }
    )
    assert window.allow_actions == list(ActionKind)


def test_the_crd_lets_the_api_server_accept_it_too() -> None:
    crd = yaml.safe_load((CRDS / "mitigationpolicies.stanch.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["actions"]["maxItems"] == len(ActionKind)
