"""Once a mitigation acts on the diagnosis, a refresh must not re-rank: Stanch's own rollback is
then the newest change, and blaming it would suggest rolling "back" to the bad revision."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stanch.core.models import (
    ActionKind,
    Evidence,
    HypothesisCategory,
    IncidentMitigation,
    IncidentStatus,
    MitigationPhase,
    OnsetSource,
    PodHealth,
)

from .scenario_builders import NOW, at, group, metric, revision, run, scoped, step, two_revisions


def _before() -> Evidence:
    return Evidence(
        rollouts=two_revisions(new_at_minutes=11.0),
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        metrics=[
            metric("error_ratio", step(0.002, 0.15, sigma=0.002)),
            scoped("error_ratio", "revision:7", 0.3),
            scoped("error_ratio", "revision:6", 0.002),
        ],
    )


def _after_rollback() -> Evidence:
    """Revision 8 is the rollback (revision 6's template, renumbered, as kubectl undo does); errors are
    gone again, and only the new pods exist."""
    errors = step(0.002, 0.15, sigma=0.002)
    errors = errors[: len(errors) - 10] + [0.002] * 10
    return Evidence(
        rollouts=[
            revision(8, 19.0, "api:1.4.2", changes=["image api:1.5.0 → api:1.4.2"], current=True),
            revision(7, 11.0, "api:1.5.0", changes=["image api:1.4.2 → api:1.5.0"], replicas=0),
        ],
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("8", 3, 3)]),
        metrics=[
            metric("error_ratio", errors),
            scoped("error_ratio", "revision:8", 0.002),
        ],
    )


def _rollback(phase: MitigationPhase, *, dry_run: bool = False) -> IncidentMitigation:
    return IncidentMitigation(
        name="checkout-fix", action=ActionKind.ROLLBACK, phase=phase, created_at=at(18.0), dry_run=dry_run
    )


def _diagnosed() -> IncidentStatus:
    first = run(_before())
    assert first.hypotheses[0].category is HypothesisCategory.RECENT_DEPLOY
    return IncidentStatus(
        scope=first.scope,
        hypotheses=first.hypotheses,
        top_hypothesis=first.top_hypothesis,
        conditions=first.conditions,
    )


@pytest.mark.parametrize(
    "phase",
    [
        MitigationPhase.BASELINE,
        MitigationPhase.BAKING,
        MitigationPhase.SUCCEEDED,
        MitigationPhase.NEEDS_ATTENTION,
    ],
)
def test_a_standing_mitigation_keeps_the_diagnosis_it_acted_on(phase: MitigationPhase) -> None:
    previous = _diagnosed()
    later = run(
        _after_rollback(),
        now=NOW + timedelta(minutes=5),
        previous=previous,
        mitigations=[_rollback(phase)],
    )
    assert later.hypotheses == previous.hypotheses
    assert later.top_hypothesis == previous.top_hypothesis
    top = later.hypotheses[0]
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert top.suggested_mitigation.rollback.to_revision == 6  # never "back" to the bad revision 7
    assert previous.scope is not None
    assert later.scope.onset == previous.scope.onset
    assert later.scope.onset_source is OnsetSource.CHANGE_POINT
    investigated = next(c for c in later.conditions if c.type == "Investigated")
    assert investigated.reason == "DiagnosisKept"
    assert "checkout-fix" in investigated.message
    assert later.events == []


@pytest.mark.parametrize(
    ("phase", "dry_run"),
    [
        (MitigationPhase.REVERTED, False),
        (MitigationPhase.FAILED, False),
        (MitigationPhase.REJECTED, False),
        (MitigationPhase.PENDING, False),
        (MitigationPhase.SUCCEEDED, True),
    ],
)
def test_a_mitigation_that_changed_nothing_or_was_undone_releases_the_diagnosis(
    phase: MitigationPhase, dry_run: bool
) -> None:
    previous = _diagnosed()
    later = run(
        _after_rollback(),
        now=NOW + timedelta(minutes=5),
        previous=previous,
        mitigations=[_rollback(phase, dry_run=dry_run)],
    )
    assert later.hypotheses != previous.hypotheses
    investigated = next(c for c in later.conditions if c.type == "Investigated")
    assert investigated.reason != "DiagnosisKept"


def test_without_a_previous_diagnosis_there_is_nothing_to_keep() -> None:
    findings = run(_after_rollback(), mitigations=[_rollback(MitigationPhase.BAKING)])
    assert findings.hypotheses
    investigated = next(c for c in findings.conditions if c.type == "Investigated")
    assert investigated.reason != "DiagnosisKept"


def _guessed_onset() -> IncidentStatus:
    """Diagnosed while the errors were too fresh for a change point: onset = creation time."""
    previous = _diagnosed()
    assert previous.scope is not None
    scope = previous.scope.model_copy(update={"onset": at(18.5), "onset_source": OnsetSource.CREATION_TIME})
    return previous.model_copy(update={"scope": scope})


def test_a_guessed_onset_is_refined_by_a_change_point_before_the_mitigation() -> None:
    previous = _guessed_onset()
    later = run(
        _after_rollback(),
        now=NOW + timedelta(minutes=5),
        previous=previous,
        mitigations=[_rollback(MitigationPhase.BAKING)],
    )
    assert later.scope.onset_source is OnsetSource.CHANGE_POINT
    assert later.scope.onset is not None
    assert later.scope.onset < at(18.0)
    assert later.hypotheses == previous.hypotheses  # the diagnosis itself stays as acted on


def test_a_change_point_after_the_mitigation_does_not_move_a_guessed_onset() -> None:
    previous = _guessed_onset()
    early = IncidentMitigation(
        name="checkout-fix", action=ActionKind.ROLLBACK, phase=MitigationPhase.BAKING, created_at=at(1.0)
    )
    later = run(_after_rollback(), now=NOW + timedelta(minutes=5), previous=previous, mitigations=[early])
    assert later.scope.onset == at(18.5)
    assert later.scope.onset_source is OnsetSource.CREATION_TIME
