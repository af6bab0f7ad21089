"""The Incident's phase follows its mitigations: an on-call engineer reads `kubectl get incidents`
to see which incidents someone is already acting on and which only wait to be confirmed over."""

from __future__ import annotations

from typing import Any

import pytest

from stanch.core.mitigation_context import incident_phase, phase_after_link
from stanch.core.models import ActionKind, IncidentMitigation, IncidentPhase, MitigationPhase

IP = IncidentPhase
M = MitigationPhase


def mit(phase: MitigationPhase | None, **kw: Any) -> IncidentMitigation:
    return IncidentMitigation(
        name=f"m-{(phase or 'suggested').lower()}", action=ActionKind.ROLLBACK, phase=phase, **kw
    )


@pytest.mark.parametrize(
    ("mitigations", "want"),
    [
        ([], IP.INVESTIGATING),
        ([mit(M.BAKING)], IP.MITIGATING),
        ([mit(M.AWAITING_APPROVAL)], IP.MITIGATING),
        ([mit(M.NEEDS_ATTENTION)], IP.MITIGATING),
        ([mit(M.SUCCEEDED)], IP.MONITORING),
        ([mit(M.SUCCEEDED), mit(M.APPLYING)], IP.MITIGATING),
        ([mit(M.REVERTED)], IP.INVESTIGATING),
        ([mit(M.FAILED), mit(M.REJECTED)], IP.INVESTIGATING),
        ([mit(None, suggested=True)], IP.INVESTIGATING),
        ([mit(M.BAKING, dry_run=True)], IP.INVESTIGATING),
        ([mit(M.SUCCEEDED, dry_run=True)], IP.INVESTIGATING),
    ],
)
def test_phase_follows_the_mitigations(mitigations: list[IncidentMitigation], want: IncidentPhase) -> None:
    assert incident_phase(IP.INVESTIGATING, False, mitigations) == want


def test_resolved_stays_resolved_and_a_reopened_incident_is_live_again() -> None:
    assert incident_phase(IP.RESOLVED, True, [mit(M.BAKING)]) == IP.RESOLVED
    assert incident_phase(IP.RESOLVED, False, [mit(M.SUCCEEDED)]) == IP.MONITORING
    # Only the resolve handler resolves (it also stops refreshing and undoes temporary changes).
    assert incident_phase(IP.MONITORING, True, [mit(M.SUCCEEDED)]) == IP.MONITORING


def test_phase_after_link_reads_the_incident_as_the_api_returns_it() -> None:
    incident = {"spec": {"resolved": False}, "status": {"phase": "Investigating"}}
    linked = [mit(M.BAKING).to_dict()]
    assert phase_after_link(incident, linked) == IP.MITIGATING
    assert phase_after_link({"status": {"phase": "Bogus"}}, []) == IP.INVESTIGATING
    assert phase_after_link({}, [mit(M.SUCCEEDED).to_dict()]) == IP.MONITORING
