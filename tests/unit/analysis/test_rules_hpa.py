"""An HPA change under load: the ConfigChange hypothesis names the writer of the spec and suggests
the way back — the remembered values (``autoscaler``), else raising the bounds of an HPA held at its
ceiling (an HPA-aware ``scale``), else it says why there is none."""

from __future__ import annotations

from stanch.core.investigation.analysis import build_context
from stanch.core.investigation.analysis.rules import config_change
from stanch.core.models import ConfigChange, Evidence, Hypothesis, HypothesisCategory, ObjectRef

from .scenario_builders import NOW, at, metric, spec, step

ERRORS = metric("error_ratio", step(0.002, 0.15, sigma=0.002))


def hpa_change(summary: str) -> ConfigChange:
    return ConfigChange(
        object=ObjectRef(kind="HorizontalPodAutoscaler", name="checkout", namespace="shop"),
        changed_at=at(13.0),
        summary=summary,
        referenced=True,
    )


def run(summary: str) -> Hypothesis:
    ctx = build_context(
        spec(), Evidence(metrics=[ERRORS], config_changes=[hpa_change(summary)]), now=NOW, created_at=NOW
    )
    h = config_change(ctx)
    assert h is not None
    assert h.category is HypothesisCategory.CONFIG_CHANGE
    return h


def test_a_remembered_change_is_set_back_to_the_old_values() -> None:
    h = run(
        "HPA checkout spec changed: maxReplicas 10 → 3, cpu utilization 50% → 90%;"
        " now 2..3 replicas, current 3, desired 3; spec updated by kubectl-patch (Update)"
    )
    s = h.suggested_mitigation
    assert s is not None
    assert s.autoscaler is not None
    assert (s.autoscaler.min_replicas, s.autoscaler.max_replicas) == (None, 10)
    assert [(t.resource, t.average_utilization) for t in s.autoscaler.target_utilization] == [("cpu", 50)]
    assert "maxReplicas back to 10" in s.summary
    assert "kubectl-patch" in h.statement
    assert not any("no safe automatic undo" in c for c in h.contradicting)


def test_a_lowered_floor_is_raised_back() -> None:
    h = run("HPA checkout spec changed: minReplicas 4 → 1; now 1..10 replicas, current 1, desired 1")
    s = h.suggested_mitigation
    assert s is not None
    assert s.autoscaler is not None
    assert (s.autoscaler.min_replicas, s.autoscaler.max_replicas) == (4, None)


def test_a_change_the_action_cannot_restore_is_said_beside_the_suggestion() -> None:
    h = run(
        "HPA checkout spec changed: maxReplicas 10 → 3, other spec fields (metrics, behavior or scale"
        " target) changed; now 2..3 replicas, current 3, desired 3"
    )
    assert h.suggested_mitigation is not None
    assert any("which the autoscaler action does not restore" in c for c in h.contradicting)


def test_only_other_fields_changed_means_no_suggestion_and_the_reason() -> None:
    h = run(
        "HPA checkout spec changed: other spec fields (metrics, behavior or scale target) changed;"
        " now 2..10 replicas, current 4, desired 4"
    )
    assert h.suggested_mitigation is None
    assert any("no safe automatic undo for HPA checkout" in c for c in h.contradicting)


def test_unknown_old_values_at_the_ceiling_raise_the_bounds_through_the_hpa() -> None:
    h = run("HPA checkout: 2..3 replicas, current 3, desired 3; spec updated by kubectl-patch (Update)")
    s = h.suggested_mitigation
    assert s is not None
    assert s.scale is not None
    assert s.scale.factor == 2.0
    assert "raise the bounds of HPA checkout" in s.summary
    assert "to 6 replicas" in s.summary
    assert any("before the change are unknown" in c for c in h.contradicting)


def test_unknown_old_values_below_the_ceiling_give_the_reason_there_is_no_undo() -> None:
    h = run("HPA checkout: 2..10 replicas, current 4, desired 4; spec updated by kubectl-patch (Update)")
    assert h.suggested_mitigation is None
    assert any("did not see its spec before the change" in c for c in h.contradicting)
    assert not any("status updated" in c for c in [h.statement, *h.supporting])
