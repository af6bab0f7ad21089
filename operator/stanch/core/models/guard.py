"""The guard: how a Mitigation is watched. ``GuardSpec`` is what a Mitigation or a policy writes (every
field optional), ``ResolvedGuard`` what a Mitigation runs under (every field set), and
``ResolvedGuard.resolve`` the one place the layers meet: it either returns a guard that holds every
rule, or raises one ``GuardError`` naming the field, where each value came from, and the fix.

A rule that spans fields (``bakeTime`` at least one ``interval``) can hold in every layer and fail in
their merge — ``guard: {interval: 10m}`` over the built-in 5m bake — so the merge is checked as a
whole, never layer by layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from stanch.core.models.base import CelRule, StanchModel, error_paths
from stanch.core.models.common import Duration, SignalName, SignalRef, format_duration, parse_duration


class NoDataAction(StrEnum):
    """What to do when a guard has no data (design invariant 5: no data is never healthy)."""

    HOLD = "Hold"
    REVERT = "Revert"


class BaselineNoDataAction(StrEnum):
    """What to do when the baseline has no data for a guarded signal that no SLO threshold can judge
    either: no check could ever tell whether the change made things worse."""

    REFUSE = "Refuse"
    """End Failed before any change (the default): acting blind is a choice, not an accident."""
    PROCEED = "Proceed"
    """Act anyway; the bake then holds (or reverts) on ``noData`` for that signal."""


class InconclusiveAction(StrEnum):
    """What to do when the bake ends without a clear Healthy or Worse verdict."""

    HOLD = "Hold"
    REVERT = "Revert"
    KEEP = "Keep"


class SuccessCriteria(StanchModel):
    """Ends the bake early as Healthy once a signal is back under target for enough checks."""

    signal: SignalName
    """Name of the signal template to watch."""
    below: Annotated[float, Field(ge=0)]
    """The signal must stay strictly below this value..."""
    checks: Annotated[int, Field(ge=1, le=100)] = 3
    """...for this many consecutive checks."""


@dataclass(frozen=True)
class DurationBounds:
    """The range one guard duration must lie in, and why. The CEL rule, its Python twin and the
    merge's message are all built from it, so the three cannot disagree."""

    name: str
    """The field's Python name, e.g. ``baseline_window``."""
    low: timedelta
    high: timedelta
    why: str
    """Why a value outside the range is wrong, for the merge's message."""

    @property
    def alias(self) -> str:
        return to_camel(self.name)

    @property
    def range(self) -> str:
        return f"{format_duration(self.low)} and {format_duration(self.high)}"

    @property
    def message(self) -> str:
        return f"{self.alias} must be between {self.range}"

    def holds(self, text: str) -> bool:
        return self.low <= parse_duration(text) <= self.high

    def cel_rule(self) -> CelRule:
        field = f"self.{self.alias}"
        checks = [f"duration({field}) <= duration('{format_duration(self.high)}')"]
        if self.low:  # a lower bound of 0s holds for every duration the schema admits
            checks.insert(0, f"duration({field}) >= duration('{format_duration(self.low)}')")
        return CelRule(
            rule=f"!has({field}) || ({' && '.join(checks)})",
            message=self.message,
            field_path=f".{self.alias}",
        )


INTERVAL_MIN = timedelta(seconds=1)
"""Shortest guard interval. Each interval is one check (a read of the target and a range query per
signal): ``0s`` ran them in a tight loop (1,828 API calls in 3 s). Below a second no Prometheus
scrapes often enough for a new point anyway. Flagger silently raises anything under 10s to 10s;
Stanch refuses instead, so the number in the spec is the number that runs."""
INTERVAL_MAX = timedelta(hours=1)
"""Longest guard interval: the guard is what reverts a change that made things worse, and between two
checks a regression runs unwatched."""

INTERVAL_BOUNDS = DurationBounds(
    "interval",
    INTERVAL_MIN,
    INTERVAL_MAX,
    "one check runs per interval, so a shorter one queries in a tight loop and a longer one leaves a"
    " regression unwatched",
)
BAKE_TIME_BOUNDS = DurationBounds(
    "bake_time",
    INTERVAL_MIN,
    timedelta(hours=24),
    # The floor is the interval's: "at least one interval" is the rule that matters, checked below.
    "the Mitigation holds the target's lock for the whole bake (no other mitigation may act on it), and"
    " a day outlasts any rollout or daily traffic cycle a bake is meant to watch",
)
BASELINE_WINDOW_BOUNDS = DurationBounds(
    "baseline_window",
    timedelta(seconds=10),
    timedelta(hours=6),
    "the baseline is what a check compares with: under 10s it is a handful of points (often less than"
    " one scrape), and over 6h it averages in other hours of the daily traffic cycle, not the state"
    " the change is made in",
)
SETTLE_TIME_BOUNDS = DurationBounds(
    "settle_time",
    timedelta(0),
    timedelta(minutes=30),
    "while it lasts a latency or saturation regression is excused, not reverted; set it to the rate"
    " window of the latency query (minutes), and 0s to never excuse",
)
DURATION_BOUNDS = (INTERVAL_BOUNDS, BAKE_TIME_BOUNDS, BASELINE_WINDOW_BOUNDS, SETTLE_TIME_BOUNDS)
"""Every guard duration's range, checked in this order (the interval first: the other rules are
about checks, and a check needs a sane interval)."""

INTERVAL_MESSAGE = INTERVAL_BOUNDS.message
BAKE_MESSAGE = "bakeTime must be at least one interval"


def _rule_problems(guard: GuardSpec | ResolvedGuard) -> list[str]:
    """The guard's rules over its own fields (the Python twin of the CEL rules below)."""
    problems = []
    for bounds in DURATION_BOUNDS:
        value = getattr(guard, bounds.name)
        if value is not None and not bounds.holds(value):
            problems.append(bounds.message)
    bake_time, interval = guard.bake_time, guard.interval
    if bake_time and interval and parse_duration(bake_time) < parse_duration(interval):
        problems.append(BAKE_MESSAGE)
    return problems


class GuardSpec(StanchModel):
    """How a mitigation is watched: baseline, bake, checks and fail-safes.

    Every field is optional: unset fields inherit the matching policy's ``guardDefaults`` and then
    the built-in defaults in :data:`BUILTIN_GUARD`.
    """

    signals: Annotated[list[SignalRef], Field(max_length=8)] = []
    """Signals to compare against the baseline; empty means the policy's error-ratio and latency
    templates."""
    baseline_window: Duration | None = None
    """How far back before the action the baseline is taken, from 10s (fewer points cannot be
    compared) to 6h (longer averages in other hours of the daily traffic cycle; default 10m); never
    before the linked Incident's onset, so the incident's own errors are the baseline a fix is
    judged against."""
    bake_time: Duration | None = None
    """How long to watch after the change is applied before declaring it Healthy (default 5m); at
    least one interval, also once merged with the policy's guardDefaults, and at most 24h (the
    Mitigation holds the target's lock for the whole bake)."""
    interval: Duration | None = None
    """Time between guard checks, from 1s to 1h (default 10s: with two failed checks in a row a clear
    regression is reverted within about 20 s of showing up; see docs/benchmarks.md)."""
    tolerance: Annotated[float, Field(ge=0, le=10)] | None = None
    """Relative degradation versus the baseline allowed before a check fails, as a fraction
    (0.1 = 10 % worse; default 0.1)."""
    failure_limit: Annotated[int, Field(ge=1, le=100)] | None = None
    """Consecutive failed checks that make the verdict Worse and trigger a revert (default 2)."""
    settle_time: Duration | None = None
    """While the target's new pods start, and for this long after they are all available, a check
    that is worse only on latency or saturation counts as settling, not failing (default 30s; set it
    to the rate window of your latency query, which keeps the rollout in its numbers that long).
    From 0s (never excuse) to 30m: while it lasts such a regression is not reverted. Error ratio,
    restarts and throughput are never excused."""
    success_criteria: SuccessCriteria | None = None
    """Optional early-success rule."""
    no_data: NoDataAction | None = None
    """What to do when a signal has no data or Prometheus fails (default Hold; never Healthy)."""
    baseline_no_data: BaselineNoDataAction | None = None
    """What to do when the baseline has no data for a guarded signal without an SLO threshold, so
    that no check could judge it (default Refuse: end Failed before any change; Proceed acts blind)."""
    inconclusive: InconclusiveAction | None = None
    """What to do when the bake ends Inconclusive (default Hold)."""

    cel_rules = (
        *(bounds.cel_rule() for bounds in DURATION_BOUNDS),
        CelRule(
            rule="!has(self.bakeTime) || !has(self.interval)"
            " || duration(self.bakeTime) >= duration(self.interval)",
            message=BAKE_MESSAGE,
        ),
    )

    @model_validator(mode="after")
    def _rules(self) -> GuardSpec:
        problems = _rule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def merged_over(self, defaults: GuardSpec) -> GuardSpec:
        """This guard with unset fields taken from ``defaults`` (mitigation over policy over built-in)."""
        values = defaults.model_dump(exclude_unset=False)
        for name, value in self.model_dump().items():
            if value is not None and value != []:
                values[name] = value
        return GuardSpec.model_validate(values)


BUILTIN_GUARD = GuardSpec(
    baseline_window="10m",
    bake_time="5m",
    interval="10s",
    tolerance=0.1,
    failure_limit=2,
    settle_time="30s",
    no_data=NoDataAction.HOLD,
    baseline_no_data=BaselineNoDataAction.REFUSE,
    inconclusive=InconclusiveAction.HOLD,
)
"""Defaults used when neither the Mitigation nor any policy sets a guard field."""

DEFAULT_GUARD_SIGNALS = ("error_ratio", "latency_p99")
"""Signals a guard watches when neither the Mitigation nor a policy names any (the design's
"error-ratio and latency templates")."""


@dataclass(frozen=True)
class GuardLayer:
    """One layer of a guard and where its fields are written, so an error can say where to fix it."""

    source: str
    """The path its fields live under, e.g. ``spec.guard`` or
    ``MitigationPolicy/shop/prod spec.guardDefaults``."""
    guard: GuardSpec


BUILTIN_SOURCE = "built-in default"


@dataclass(frozen=True)
class GuardProblem:
    """Why the guard a Mitigation would run under is invalid: the guard field at fault (camelCase) and
    a sentence naming the values, where each came from, and the fix."""

    field: str
    message: str


class GuardError(ValueError):
    """The layers of a guard do not merge into a valid guard."""

    def __init__(self, problem: GuardProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _alias(name: str) -> str:
    return GuardSpec.model_fields[name].alias or name


class ResolvedGuard(StanchModel):
    """The guard a Mitigation runs under: every field set (the Mitigation's guard over the policy's
    ``guardDefaults`` over :data:`BUILTIN_GUARD`). Durations keep the text they were written in (for
    status and messages) and are read as ``timedelta`` through the ``*_period`` properties."""

    signals: Annotated[list[SignalRef], Field(min_length=1, max_length=8)]
    """Signals compared against the baseline."""
    baseline_window: Duration
    """How far back before the action the baseline is taken."""
    bake_time: Duration
    """How long the change is watched before it is declared Healthy."""
    interval: Duration
    """Time between guard checks."""
    tolerance: Annotated[float, Field(ge=0, le=10)]
    """Relative degradation versus the baseline allowed before a check fails."""
    failure_limit: Annotated[int, Field(ge=1, le=100)]
    """Consecutive failed checks that make the verdict Worse."""
    settle_time: Duration
    """How long after new pods are available latency and saturation may still settle."""
    success_criteria: SuccessCriteria | None = None
    """Optional early-success rule."""
    no_data: NoDataAction
    """What to do when a signal has no data."""
    baseline_no_data: BaselineNoDataAction
    """What to do when the baseline cannot judge a guarded signal."""
    inconclusive: InconclusiveAction
    """What to do when the bake ends Inconclusive."""

    @model_validator(mode="after")
    def _rules(self) -> ResolvedGuard:
        problems = _rule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def of(cls, guard: GuardSpec, *layers: GuardSpec) -> ResolvedGuard:
        """``guard`` (the Mitigation's) over each of ``layers`` (policies' ``guardDefaults``) in turn
        over :data:`BUILTIN_GUARD`; see :meth:`resolve`."""
        return cls.resolve(
            GuardLayer("spec.guard", guard), *(GuardLayer("policy spec.guardDefaults", g) for g in layers)
        )

    @classmethod
    def resolve(cls, *layers: GuardLayer) -> ResolvedGuard:
        """Each field from the first layer that sets it, else :data:`BUILTIN_GUARD`'s, with
        :data:`DEFAULT_GUARD_SIGNALS` when nobody named any. Raises :class:`GuardError` (and nothing
        else) when the result breaks a rule."""
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for name in GuardSpec.model_fields:
            for layer in layers:
                value = getattr(layer.guard, name)
                if value is not None and value != []:
                    values[name], origin[name] = value, f"{layer.source}.{_alias(name)}"
                    break
            else:
                values[name], origin[name] = getattr(BUILTIN_GUARD, name), BUILTIN_SOURCE
        if not values["signals"]:
            values["signals"] = [SignalRef(name=n) for n in DEFAULT_GUARD_SIGNALS]
        problem = _merged_problem(values, origin, layers[0].source if layers else "spec.guard")
        if problem is not None:
            raise GuardError(problem)
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:  # every rule is checked above; this names anything missed
            field = error_paths(exc)[0] if exc.errors() else "guard"
            raise GuardError(GuardProblem(field, f"guard: {exc.errors()[0]['msg']} ({field})")) from exc

    @property
    def baseline_period(self) -> timedelta:
        return parse_duration(self.baseline_window)

    @property
    def bake_period(self) -> timedelta:
        return parse_duration(self.bake_time)

    @property
    def check_period(self) -> timedelta:
        return parse_duration(self.interval)

    @property
    def settle_period(self) -> timedelta:
        return parse_duration(self.settle_time)


def _merged_problem(values: dict[str, Any], origin: dict[str, str], first: str) -> GuardProblem | None:
    """The first rule the merged guard breaks, told with where each value came from; a fix for a
    built-in value goes in ``first``, the source of the layer that wins over every other."""
    periods: dict[str, timedelta] = {}
    for bounds in DURATION_BOUNDS:
        name = bounds.name
        try:
            periods[name] = parse_duration(values[name])
        except (TypeError, ValueError):
            return GuardProblem(
                bounds.alias,
                f"guard {bounds.alias} {values[name]!r} ({origin[name]}) is not a duration;"
                " write it like 30s, 5m or 1h30m",
            )
    for bounds in DURATION_BOUNDS:
        # Admission enforces these per layer; a layer stored before a bound existed still reaches here.
        if not bounds.low <= periods[bounds.name] <= bounds.high:
            return GuardProblem(
                bounds.alias,
                f"guard {bounds.alias} {values[bounds.name]} ({origin[bounds.name]}) is not between"
                f" {bounds.range}: {bounds.why}; set {_fix(origin[bounds.name], bounds.alias, first)} to"
                f" a duration from {format_duration(bounds.low)} to {format_duration(bounds.high)}",
            )
    if periods["bake_time"] < periods["interval"]:
        return GuardProblem(
            "bakeTime",
            f"guard bakeTime {values['bake_time']} ({origin['bake_time']}) is shorter than interval"
            f" {values['interval']} ({origin['interval']}): the bake must last at least one check;"
            f" set {_fix(origin['bake_time'], 'bakeTime', first)} to {values['interval']} or more, or"
            f" {_fix(origin['interval'], 'interval', first)} to {values['bake_time']} or less",
        )
    return None


def _fix(origin: str, field: str, first: str) -> str:
    """Where to write the fix: the path the value came from, or the first layer (the Mitigation's own
    guard, or the policy's guardDefaults when a policy is checked on its own) when it came from the
    built-in defaults, since that layer wins over every default."""
    return f"{first}.{field}" if origin == BUILTIN_SOURCE else origin


DEFAULT_GUARD = ResolvedGuard.of(GuardSpec())
"""The guard of a Mitigation that sets nothing under a policy that sets nothing."""


def guard_layers(
    spec_guard: GuardSpec, defaults: GuardSpec | None, policy: str | None
) -> Sequence[GuardLayer]:
    """The Mitigation's guard over its deciding policy's ``guardDefaults`` (when there is one)."""
    layers = [GuardLayer("spec.guard", spec_guard)]
    if defaults is not None:
        layers.append(GuardLayer(f"{policy or 'the deciding policy'} spec.guardDefaults", defaults))
    return layers
