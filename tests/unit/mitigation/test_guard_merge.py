"""The merged guard: a Mitigation's guard over policy guardDefaults over the built-in defaults either
resolves to a guard that holds every rule, or fails with one GuardError naming a field, where its
value came from, and the fix; never anything else (issue 13: an invalid merge used to raise on every
pass, silently)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stanch.core.mitigation_context import resolve_guard_or_problem
from stanch.core.models import (
    BUILTIN_GUARD,
    DEFAULT_GUARD,
    INTERVAL_MAX,
    INTERVAL_MIN,
    BaselineNoDataAction,
    GuardError,
    GuardLayer,
    GuardProblem,
    GuardSpec,
    MitigationPolicySpec,
    MitigationSpec,
    ResolvedGuard,
    format_duration,
    parse_duration,
)

GUARD_FIELDS = {f.alias or n for n, f in GuardSpec.model_fields.items()}

durations = st.one_of(
    st.sampled_from(["0s", "1s", "2s", "10s", "59m59s", "1h", "1h1s", "2h", "99999h"]),
    st.integers(min_value=0, max_value=3 * 3600).map(lambda n: format_duration(timedelta(seconds=n))),
)
raw_guards = st.fixed_dictionaries(
    {},
    optional={
        "interval": durations,
        "bakeTime": durations,
        "baselineWindow": durations,
        "settleTime": durations,
        "tolerance": st.floats(min_value=0, max_value=10, allow_nan=False),
        "failureLimit": st.integers(min_value=1, max_value=100),
        "noData": st.sampled_from(["Hold", "Revert"]),
        "baselineNoData": st.sampled_from(["Refuse", "Proceed"]),
        "signals": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["error_ratio", "latency_p99", "x"])}),
            max_size=3,
        ),
    },
)


def admitted(raw: dict[str, Any]) -> GuardSpec | None:
    """The layer as the API server (and its pydantic twin) would store it, or None if refused."""
    try:
        return GuardSpec.model_validate(raw)
    except ValidationError:
        return None


@settings(max_examples=300, deadline=None)
@given(mine=raw_guards, policies=st.lists(raw_guards, max_size=2))
def test_every_merge_resolves_or_names_one_field(
    mine: dict[str, Any], policies: list[dict[str, Any]]
) -> None:
    layers = [admitted(raw) for raw in (mine, *policies)]
    if any(layer is None for layer in layers):
        return  # admission refuses it: it never reaches the operator
    sources = [
        "spec.guard",
        *(f"MitigationPolicy/shop/p{i} spec.guardDefaults" for i in range(len(policies))),
    ]
    problem: GuardProblem | None = None
    try:
        guard = ResolvedGuard.resolve(*(GuardLayer(s, g) for s, g in zip(sources, layers, strict=True) if g))
    except GuardError as err:
        problem = err.problem
    if problem is not None:
        assert problem.field in {"bakeTime", "interval"}, problem
        assert problem.field in problem.message
        # The fix names a path a user can edit (never the built-in defaults).
        assert "set spec.guard." in problem.message or "set MitigationPolicy/" in problem.message
        return
    # A guard that resolves holds every rule, field by field from the first layer that sets it.
    assert guard.bake_period >= guard.check_period
    assert INTERVAL_MIN <= guard.check_period <= INTERVAL_MAX
    for name in ("interval", "bake_time", "baseline_window", "tolerance", "no_data", "baseline_no_data"):
        expected = next(
            (getattr(g, name) for g in layers if g and getattr(g, name) is not None),
            getattr(BUILTIN_GUARD, name),
        )
        assert getattr(guard, name) == expected, name


@settings(max_examples=200, deadline=None)
@given(raw=raw_guards)
def test_a_single_layer_admitted_by_the_schema_has_an_interval_in_bounds(raw: dict[str, Any]) -> None:
    guard = admitted(raw)
    if guard is not None and guard.interval is not None:
        assert INTERVAL_MIN <= parse_duration(guard.interval) <= INTERVAL_MAX
    if "interval" in raw and not INTERVAL_MIN <= parse_duration(raw["interval"]) <= INTERVAL_MAX:
        assert guard is None


def test_an_interval_alone_longer_than_the_built_in_bake_names_both_fields_and_the_fix() -> None:
    with pytest.raises(GuardError) as caught:
        ResolvedGuard.of(GuardSpec(interval="10m"))
    problem = caught.value.problem
    assert problem.field == "bakeTime"
    assert problem.message == (
        "guard bakeTime 5m (built-in default) is shorter than interval 10m (spec.guard.interval): the"
        " bake must last at least one check; set spec.guard.bakeTime to 10m or more, or"
        " spec.guard.interval to 5m or less"
    )


def test_a_policy_edit_that_breaks_the_merge_names_the_policy() -> None:
    spec = MitigationSpec.model_validate(
        {"target": {"name": "web"}, "rollback": {}, "guard": {"bakeTime": "30s"}}
    )
    policy = MitigationPolicySpec.model_validate({"guardDefaults": {"interval": "1m"}})
    guard, problem = resolve_guard_or_problem(spec, policy.guard_defaults, "MitigationPolicy/shop/prod")
    assert guard == DEFAULT_GUARD  # the stand-in, never judged with
    assert problem is not None
    assert "interval 1m (MitigationPolicy/shop/prod spec.guardDefaults.interval)" in problem.message
    assert "or MitigationPolicy/shop/prod spec.guardDefaults.interval to 30s or less" in problem.message


def test_layers_merge_field_by_field_before_any_rule_is_checked() -> None:
    # The policy's 10m interval alone breaks the built-in 5m bake, but the Mitigation's own 20m bake
    # makes the whole valid: the old layer-by-layer merge refused it.
    g = ResolvedGuard.of(GuardSpec(bake_time="20m"), GuardSpec(interval="10m"))
    assert (g.bake_time, g.interval) == ("20m", "10m")


@pytest.mark.parametrize("interval", ["0s", "1h1s", "2h"])
def test_out_of_range_intervals_are_refused_with_the_field_and_the_range(interval: str) -> None:
    with pytest.raises(ValidationError, match="interval must be between 1s and 1h"):
        GuardSpec(interval=interval)
    with pytest.raises(ValidationError, match="interval must be between 1s and 1h"):
        MitigationPolicySpec.model_validate({"guardDefaults": {"interval": interval}})


@pytest.mark.parametrize("interval", ["1s", "10s", "1h"])
def test_the_bounds_themselves_are_accepted(interval: str) -> None:
    assert GuardSpec(interval=interval, bake_time="1h").interval == interval


def test_an_interval_stored_before_the_bounds_is_one_clear_problem() -> None:
    # A layer built without validation (as an object stored under an older schema might be read).
    old = GuardSpec.model_construct(interval="0s")
    with pytest.raises(GuardError) as caught:
        ResolvedGuard.resolve(GuardLayer("spec.guard", old))
    assert caught.value.problem.field == "interval"
    assert "set spec.guard.interval to a duration from 1s to 1h" in caught.value.problem.message


def test_acting_without_a_baseline_is_refused_unless_a_guard_says_proceed() -> None:
    assert DEFAULT_GUARD.baseline_no_data is BaselineNoDataAction.REFUSE
    proceed = ResolvedGuard.of(GuardSpec(), GuardSpec(baseline_no_data=BaselineNoDataAction.PROCEED))
    assert proceed.baseline_no_data is BaselineNoDataAction.PROCEED
