"""The resolved guard: every field set, one place for the defaults, what the docs promise."""

from __future__ import annotations

from datetime import timedelta

import kopf

from stanch.core.models import (
    BUILTIN_GUARD,
    DEFAULT_GUARD,
    GuardSpec,
    InconclusiveAction,
    NoDataAction,
    ResolvedGuard,
)
from stanch.wiring.handlers.mitigation import _interval


def test_a_guard_nobody_set_has_the_documented_defaults() -> None:
    g = ResolvedGuard.of(GuardSpec())
    assert g == DEFAULT_GUARD
    assert (g.baseline_period, g.bake_period, g.check_period, g.settle_period) == (
        timedelta(minutes=10),
        timedelta(minutes=5),
        timedelta(seconds=10),
        timedelta(seconds=30),
    )
    assert (g.tolerance, g.failure_limit, g.no_data, g.inconclusive) == (
        0.1,
        2,
        NoDataAction.HOLD,
        InconclusiveAction.HOLD,
    )
    assert [s.name for s in g.signals] == ["error_ratio", "latency_p99"]


def test_the_mitigation_wins_over_the_policy_which_wins_over_the_built_in_defaults() -> None:
    g = ResolvedGuard.of(GuardSpec(interval="2s", bake_time="20s"), GuardSpec(interval="1m", tolerance=0.5))
    assert (g.interval, g.bake_time, g.tolerance, g.baseline_window) == (
        "2s",
        "20s",
        0.5,
        BUILTIN_GUARD.baseline_window,
    )


def test_the_daemon_looks_again_at_the_guards_interval_or_the_built_in_one() -> None:
    assert _interval(kopf.Body({"spec": {}})) == DEFAULT_GUARD.check_period.total_seconds() == 10.0
    assert _interval(kopf.Body({"spec": {"guard": {"interval": "45s"}}})) == 45.0
