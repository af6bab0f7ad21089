"""Guard: rank test, checks, verdicts (noise never Worse, regressions Worse fast, no data never Healthy)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.guard import (
    GuardAction,
    SignalSpec,
    judge,
    mann_whitney_greater,
    run_check,
)
from stanch.core.models import (
    BUILTIN_GUARD,
    CheckVerdict,
    Direction,
    GuardSpec,
    NoDataAction,
    Observation,
    ResolvedGuard,
    SignalKind,
    SignalTemplate,
    SuccessCriteria,
    VerdictResult,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ERRORS = SignalSpec("error_ratio", SignalKind.ERROR_RATIO)
LATENCY = SignalSpec("latency_p99", SignalKind.LATENCY)


def bake(
    specs: list[SignalSpec],
    baseline: dict[str, list[float]],
    samples: list[dict[str, list[float] | None]],
    guard: GuardSpec = BUILTIN_GUARD,
) -> list[tuple[GuardAction, VerdictResult | None]]:
    """Feed checks one by one (the last one ends the bake) until the guard stops the bake."""
    history: list[Observation] = []
    out = []
    for i, sample in enumerate(samples):
        result = run_check(
            specs,
            baseline,
            sample,
            at=T0 + timedelta(seconds=30 * i),
            previous=history,
            tolerance=guard.tolerance or 0.0,
        )
        history.append(result.observation)
        j = judge(history, result, guard=ResolvedGuard.of(guard), bake_over=i == len(samples) - 1, at=T0)
        out.append((j.action, j.verdict.result if j.verdict else None))
        if j.action != GuardAction.CONTINUE:
            break
    return out


# --- rank test ------------------------------------------------------------------------------------


@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=15),
    st.lists(st.integers(0, 5), min_size=1, max_size=15),
)
def test_u_counts_pairs_where_after_is_larger_ties_half(base: list[int], after: list[int]) -> None:
    pairs = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in after for b in base)
    assert mann_whitney_greater([float(b) for b in base], [float(a) for a in after]).u == pytest.approx(pairs)


def test_rank_test_known_value() -> None:
    # Every after point above every baseline point: U = n1*n2. With n1=20, n2=6 the normal
    # approximation (continuity-corrected) gives z = (120 - 60 - 0.5) / sqrt(20*6*27/12) = 3.62.
    test = mann_whitney_greater([float(i) for i in range(20)], [float(i) for i in range(100, 106)])
    assert test.u == 120
    assert test.z == pytest.approx(59.5 / (20 * 6 * 27 / 12) ** 0.5)
    assert test.p_value < 0.001
    reverse = mann_whitney_greater([float(i) for i in range(100, 120)], [float(i) for i in range(6)])
    assert reverse.p_value > 0.999


def test_rank_test_all_tied_or_empty_says_nothing() -> None:
    assert mann_whitney_greater([0.0] * 10, [0.0] * 5).p_value == 1.0
    assert mann_whitney_greater([], [1.0]).p_value == 1.0
    assert mann_whitney_greater([1.0], []).p_value == 1.0


# --- noise never Worse ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from([0.002, 0.01, 0.05, 0.3]),
    relative_sd=st.floats(0.01, 0.3),
)
def test_noise_only_is_never_worse(seed: int, level: float, relative_sd: float) -> None:
    rng = random.Random(seed)

    def draw(n: int, centre: float) -> list[float]:
        return [max(0.0, rng.gauss(centre, centre * relative_sd)) for _ in range(n)]

    baseline = {"error_ratio": draw(20, level), "latency_p99": draw(20, 0.25)}
    # Ten checks of six points each: a whole 5m bake at 30s intervals.
    samples: list[dict[str, list[float] | None]] = [
        {"error_ratio": draw(6, level), "latency_p99": draw(6, 0.25)} for _ in range(10)
    ]
    outcome = bake([ERRORS, LATENCY], baseline, samples)
    assert all(action != GuardAction.REVERT for action, _ in outcome), outcome
    assert outcome[-1][1] != VerdictResult.WORSE


# --- clear regression Worse within two intervals -------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), factor=st.floats(3.0, 20.0))
def test_clear_regression_is_worse_within_two_intervals(seed: int, factor: float) -> None:
    rng = random.Random(seed)
    baseline = {"error_ratio": [max(0.0, rng.gauss(0.01, 0.002)) for _ in range(20)]}
    bad: list[dict[str, list[float] | None]] = [
        {"error_ratio": [max(0.0, rng.gauss(0.01 * factor, 0.004)) for _ in range(6)]} for _ in range(10)
    ]
    outcome = bake([ERRORS], baseline, bad)
    assert len(outcome) == 2
    assert outcome[-1] == (GuardAction.REVERT, VerdictResult.WORSE)


def test_tiny_significant_shift_is_not_worse() -> None:
    # 0.10 % → 0.20 % errors is significant to the rank test but below the effect floor (0.5 points).
    baseline = {"error_ratio": [0.001 + i * 1e-6 for i in range(20)]}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": [0.002] * 6} for _ in range(10)]
    outcome = bake([ERRORS], baseline, samples)
    assert outcome[-1] == (GuardAction.SUCCEED, VerdictResult.HEALTHY)


def test_throughput_falling_is_worse_rising_is_fine() -> None:
    template = SignalTemplate(name="throughput", query="x", kind=SignalKind.THROUGHPUT)
    spec = SignalSpec.of("throughput", template)
    assert not spec.higher_is_worse
    baseline = {"throughput": [100.0 + i % 3 for i in range(20)]}
    falling: list[dict[str, list[float] | None]] = [{"throughput": [40.0] * 6}] * 3
    rising: list[dict[str, list[float] | None]] = [{"throughput": [300.0] * 6}] * 3
    assert bake([spec], baseline, falling)[-1] == (GuardAction.REVERT, VerdictResult.WORSE)
    assert bake([spec], baseline, rising)[-1] == (GuardAction.SUCCEED, VerdictResult.HEALTHY)
    explicit = SignalTemplate(
        name="queue", query="x", kind=SignalKind.THROUGHPUT, direction=Direction.LOWER_IS_BETTER
    )
    assert SignalSpec.of("queue", explicit).higher_is_worse


def test_improvement_is_healthy() -> None:
    baseline = {"error_ratio": [0.2 + i * 0.001 for i in range(20)]}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": [0.01] * 6}] * 10
    assert bake([ERRORS], baseline, samples)[-1] == (GuardAction.SUCCEED, VerdictResult.HEALTHY)


# --- SLO gate -------------------------------------------------------------------------------------


def test_slo_gate_fails_when_the_action_crosses_the_threshold() -> None:
    spec = SignalSpec("error_ratio", SignalKind.ERROR_RATIO, threshold=0.05)
    # Too few points for the rank test to be significant: only the SLO gate can fail this.
    baseline = {"error_ratio": [0.01, 0.02]}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": [0.08]}] * 5
    assert bake([spec], baseline, samples)[-1] == (GuardAction.REVERT, VerdictResult.WORSE)


def test_slo_already_breached_before_the_action_is_judged_by_comparison_only() -> None:
    spec = SignalSpec("error_ratio", SignalKind.ERROR_RATIO, threshold=0.05)
    baseline = {"error_ratio": [0.2 + i * 0.001 for i in range(20)]}
    same: list[dict[str, list[float] | None]] = [{"error_ratio": [0.205] * 6}] * 10
    outcome = bake([spec], baseline, same)
    assert outcome[-1] == (GuardAction.SUCCEED, VerdictResult.HEALTHY)


# --- no data --------------------------------------------------------------------------------------


@given(
    pattern=st.lists(st.booleans(), min_size=1, max_size=10),
    no_data=st.sampled_from(list(NoDataAction)),
)
def test_no_data_is_never_healthy(pattern: list[bool], no_data: NoDataAction) -> None:
    """Whatever mix of data and no data came before, a bake whose last check had no data for
    some signal never ends Healthy."""
    guard = BUILTIN_GUARD.model_copy(update={"no_data": no_data})
    baseline = {"error_ratio": [0.01] * 20, "latency_p99": [0.2] * 20}
    samples: list[dict[str, list[float] | None]] = [
        {"error_ratio": [0.01] * 6, "latency_p99": [0.2] * 6 if has else None} for has in pattern
    ]
    samples[-1] = {"error_ratio": [0.01] * 6, "latency_p99": None}
    outcome = bake([ERRORS, LATENCY], baseline, samples, guard)
    action, result = outcome[-1]
    assert result != VerdictResult.HEALTHY
    assert action != GuardAction.SUCCEED
    assert result == VerdictResult.NO_DATA


def test_no_data_revert_after_failure_limit_hold_otherwise() -> None:
    baseline = {"error_ratio": [0.01] * 20}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": None}] * 10
    revert = BUILTIN_GUARD.model_copy(update={"no_data": NoDataAction.REVERT})
    assert bake([ERRORS], baseline, samples, revert) == [
        (GuardAction.CONTINUE, None),
        (GuardAction.REVERT, VerdictResult.NO_DATA),
    ]
    outcome = bake([ERRORS], baseline, samples, BUILTIN_GUARD)
    assert outcome[-1] == (GuardAction.HOLD, VerdictResult.NO_DATA)
    assert len(outcome) == 10


def test_no_baseline_and_no_slo_is_no_data() -> None:
    result = run_check([ERRORS], {}, {"error_ratio": [0.01]}, at=T0, previous=[], tolerance=0.1)
    assert result.observation.check == CheckVerdict.NO_DATA


# --- success criteria and inconclusive ------------------------------------------------------------


def test_success_criteria_end_the_bake_early() -> None:
    guard = BUILTIN_GUARD.model_copy(
        update={"success_criteria": SuccessCriteria(signal="error_ratio", below=0.02, checks=3)}
    )
    baseline = {"error_ratio": [0.2] * 20}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": [0.01] * 6}] * 10
    outcome = bake([ERRORS], baseline, samples, guard)
    assert len(outcome) == 3
    assert outcome[-1] == (GuardAction.SUCCEED, VerdictResult.HEALTHY)


def test_bake_ending_on_a_single_failure_is_inconclusive_and_held_by_default() -> None:
    baseline = {"error_ratio": [0.01 + i * 1e-4 for i in range(20)]}
    samples: list[dict[str, list[float] | None]] = [{"error_ratio": [0.011] * 6} for _ in range(4)]
    samples.append({"error_ratio": [0.2] * 6})
    outcome = bake([ERRORS], baseline, samples)
    assert outcome[-1] == (GuardAction.HOLD, VerdictResult.INCONCLUSIVE)


def test_verdict_carries_numbers() -> None:
    baseline = {"error_ratio": [0.01] * 20}
    history: list[Observation] = []
    for _ in range(2):
        result = run_check(
            [ERRORS], baseline, {"error_ratio": [0.3] * 6}, at=T0, previous=history, tolerance=0.1
        )
        history.append(result.observation)
    judgement = judge(history, result, guard=ResolvedGuard.of(BUILTIN_GUARD), bake_over=False, at=T0)
    assert judgement.verdict is not None
    number = judgement.verdict.numbers[0]
    assert (number.baseline, number.observed) == (0.01, 0.3)
    assert "p=" in number.test
    assert "min effect" in number.test
    assert "failureLimit 2" in judgement.verdict.reason
    assert judgement.verdict.failed_checks == 2


def test_failures_on_different_signals_do_not_chain_into_worse() -> None:
    baseline = {
        "error_ratio": [0.01 + i * 1e-4 for i in range(20)],
        "latency_p99": [0.2 + i * 1e-3 for i in range(20)],
    }
    samples: list[dict[str, list[float] | None]] = [
        {"error_ratio": [0.3] * 6, "latency_p99": [0.2] * 6},
        {"error_ratio": [0.01] * 6, "latency_p99": [0.9] * 6},
        {"error_ratio": [0.01] * 6, "latency_p99": [0.9] * 6},
    ]
    outcome = bake([ERRORS, LATENCY], baseline, samples)
    assert [a for a, _ in outcome] == [GuardAction.CONTINUE, GuardAction.CONTINUE, GuardAction.REVERT]
