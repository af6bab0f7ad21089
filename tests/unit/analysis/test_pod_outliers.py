"""Per-pod outliers: one pod compared with its siblings at the same moment, and the workload-wide
ResourceExhaustion claim only when most pods are at their limit."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.investigation.analysis import RuleContext, build_context
from stanch.core.investigation.analysis.ranking import rank
from stanch.core.investigation.analysis.rules.capacity import most_pods_at_limit, resource_exhaustion
from stanch.core.investigation.analysis.rules.nodes import node_problem
from stanch.core.investigation.analysis.rules.outliers import THRESHOLDS, pod_outlier, standing_out
from stanch.core.investigation.per_pod import latest_values, places, restart_spread, spread
from stanch.core.models import Evidence, HypothesisCategory, NodeEvidence, PodHealth

from .scenario_builders import NOW, flat, group, metric, scoped, spec, step

LATENCY = metric("latency_p99", step(0.08, 0.4, sigma=0.005))
QUIET = metric("error_ratio", flat(0.001))


def ctx(**evidence: Any) -> RuleContext:
    evidence.setdefault("metrics", [QUIET, LATENCY])
    return build_context(spec(), Evidence(**evidence), now=NOW, created_at=NOW)


def pods(values: list[float]) -> dict[str, float]:
    return {f"checkout-7d9f8b6c4-p{i:04d}": v for i, v in enumerate(values)}


def cpu_spread(values: list[float], **kw: Any) -> Any:
    got = spread("cpu_vs_limit", pods(values), unit="ratio", **kw)
    assert got is not None
    return got


def one_hot(n: int, *, hot: float = 0.99, cold: float = 0.2, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [hot] + [max(0.0, cold + rng.gauss(0, 0.03)) for _ in range(n - 1)]


# --- the spread ---------------------------------------------------------------------------------


def test_the_spread_keeps_the_highest_pods_and_the_siblings_of_the_highest() -> None:
    s = cpu_spread([0.2, 0.3, 0.99, 0.25, 0.22])
    assert s.pods == 5
    assert [p.value for p in s.highest] == [0.99, 0.3, 0.25, 0.22, 0.2]
    assert s.median == 0.25
    assert s.siblings_median == pytest.approx(0.235)  # 0.2, 0.22, 0.25, 0.3
    assert s.siblings_mad == pytest.approx(0.025)


def test_pods_gone_or_unknown_are_left_out_and_nan_is_no_value() -> None:
    where = places(
        [
            {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}},
            {"metadata": {"name": "b", "deletionTimestamp": "2024-05-01T12:00:00Z"}},
        ],
        {},
    )
    s = spread("cpu_vs_limit", {"a": 0.5, "b": 0.9, "c": 0.99, "d": float("nan")}, where=where)
    assert s is not None
    assert s.pods == 1
    assert s.highest[0].pod == "a"
    assert s.highest[0].node == "n1"
    assert spread("cpu_vs_limit", {"x": float("nan")}) is None


def test_latest_values_are_of_one_moment_and_stale_series_are_dropped() -> None:
    fresh = NOW - timedelta(seconds=60)
    values, at = latest_values(
        [
            ("a", [(NOW - timedelta(seconds=30), 0.1), (NOW, 0.2)]),
            ("b", [(NOW - timedelta(seconds=600), 0.9)]),  # the pod stopped reporting long ago
            ("c", [(NOW, float("nan"))]),
        ],
        fresh,
    )
    assert values == {"a": 0.2}
    assert at == NOW


def test_restarts_come_from_the_pods_themselves() -> None:
    def pod(name: str, restarts: int) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {"pod-template-hash": "abc"}},
            "spec": {"nodeName": "node-a"},
            "status": {"containerStatuses": [{"name": "app", "restartCount": restarts}]},
        }

    s = restart_spread([pod("p1", 0), pod("p2", 0), pod("p3", 9), pod("p4", 1)], {"abc": 7})
    assert s is not None
    assert s.signal == "restarts"
    assert s.highest[0].pod == "p3"
    assert s.highest[0].revision == "7"


# --- the outlier rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 10, 100, 1000])
def test_one_pod_at_its_cpu_limit_is_an_outlier_restarted_by_name(n: int) -> None:
    s = cpu_spread(one_hot(n))
    h = pod_outlier(ctx(pod_spreads=[s]))
    assert h is not None
    assert h.category is HypothesisCategory.POD_OUTLIER
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.restart is not None
    assert h.suggested_mitigation.restart.pods == ["checkout-7d9f8b6c4-p0000"]
    assert "checkout-7d9f8b6c4-p0000" in h.statement
    assert any("99.0% of the limit" in line and "siblings" in line for line in h.supporting)


def test_two_pods_have_too_few_siblings_to_compare_with() -> None:
    assert pod_outlier(ctx(pod_spreads=[cpu_spread([0.99, 0.2])])) is None


def test_a_busy_but_unthrottled_pod_is_not_an_outlier() -> None:
    # 0.6 of the limit is far above its siblings but still serves without throttling.
    assert pod_outlier(ctx(pod_spreads=[cpu_spread(one_hot(10, hot=0.6))])) is None


def test_noise_among_quiet_pods_does_not_single_one_out() -> None:
    # The highest of 200 noisy pods is always "the highest"; it must not be an outlier.
    for seed in range(20):
        rng = random.Random(seed)
        values = [min(1.0, max(0.0, rng.gauss(0.5, 0.1))) for _ in range(200)]
        assert pod_outlier(ctx(pod_spreads=[cpu_spread(values)])) is None, seed


def test_a_widely_spread_workload_needs_a_bigger_difference() -> None:
    # Siblings between 0.1 and 0.9: a pod at 0.95 is not remarkable.
    values = [0.95] + [0.1 + 0.8 * i / 18 for i in range(19)]
    assert standing_out(cpu_spread(values), THRESHOLDS["cpu_vs_limit"]) == []


def test_when_a_third_of_the_pods_stand_out_it_is_not_one_pods_problem() -> None:
    values = [0.99] * 4 + [0.2] * 6
    assert pod_outlier(ctx(pod_spreads=[cpu_spread(values)])) is None


def test_a_few_hot_pods_out_of_many_are_named_together() -> None:
    values = [0.99, 0.97] + [0.2] * 18
    h = pod_outlier(ctx(pod_spreads=[cpu_spread(values)]))
    assert h is not None
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.restart is not None
    assert h.suggested_mitigation.restart.pods == ["checkout-7d9f8b6c4-p0000", "checkout-7d9f8b6c4-p0001"]


def test_signals_agreeing_on_the_same_pod_raise_confidence() -> None:
    cpu = cpu_spread(one_hot(6))
    slow = spread("latency_p99", pods([0.9, 0.08, 0.09, 0.07, 0.08, 0.1]))
    assert slow is not None
    alone = pod_outlier(ctx(pod_spreads=[cpu]))
    both = pod_outlier(ctx(pod_spreads=[cpu, slow]))
    assert alone is not None
    assert both is not None
    assert both.confidence >= alone.confidence + 10
    assert any("latency at 0.9s" in line for line in both.supporting)


@pytest.mark.parametrize(
    ("signal", "values", "fires"),
    [
        ("error_ratio", [0.3, 0.002, 0.001, 0.003, 0.002], True),
        ("error_ratio", [0.02, 0.002, 0.001, 0.003, 0.002], False),  # below the absolute floor
        ("error_ratio", [0.5, 0.4, 0.45, 0.42, 0.38], False),  # everyone errs: not one pod
        ("latency_p99", [1.2, 0.1, 0.11, 0.09, 0.1], True),
        ("latency_p99", [0.15, 0.1, 0.11, 0.09, 0.1], False),
        ("restarts", [12.0, 0.0, 0.0, 1.0, 0.0], True),
        ("restarts", [2.0, 0.0, 0.0, 1.0, 0.0], False),
        ("memory_vs_limit", [0.97, 0.4, 0.42, 0.38, 0.41], True),
        ("memory_vs_limit", [0.7, 0.4, 0.42, 0.38, 0.41], False),
    ],
)
def test_each_signal_has_its_own_floor(signal: str, values: list[float], fires: bool) -> None:
    s = spread(signal, pods(values))
    assert s is not None
    assert (pod_outlier(ctx(pod_spreads=[s])) is not None) is fires


def test_the_only_pod_of_a_revision_is_not_blamed_as_a_pod() -> None:
    s = spread("error_ratio", {"canary": 0.4, "a": 0.001, "b": 0.002, "c": 0.001})
    assert s is not None
    s = s.model_copy(
        update={
            "highest": [
                p.model_copy(update={"revision": "8" if p.pod == "canary" else "7"}) for p in s.highest
            ]
        }
    )
    health = PodHealth(total=4, ready=4, by_revision=[group("8", 1, 1), group("7", 3, 3)])
    alone = pod_outlier(ctx(pod_spreads=[s]))
    canary = pod_outlier(ctx(pod_spreads=[s], pod_health=health))
    assert alone is not None
    assert canary is not None
    assert canary.confidence <= alone.confidence - 25
    assert any("the only pod of revision 8 stands out" in c for c in canary.contradicting)


def test_all_new_pods_of_a_rollout_under_way_are_the_revision_not_pods() -> None:
    values = {"new-a": 0.4, "new-b": 0.38, **{f"old-{i}": 0.001 for i in range(4)}}
    s = spread("error_ratio", values)
    assert s is not None
    s = s.model_copy(
        update={
            "highest": [
                p.model_copy(update={"revision": "8" if p.pod.startswith("new") else "7"}) for p in s.highest
            ]
        }
    )
    health = PodHealth(total=6, ready=6, by_revision=[group("8", 2, 2), group("7", 4, 4)])
    h = pod_outlier(ctx(pod_spreads=[s], pod_health=health))
    assert h is not None
    assert any("all 2 pods of revision 8 stand out" in c for c in h.contradicting)
    assert h.confidence <= 45


def test_a_pod_on_a_troubled_node_points_at_the_node_too() -> None:
    s = cpu_spread(one_hot(5))
    s = s.model_copy(
        update={
            "highest": [
                p.model_copy(update={"node": "node-b" if i == 0 else "node-a"})
                for i, p in enumerate(s.highest)
            ]
        }
    )
    nodes = [NodeEvidence(name="node-b", ready=True, problems=["MemoryPressure=True"], pods=1)]
    h = pod_outlier(ctx(pod_spreads=[s], nodes=nodes))
    assert h is not None
    assert any("node-b" in c for c in h.contradicting)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=3, max_size=60),
    st.sampled_from(sorted(THRESHOLDS)),
)
def test_an_outlier_is_always_above_its_siblings_by_the_floor(values: list[float], signal: str) -> None:
    s = spread(signal, pods(values))
    assert s is not None
    assert s.siblings_median is not None
    threshold = THRESHOLDS[signal]
    for p in standing_out(s, threshold):
        assert p.value - s.siblings_median >= threshold.absolute
        assert p.value >= threshold.level
    assert len(standing_out(s, threshold)) <= max(1, len(values) // 3)


# --- ResourceExhaustion needs most pods -----------------------------------------------------------


def test_one_throttled_pod_is_not_pods_running_out_of_cpu_and_no_scale_up() -> None:
    """The issue's case: the overall CPU signal is the busiest pod's (max by pod) at its limit."""
    cpu_overall = metric("cpu_vs_limit", step(0.2, 0.99))
    evidence = {"metrics": [QUIET, LATENCY, cpu_overall], "pod_spreads": [cpu_spread(one_hot(6))]}
    assert resource_exhaustion(ctx(**evidence)) is None
    ranked = rank(ctx(**evidence))
    assert ranked[0].category is HypothesisCategory.POD_OUTLIER
    for h in ranked:
        assert not (h.suggested_mitigation and h.suggested_mitigation.scale), h
        assert "running out of CPU" not in h.statement


def test_most_pods_at_the_limit_is_resource_exhaustion_with_a_scale_up() -> None:
    cpu_overall = metric("cpu_vs_limit", step(0.3, 0.99))
    h = resource_exhaustion(
        ctx(metrics=[QUIET, cpu_overall], pod_spreads=[cpu_spread([0.99, 0.97, 0.95, 0.96, 0.5])])
    )
    assert h is not None
    assert "running out of CPU" in h.statement
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.scale is not None
    assert pod_outlier(ctx(pod_spreads=[cpu_spread([0.99, 0.97, 0.95, 0.96, 0.5])])) is None


def test_without_a_per_pod_breakdown_the_overall_signal_still_counts() -> None:
    cpu_overall = metric("cpu_vs_limit", step(0.3, 0.99))
    assert resource_exhaustion(ctx(metrics=[QUIET, cpu_overall])) is not None


@pytest.mark.parametrize(
    ("values", "most"),
    [
        ([0.95, 0.95, 0.2], True),
        ([0.95, 0.2, 0.2], False),
        ([0.95, 0.95, 0.2, 0.2], False),  # half is not most
        ([0.95] * 60 + [0.2] * 40, True),  # more pods than kept: read from the median
        ([0.95] * 40 + [0.2] * 60, False),
    ],
)
def test_most_pods_at_limit(values: list[float], most: bool) -> None:
    assert most_pods_at_limit(cpu_spread(values)) is most


def test_a_node_whose_only_trouble_is_one_hot_pod_yields_to_the_pod() -> None:
    """The hot pod is slow, so its node's p99 is too; the node itself reports nothing wrong."""
    s = cpu_spread(one_hot(4))
    s = s.model_copy(
        update={
            "highest": [
                p.model_copy(update={"node": "node-b" if i == 0 else "node-a"})
                for i, p in enumerate(s.highest)
            ]
        }
    )
    by_node = [
        scoped("latency_p99", "node:node-b", 0.24, before=0.1),
        scoped("latency_p99", "node:node-a", 0.1, before=0.1),
        scoped("latency_p99", "node:node-c", 0.1, before=0.1),
    ]
    nodes = [NodeEvidence(name=n, ready=True, pods=1) for n in ("node-a", "node-b", "node-c")]
    evidence = {
        "metrics": [QUIET, LATENCY, *by_node],
        "pod_spreads": [s],
        "nodes": nodes,
        "pod_health": PodHealth(total=4, ready=4),
    }
    node = node_problem(ctx(**evidence))
    pod = pod_outlier(ctx(**evidence))
    assert pod is not None
    assert node is not None
    assert any("a pod problem" in c for c in node.contradicting)
    assert node.confidence < pod.confidence
    assert rank(ctx(**evidence))[0].category is HypothesisCategory.POD_OUTLIER
