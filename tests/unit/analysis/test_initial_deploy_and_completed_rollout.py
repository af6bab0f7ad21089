"""Evidence shaped like the local world's bad-image and feature-flag incidents: a Service created with
the workload, a completed rollout that leaves no old pod to compare with, a flag flipped in a
ConfigMap whose previous value may be unknown."""

from __future__ import annotations

from stanch.core.investigation.analysis import build_context
from stanch.core.investigation.analysis.onset import Shift, find_shift, floor_for
from stanch.core.investigation.analysis.rules import (
    config_change,
    dependency_failure,
    key_change,
    key_flip,
    new_revision_failing,
    new_revision_worse,
    recent_deploy,
    scaled_down,
    switched_off,
)
from stanch.core.investigation.analysis.scope import trend
from stanch.core.models import (
    ConfigChange,
    EventGroup,
    Evidence,
    HypothesisCategory,
    LogSignature,
    MetricSummary,
    NodeEvidence,
    ObjectRef,
    PodHealth,
    ReasonCount,
    RolloutRevision,
    Trend,
)

from .scenario_builders import NOW, at, flat, group, metric, points, revision, run, spec, step

ONSET_MINUTES = 15.0


def _service(
    summary: str, *, created: float = ONSET_MINUTES - 0.8, changed: float | None = None
) -> ConfigChange:
    return ConfigChange(
        object=ObjectRef(kind="Service", name="checkout", namespace="shop"),
        changed_at=at(changed if changed is not None else created),
        created_at=at(created),
        summary=summary,
        referenced=True,
    )


def _by_revision(key: str, *, before: float | None, now: float | None) -> MetricSummary:
    return MetricSummary(signal="error_ratio", scope=f"revision:{key}", before=before, now=now, peak=now)


def _bad_image_evidence(**overrides: object) -> Evidence:
    """Revision 1 and the Service created 45 s before revision 2 (image 1.4.2 → 1.5.0); revision 2's
    pods error at 38 % from the rollout on; revision 1's series stopped when the rollout completed."""
    fields: dict[str, object] = {
        "rollouts": [
            revision(
                2,
                ONSET_MINUTES - 0.05,
                "shop/checkout:1.5.0",
                changes=["image shop/checkout:1.4.2 → shop/checkout:1.5.0"],
                current=True,
            ),
            revision(1, ONSET_MINUTES - 0.8, "shop/checkout:1.4.2", replicas=0),
        ],
        "pod_health": PodHealth(
            total=3, ready=3, by_revision=[group("2", 3, 3)], by_node=[group("n1", 3, 3)]
        ),
        "metrics": [
            metric("error_ratio", step(0.0, 0.38, sigma=0.004)),
            _by_revision("2", before=0.366, now=0.381),
            _by_revision("1", before=0.0, now=None),
        ],
        "config_changes": [_service("Service checkout selects the pods; 3/3 endpoints ready; created")],
    }
    fields.update(overrides)
    return Evidence.model_validate(fields)


# --- objects created with the workload ------------------------------------------------------------


def test_a_service_created_with_the_workload_is_not_a_cause() -> None:
    findings = run(_bad_image_evidence())
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert HypothesisCategory.CONFIG_CHANGE not in {h.category for h in findings.hypotheses}
    ctx = build_context(spec(), _bad_image_evidence(), now=NOW, created_at=NOW)
    service = next(c for c in ctx.correlated if c.change.label == "Service/checkout")
    assert not service.possible_cause
    assert "created together with the workload" in service.sentence()


def test_a_configmap_created_with_the_workload_but_edited_later_is_a_change() -> None:
    edited = ConfigChange(
        object=ObjectRef(kind="ConfigMap", name="flags", namespace="shop"),
        created_at=at(ONSET_MINUTES - 0.8),
        changed_at=at(ONSET_MINUTES - 0.3),
        summary="key new-pricing: false → true",
        referenced=True,
    )
    evidence = _bad_image_evidence(config_changes=[edited])
    h = config_change(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert h.category is HypothesisCategory.CONFIG_CHANGE


def test_a_service_created_long_after_the_workload_is_still_a_change() -> None:
    late = _service(
        "Service checkout selects the pods; 0/3 endpoints ready; created", created=ONSET_MINUTES - 1
    )
    rollouts = [revision(1, ONSET_MINUTES - 120, "shop/checkout:1.4.2", current=True)]
    evidence = Evidence(
        rollouts=rollouts, metrics=[metric("error_ratio", step(0.0, 0.38))], config_changes=[late]
    )
    h = config_change(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert any("no ready endpoint" in s for s in h.supporting)


def test_a_service_with_all_endpoints_ready_is_weak_evidence() -> None:
    rollouts = [revision(1, ONSET_MINUTES - 120, "shop/checkout:1.4.2", current=True)]

    def confidence(ready: str) -> int:
        svc = _service(
            f"Service checkout selects the pods; {ready} endpoints ready; spec updated by kubectl",
            created=ONSET_MINUTES - 100,
            changed=ONSET_MINUTES - 1,
        )
        evidence = Evidence(
            rollouts=rollouts, metrics=[metric("error_ratio", step(0.0, 0.38))], config_changes=[svc]
        )
        h = config_change(build_context(spec(), evidence, now=NOW, created_at=NOW))
        assert h is not None
        return h.confidence

    healthy, broken = confidence("3/3"), confidence("0/3")
    assert healthy < 40 <= broken
    assert healthy < broken


# --- a completed rollout: the old revision's pods are gone ----------------------------------------


def test_completed_bad_rollout_is_recognised_from_the_old_revisions_serving_ratio() -> None:
    findings = run(_bad_image_evidence())
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert top.confidence >= 80
    assert "revision 2" in top.statement
    assert "1.4.2 → shop/checkout:1.5.0" in top.statement
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert top.suggested_mitigation.rollback.to_revision == 1
    assert any("while they served" in s for s in top.supporting)


def test_completed_rollout_without_the_old_revisions_series_uses_the_baseline() -> None:
    evidence = _bad_image_evidence(
        metrics=[metric("error_ratio", step(0.0, 0.38, sigma=0.004)), _by_revision("2", before=0.3, now=0.38)]
    )
    h = new_revision_worse(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert h.confidence == 70
    assert any("before the onset" in s for s in h.supporting)


def test_an_old_revision_erring_now_is_not_blamed_on_its_deploy() -> None:
    """Revision 2 rolled out hours ago and served fine; errors rise now: not its code."""
    old_deploy = _bad_image_evidence(
        rollouts=[
            revision(2, ONSET_MINUTES - 200, "shop/checkout:1.5.0", changes=["image a → b"], current=True),
            revision(1, ONSET_MINUTES - 300, "shop/checkout:1.4.2", replicas=0),
        ],
        config_changes=[],
    )
    ctx = build_context(spec(), old_deploy, now=NOW, created_at=NOW)
    assert new_revision_worse(ctx) is None
    deploy = recent_deploy(ctx)
    assert deploy is None or deploy.confidence < 50


def test_a_new_revision_no_worse_than_before_is_not_blamed() -> None:
    evidence = _bad_image_evidence(
        metrics=[
            metric("error_ratio", step(0.0, 0.38, sigma=0.004)),
            _by_revision("2", before=0.36, now=0.38),
            _by_revision("1", before=0.37, now=None),
        ]
    )
    ctx = build_context(spec(), evidence, now=NOW, created_at=NOW)
    assert new_revision_worse(ctx) is None


# --- impact and trend -------------------------------------------------------------------------------


def test_ready_pods_of_an_elevated_revision_are_affected() -> None:
    assert run(_bad_image_evidence()).scope.impact.affected_pods == 3


def test_ready_pods_on_an_elevated_node_are_affected() -> None:
    evidence = Evidence(
        metrics=[
            metric("error_ratio", step(0.0, 0.12)),
            MetricSummary(signal="error_ratio", scope="node:n1", before=0.0, now=0.35),
            MetricSummary(signal="error_ratio", scope="node:n2", before=0.0, now=0.0),
        ],
        pod_health=PodHealth(total=6, ready=6, by_node=[group("n1", 2, 2), group("n2", 4, 4)]),
    )
    assert run(evidence).scope.impact.affected_pods == 2


def test_flat_after_the_step_is_stable_not_improving() -> None:
    # A 15 s rate window fills over the first samples after the step: a ramp, then flat.
    values = [0.0] * 30 + [0.1, 0.25, 0.36] + [0.38] * 27
    pts = points(values)
    shift = find_shift(pts, floor_for("error_ratio"))
    assert trend(pts, shift, floor_for("error_ratio")) is Trend.STABLE
    assert (
        run(_bad_image_evidence(metrics=[metric("error_ratio", values)])).scope.trend is not Trend.IMPROVING
    )


def test_too_few_samples_since_the_onset_give_no_trend() -> None:
    values = [*flat(0.0)[:57], 0.2, 0.3, 0.38]
    pts = points(values)
    rise = Shift(start=57, end=59, start_time=pts[57].time, baseline=0.0, level=0.38, sigma=0.001)
    assert trend(pts, rise, floor_for("error_ratio")) is Trend.UNKNOWN


# --- a flag flipped in a ConfigMap ------------------------------------------------------------------


def _flag(summary: str, minutes: float = ONSET_MINUTES - 0.5) -> ConfigChange:
    return ConfigChange(
        object=ObjectRef(kind="ConfigMap", name="checkout-flags", namespace="shop"),
        changed_at=at(minutes),
        created_at=at(ONSET_MINUTES - 100),
        summary=summary,
        referenced=True,
    )


def _flag_context(summary: str) -> Evidence:
    return Evidence(
        rollouts=[revision(1, ONSET_MINUTES - 100, "shop/checkout:1.4.2", current=True)],
        pod_health=PodHealth(total=3, ready=3, by_revision=[group("1", 3, 3)]),
        metrics=[metric("error_ratio", step(0.0, 0.3)), _by_revision("1", before=0.0, now=0.3)],
        config_changes=[_flag(summary)],
    )


def test_key_change_forms() -> None:
    known = key_change(_flag("key new-pricing: false → true (updated by kubectl-patch)"))
    assert known is not None
    assert (known.key, known.old, known.new) == ("new-pricing", "false", "true")
    assert key_flip(_flag('key new-pricing: "false" → "true"')) == ("new-pricing", "false", "true")
    unknown = key_change(_flag("key new-pricing changed to true (updated by kubectl-patch)"))
    assert unknown is not None
    assert unknown.old is None
    assert unknown.undo_value == "false"
    assert key_flip(_flag("key new-pricing changed to true")) is None
    assert key_change(_flag("ConfigMap checkout-flags (2 keys): data updated by kubectl-patch")) is None


def test_switched_off_is_the_opposite_of_a_switch_on() -> None:
    assert [switched_off(v) for v in ("true", "On", "ENABLED", "1", "yes")] == [
        "false",
        "Off",
        "DISABLED",
        "0",
        "no",
    ]
    assert switched_off("false") is None
    assert switched_off("v2") is None


def test_flag_flip_with_a_known_old_value_suggests_setting_it_back() -> None:
    findings = run(_flag_context("key new-pricing: false → true (updated by kubectl-patch)"))
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.CONFIG_CHANGE
    assert top.confidence >= 50
    assert "inferred" not in top.statement
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.config_toggle is not None
    toggle = top.suggested_mitigation.config_toggle
    assert (toggle.config_map, toggle.key, toggle.value) == ("checkout-flags", "new-pricing", "false")
    assert findings.scope.impact.affected_pods == 3


def test_flag_set_on_with_an_unknown_old_value_infers_off_and_says_so() -> None:
    findings = run(_flag_context("key new-pricing changed to true (updated by kubectl-patch)"))
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.CONFIG_CHANGE
    assert "inferred" in top.statement
    assert "unknown" in top.statement
    assert any("check it before applying" in c for c in top.contradicting)
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.config_toggle is not None
    assert top.suggested_mitigation.config_toggle.value == "false"


def test_a_non_boolean_value_with_an_unknown_old_value_has_no_automatic_undo() -> None:
    ctx = build_context(spec(), _flag_context("key pricing-model changed to v2"), now=NOW, created_at=NOW)
    h = config_change(ctx)
    assert h is not None
    assert h.suggested_mitigation is None


# --- a failing rollout is not a node problem ----------------------------------------------------------


def test_crashlooping_new_pods_on_one_ready_node_do_not_blame_the_node() -> None:
    evidence = Evidence(
        rollouts=[
            revision(2, ONSET_MINUTES - 0.5, "shop/orders:2.1.0", changes=["image a → b"], current=True),
            revision(1, ONSET_MINUTES - 1.2, "shop/orders:2.0.0"),
        ],
        metrics=[
            metric("error_ratio", flat(0.0)),
            *(
                MetricSummary(signal="error_ratio", scope=f"node:{n}", before=0.0, now=0.0)
                for n in ("n0", "n1")
            ),
        ],
        pod_health=PodHealth(
            total=4,
            ready=3,
            by_revision=[group("2", 1, 0, 4, CrashLoopBackOff=1), group("1", 3, 3)],
            by_node=[group("n0", 2, 1, 4, CrashLoopBackOff=1), group("n1", 1, 1), group("n2", 1, 1)],
        ),
        nodes=[NodeEvidence(name=n, ready=True, pods=p) for n, p in (("n0", 2), ("n1", 1), ("n2", 1))],
    )
    findings = run(evidence)
    assert findings.hypotheses[0].category is HypothesisCategory.RECENT_DEPLOY
    node = next(h for h in findings.hypotheses if h.category is HypothesisCategory.NODE_INFRASTRUCTURE)
    assert node.confidence < 50
    assert any("whatever node they run on" in c for c in node.contradicting)


# --- scaled to zero; revision 1 is the workload's creation; pending pods have no node --------------


def _scaled_to_zero(message: str) -> Evidence:
    return Evidence(
        rollouts=[
            RolloutRevision(
                revision=1,
                replica_set="inventory-5d8f",
                created_at=at(ONSET_MINUTES - 0.8),
                images=["shop/inventory:1.0.0"],
                current=True,
            )
        ],
        metrics=[metric("error_ratio", step(0.0, 1.0))],
        events_by_reason=[
            EventGroup(
                reason="ScalingReplicaSet",
                type="Normal",
                count=2,
                first_seen=at(14.0),
                sample_message=message,
            )
        ],
        config_changes=[_service("Service inventory selects the pods; 0/0 endpoints ready; created")],
    )


def test_a_workload_scaled_to_zero_is_scaled_back() -> None:
    findings = run(_scaled_to_zero("Scaled down replica set inventory-5d8f from 3 to 0"))
    top = findings.hypotheses[0]
    assert top.category is HypothesisCategory.CAPACITY
    assert top.confidence >= 80
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.scale is not None
    assert top.suggested_mitigation.scale.replicas == 3
    categories = {h.category for h in findings.hypotheses}
    assert HypothesisCategory.RECENT_DEPLOY not in categories  # revision 1 is not a deploy
    assert HypothesisCategory.CONFIG_CHANGE not in categories


def test_scaled_to_zero_without_the_event_scales_to_one_and_says_why() -> None:
    h = scaled_down(
        build_context(
            spec(), _scaled_to_zero("Scaled up replica set inventory-5d8f to 3"), now=NOW, created_at=NOW
        )
    )
    assert h is not None
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.scale is not None
    assert h.suggested_mitigation.scale.replicas == 1
    assert any("unknown" in c for c in h.contradicting)


def test_pods_running_are_not_scaled_to_zero() -> None:
    evidence = _scaled_to_zero("Scaled down replica set inventory-5d8f from 3 to 0").model_copy(
        update={"pod_health": PodHealth(total=2, ready=2)}
    )
    assert scaled_down(build_context(spec(), evidence, now=NOW, created_at=NOW)) is None


def test_pending_pods_are_not_a_node() -> None:
    evidence = Evidence(
        rollouts=[
            revision(
                2,
                ONSET_MINUTES - 0.3,
                "shop/pricing:4.1.0",
                changes=["nodeSelector +accelerator"],
                current=True,
            ),
            revision(1, ONSET_MINUTES - 1, "shop/pricing:4.0.0"),
        ],
        metrics=[metric("error_ratio", flat(0.0))],
        pod_health=PodHealth(
            total=4,
            ready=3,
            reasons=[ReasonCount(reason="Unschedulable", count=1)],
            by_revision=[group("2", 1, 0, Unschedulable=1), group("1", 3, 3)],
            by_node=[group("<unscheduled>", 1, 0, Unschedulable=1), group("n1", 3, 3)],
        ),
        nodes=[NodeEvidence(name="n1", ready=True, pods=3)],
    )
    findings = run(evidence)  # must not fail on a node named "<unscheduled>"
    assert all(h.category is not HypothesisCategory.NODE_INFRASTRUCTURE for h in findings.hypotheses)


def test_a_new_revision_pinned_to_a_label_nobody_has_is_the_deploy() -> None:
    evidence = Evidence(
        rollouts=[
            revision(
                2,
                ONSET_MINUTES - 0.3,
                "shop/pricing:4.1.0",
                changes=[
                    "image app: shop/pricing:4.0.0 → shop/pricing:4.1.0",
                    "nodeSelector +accelerator=tpu-v9",
                ],
                current=True,
            ),
            revision(1, ONSET_MINUTES - 1, "shop/pricing:4.0.0"),
        ],
        metrics=[metric("error_ratio", flat(0.0))],
        pod_health=PodHealth(
            total=4,
            ready=3,
            reasons=[ReasonCount(reason="Unschedulable", count=1)],
            by_revision=[group("2", 1, 0, Unschedulable=1), group("1", 3, 3)],
            by_node=[group("<unscheduled>", 1, 0, Unschedulable=1), group("n1", 3, 3)],
        ),
        events_by_reason=[
            EventGroup(
                reason="FailedScheduling",
                count=3,
                sample_message="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector",
            )
        ],
    )
    top = run(evidence).hypotheses[0]
    assert top.category is HypothesisCategory.RECENT_DEPLOY
    assert "cannot be scheduled" in top.statement
    assert top.suggested_mitigation is not None
    assert top.suggested_mitigation.rollback is not None
    assert top.suggested_mitigation.rollback.to_revision == 1


def test_pending_pods_without_a_placement_change_stay_a_capacity_question() -> None:
    evidence = Evidence(
        rollouts=[
            revision(2, ONSET_MINUTES - 0.3, "shop/pricing:4.1.0", changes=["image a → b"], current=True),
            revision(1, ONSET_MINUTES - 1, "shop/pricing:4.0.0"),
        ],
        metrics=[metric("error_ratio", flat(0.0))],
        pod_health=PodHealth(
            total=4,
            ready=3,
            reasons=[ReasonCount(reason="Unschedulable", count=1)],
            by_revision=[group("2", 1, 0, Unschedulable=1), group("1", 3, 3)],
        ),
    )
    ctx = build_context(spec(), evidence, now=NOW, created_at=NOW)
    assert new_revision_failing(ctx) is None


def test_one_bad_node_inside_an_elevated_revision_counts_that_nodes_pods() -> None:
    evidence = Evidence(
        rollouts=[revision(1, ONSET_MINUTES - 100, "shop/gateway:1.0.0", current=True)],
        metrics=[
            metric("error_ratio", step(0.0, 0.3)),
            _by_revision("1", before=0.0, now=0.3),
            MetricSummary(signal="error_ratio", scope="node:n1", before=0.0, now=0.9),
            MetricSummary(signal="error_ratio", scope="node:n0", before=0.0, now=0.0),
        ],
        pod_health=PodHealth(
            total=6, ready=6, by_revision=[group("1", 6, 6)], by_node=[group("n1", 2, 2), group("n0", 4, 4)]
        ),
    )
    assert run(evidence).scope.impact.affected_pods == 2


# --- what the logs say ---------------------------------------------------------------------------------


def _logged(signature: str, count: int) -> LogSignature:
    return LogSignature(
        signature=signature, count=count, pods=1, first_seen=at(ONSET_MINUTES), sample=signature
    )


def test_the_workloads_own_saturation_is_not_a_failing_dependency() -> None:
    evidence = Evidence(
        metrics=[metric("error_ratio", step(0.0, 0.3))],
        log_signatures=[
            _logged(
                "ERROR <n> Service Unavailable: worker pool exhausted (queue depth <n>) request_id=<hex>", 270
            )
        ],
    )
    assert dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW)) is None


def test_a_handful_of_dependency_lines_is_thin_evidence() -> None:
    def confidence(count: int) -> int:
        evidence = Evidence(
            metrics=[metric("error_ratio", step(0.0, 0.3))],
            log_signatures=[_logged("ERROR dial tcp payments:443: connection refused", count)],
        )
        h = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
        assert h is not None
        return h.confidence

    assert confidence(3) < 50 <= confidence(300)
