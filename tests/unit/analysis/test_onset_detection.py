"""Onset detection: steps, ramps, blips, no change, and no false onset on noise."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stanch.core.investigation.analysis.onset import FLOORS, MIN_POINTS, find_shift
from stanch.core.investigation.analysis.series import ERROR_RATIO, LATENCY, noise_sigma

from .scenario_builders import ONSET_INDEX, SAMPLES, flat, points, step

ERRORS = FLOORS[ERROR_RATIO]


def test_a_clean_step_is_found_at_its_first_elevated_sample() -> None:
    shift = find_shift(points(step(0.01, 0.2)), ERRORS)
    assert shift is not None
    assert shift.start == ONSET_INDEX
    assert abs(shift.baseline - 0.01) < 1e-9
    assert abs(shift.level - 0.2) < 1e-9


def test_a_noisy_step_is_found_within_one_sample() -> None:
    shift = find_shift(points(step(0.01, 0.08, sigma=0.005, seed=7)), ERRORS)
    assert shift is not None
    assert abs(shift.start - ONSET_INDEX) <= 1


def test_a_ramp_reports_its_start_not_where_it_crosses_a_line() -> None:
    rng = random.Random(3)
    values = [0.01 + rng.gauss(0, 0.002) for _ in range(25)]
    values += [0.01 + 0.01 * i + rng.gauss(0, 0.002) for i in range(1, 16)]  # 5% at i=4, 15% at the top
    values += [0.16 + rng.gauss(0, 0.002) for _ in range(SAMPLES - len(values))]
    shift = find_shift(points(values), ERRORS)
    assert shift is not None
    assert 24 <= shift.start <= 26  # the ramp begins at index 25
    assert shift.end > shift.start  # a rise over several samples, not a step


def test_a_ramp_that_is_still_rising_at_the_end() -> None:
    values = [0.01] * 40 + [0.01 + 0.01 * i for i in range(1, 21)]
    shift = find_shift(points(values), ERRORS)
    assert shift is not None
    assert shift.start == 40


def test_a_blip_has_an_onset_too() -> None:
    values = [0.0] * 20 + [0.2] * 4 + [0.0] * 36
    shift = find_shift(points(values), ERRORS)
    assert shift is not None
    assert shift.start == 20


def test_no_change_means_no_onset() -> None:
    assert find_shift(points(flat(0.02)), ERRORS) is None
    assert find_shift(points(flat(0.0)), ERRORS) is None


def test_a_drop_is_recovery_not_an_onset() -> None:
    assert find_shift(points(step(0.2, 0.01, sigma=0.003)), ERRORS) is None


def test_a_change_below_the_effect_floor_is_not_an_incident() -> None:
    # 0.1% → 0.3% errors is statistically clear on a flat series but operationally nothing.
    assert find_shift(points(step(0.001, 0.003)), ERRORS) is None


def test_too_few_samples_never_produce_an_onset() -> None:
    assert find_shift(points([0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5][: MIN_POINTS - 1]), ERRORS) is None


def test_an_incident_already_running_when_the_window_opens_has_no_onset() -> None:
    assert find_shift(points(flat(0.3, sigma=0.01)), ERRORS) is None


def test_latency_uses_its_own_floor() -> None:
    shift = find_shift(points(step(0.2, 0.9, sigma=0.02)), FLOORS[LATENCY])
    assert shift is not None
    assert abs(shift.start - ONSET_INDEX) <= 1
    assert find_shift(points(step(0.2, 0.22, sigma=0.001)), FLOORS[LATENCY]) is None


def test_noise_estimate_ignores_a_step() -> None:
    values = step(0.0, 1.0, sigma=0.01, seed=5)
    assert noise_sigma(values) < 0.05


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.floats(0.0, 0.5),
    sigma=st.floats(0.0, 0.1),
    n=st.integers(MIN_POINTS, 60),
)
def test_pure_noise_never_has_an_onset(seed: int, level: float, sigma: float, n: int) -> None:
    rng = random.Random(seed)
    # Clipped at zero like a real error ratio: mostly-zero series are the hard case for noise estimates.
    values = [max(0.0, level + rng.gauss(0, sigma)) for _ in range(n)]
    assert find_shift(points(values), ERRORS) is None


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    base=st.floats(0.0, 0.05),
    sigma=st.floats(0.0, 0.01),
    at=st.integers(8, 50),
    jump=st.floats(6.0, 30.0),
)
def test_a_clear_step_is_always_found_near_where_it_happened(
    seed: int, base: float, sigma: float, at: int, jump: float
) -> None:
    height = max(2 * ERRORS.of(base), jump * max(sigma, 0.002))
    values = step(base, base + height, at_index=at, sigma=sigma, seed=seed)
    shift = find_shift(points(values), ERRORS)
    assert shift is not None
    assert abs(shift.start - at) <= 1


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), start=st.integers(10, 35), length=st.integers(3, 12))
def test_a_clear_ramp_is_found_at_its_start(seed: int, start: int, length: int) -> None:
    rng = random.Random(seed)
    top = 0.2
    values = [
        max(
            0.0,
            (0.01 if i < start else min(top, 0.01 + (top - 0.01) * (i - start + 1) / length))
            + rng.gauss(0, 0.002),
        )
        for i in range(SAMPLES)
    ]
    shift = find_shift(points(values), ERRORS)
    assert shift is not None
    assert start - 1 <= shift.start <= start + 2
