"""Guard checks and verdicts: is the workload worse since the mitigation, with the numbers that say so.

One check per interval compares each signal's points from that interval with the baseline window:

- **Comparison gate**: the check fails for a signal when the one-sided Mann-Whitney U test says the
  interval is worse than the baseline (``p < alpha``) *and* the median moved the wrong way by more
  than the minimum effect, ``max(tolerance * |baseline median|, floor of the signal kind,
  NOISE_MULTIPLE * robust sd of the baseline)``. The effect floor keeps a statistically significant
  but tiny shift (0.1 % → 0.2 % errors) from reverting a good mitigation; the rank test keeps a
  large but noisy wobble from doing so. The noise term matters because every check is compared with
  the *same* baseline: when the baseline's own noise is wider than the tolerance, a baseline that
  happened to sample low makes every later check look worse, and consecutive failures stop being
  independent (property tests found exactly this at 25 % relative noise).
- **SLO gate**: when the template has a ``threshold``, the check fails when the interval's median is
  beyond it *and the baseline was not*: the action pushed the signal over the SLO. A signal that was
  already beyond the SLO before the action (the incident itself) is judged by the comparison only,
  otherwise a mitigation that did not help yet would be reverted for the incident's own errors.
- **Settling**: while the change's new pods start, and for ``settleTime`` after they are all
  available, a latency or saturation failure is recorded (``settling``) but not counted; a check
  with nothing else wrong is ``Settling`` (see :mod:`.settling`).
- A signal with no points is **no data**. A check with a failing signal is ``Fail``; otherwise a
  check with any no-data signal is ``NoData`` — never ``Pass`` (design invariant 5).

Verdicts: ``Worse`` after ``failureLimit`` checks in a row failed *on the same signal* (noise rarely
fails twice running on one signal, and flukes on two signals are not one regression) — unless another
signal is *better* by more than its minimum effect at the same time: that is a trade-off (errors
cured, latency up during the rollout), and reverting it would restore the incident, so the bake's
end decides it;
``Healthy`` early when the success criteria hold for their number of checks, or at the end of the bake
when the last check passed; ``Inconclusive`` when the bake ends on a failed check below the limit;
``NoData`` when it ends (or, with ``noData: Revert``, runs ``failureLimit`` checks) without data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from math import comb
from statistics import median

from stanch.core.guard.ranks import mann_whitney_greater
from stanch.core.guard.settling import SETTLING_KINDS
from stanch.core.models import (
    CheckVerdict,
    Direction,
    InconclusiveAction,
    NoDataAction,
    Observation,
    ResolvedGuard,
    SignalKind,
    SignalTemplate,
    SignalValue,
    Verdict,
    VerdictNumber,
    VerdictResult,
)

DEFAULT_ALPHA = 0.005
"""Significance of the rank test. Conservative on purpose: with two failed checks in a row required,
the false-revert rate on noise is far below one in ten thousand bakes."""

EFFECT_FLOORS: Mapping[SignalKind | None, float] = {
    SignalKind.ERROR_RATIO: 0.005,  # half a percentage point of requests
    SignalKind.LATENCY: 0.005,  # 5 ms, templates report seconds
    SignalKind.SATURATION: 0.02,  # two points of a 0..1 utilisation
    SignalKind.RESTARTS: 1.0,  # one more restart
    SignalKind.THROUGHPUT: 0.0,  # relative tolerance only: units vary
    None: 0.0,
}
"""Smallest absolute move worth reverting for, by signal kind."""

NOISE_MULTIPLE = 3.0
"""The effect must also exceed this many robust standard deviations (1.4826 * MAD) of the baseline."""


def robust_sd(values: Sequence[float]) -> float:
    """1.4826 * the median absolute deviation: the standard deviation for normal noise, unmoved by
    a few outliers."""
    if len(values) < 2:
        return 0.0
    centre = median(values)
    return 1.4826 * median(abs(v - centre) for v in values)


@dataclass(frozen=True)
class SignalSpec:
    """How to read one signal."""

    name: str
    kind: SignalKind | None = None
    higher_is_worse: bool = True
    threshold: float | None = None

    @classmethod
    def of(cls, name: str, template: SignalTemplate | None) -> SignalSpec:
        """Direction from the template when it says so explicitly, else from its kind: throughput
        falling is bad, everything else rising is bad. No template: rising is bad, no SLO gate."""
        if template is None:
            return cls(name=name)
        if "direction" in template.model_fields_set:
            higher_is_worse = template.direction == Direction.LOWER_IS_BETTER
        else:
            higher_is_worse = template.kind != SignalKind.THROUGHPUT
        return cls(
            name=name, kind=template.kind, higher_is_worse=higher_is_worse, threshold=template.threshold
        )


@dataclass(frozen=True)
class SignalCheck:
    """One signal in one check, with every number that decided it."""

    signal: str
    baseline_median: float | None
    observed_median: float | None
    min_effect: float | None
    p_value: float | None
    compare_failed: bool
    slo_failed: bool
    no_data: bool
    note: str
    improved: bool = False
    """Better than the baseline by the minimum effect."""
    kind: SignalKind | None = None
    settling: bool = False
    """Worse, but the change's pods are still settling and this kind of signal moves while they do."""

    @property
    def failed(self) -> bool:
        return self.compare_failed or self.slo_failed

    def number(self, *, threshold: float | None) -> VerdictNumber:
        return VerdictNumber(
            signal=self.signal,
            baseline=self.baseline_median,
            observed=self.observed_median,
            threshold=threshold,
            test=self.note[:256],
        )


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.4g}"


def check_signal(
    spec: SignalSpec,
    baseline: Sequence[float],
    points: Sequence[float] | None,
    *,
    tolerance: float,
    alpha: float = DEFAULT_ALPHA,
) -> SignalCheck:
    """Compare one signal's interval points with its baseline points."""
    if not points:
        return SignalCheck(spec.name, None, None, None, None, False, False, True, f"{spec.name}: no data")
    sign = 1.0 if spec.higher_is_worse else -1.0
    observed = median(points)
    slo_failed = False
    slo_note = ""
    if spec.threshold is not None:
        after_beyond = sign * (observed - spec.threshold) > 0
        before_beyond = bool(baseline) and sign * (median(baseline) - spec.threshold) > 0
        slo_failed = after_beyond and not before_beyond
        relation = ">" if spec.higher_is_worse else "<"
        slo_note = (
            f"; SLO {relation} {_fmt(spec.threshold)} "
            + ("breached" if after_beyond else "met")
            + (" (already breached in baseline)" if after_beyond and before_beyond else "")
        )
    if not baseline:
        note = f"{spec.name}: observed {_fmt(observed)}, no baseline to compare{slo_note}"
        # Without a baseline only an SLO gate can judge; with no gate either, this is no data.
        return SignalCheck(
            spec.name, None, observed, None, None, False, slo_failed, spec.threshold is None, note
        )
    base = median(baseline)
    test = mann_whitney_greater([sign * b for b in baseline], [sign * p for p in points])
    effect = sign * (observed - base)
    floor = EFFECT_FLOORS.get(spec.kind, 0.0)
    min_effect = max(tolerance * abs(base), floor, NOISE_MULTIPLE * robust_sd(baseline))
    smallest_p = 1.0 / comb(len(baseline) + len(points), len(points))
    if smallest_p >= alpha:
        # Too few points for the rank test ever to reach alpha: its silence would read as "healthy"
        # while the error ratio goes 0 → 0.5. Judge on the strongest evidence such samples can
        # give instead — every point past the worst of the baseline — plus the same minimum effect.
        separated = min(sign * p for p in points) > max(sign * b for b in baseline)
        # A handful of baseline points understates its own spread; demand twice its full range too.
        spread = max(baseline) - min(baseline)
        compare_failed = separated and effect > max(min_effect, 2 * spread)
        improved = max(sign * p for p in points) < min(sign * b for b in baseline) and -effect > max(
            min_effect, 2 * spread
        )
        method = (
            f"too few points for the rank test (n={len(baseline)}/{len(points)}, smallest p "
            f"{smallest_p:.2g} ≥ alpha {alpha:g}): judged on full separation, "
            + ("separated" if separated else "not separated")
        )
    else:
        compare_failed = test.p_value < alpha and effect > min_effect
        # Better by the minimum effect (which includes 3 robust sds of the baseline's noise), without
        # a significance test: a trade-off only defers the decision to the bake's end, while a wrong
        # revert can restore the outage. A scale 0 → 3 was reverted to 0 replicas for the new pods'
        # cold-start latency while the error ratio fell from 1.0 to 0.77: four points per check
        # against a baseline of near-identical values do not reach significance that early.
        improved = -effect > min_effect
        method = (
            f"mann-whitney U={test.u:.1f} p={test.p_value:.2g} alpha={alpha:g} "
            f"n={test.n_baseline}/{test.n_after}"
        )
    direction = "worse" if effect > 0 else "better or equal"
    note = (
        f"{spec.name}: median {_fmt(base)} → {_fmt(observed)} ({direction} by {_fmt(abs(effect))}, "
        f"min effect {_fmt(min_effect)}); {method}{slo_note}"
    )
    return SignalCheck(
        spec.name,
        base,
        observed,
        min_effect,
        test.p_value,
        compare_failed,
        slo_failed,
        False,
        note,
        improved,
        spec.kind,
    )


@dataclass(frozen=True)
class CheckResult:
    """One guard check: the status ``observations[]`` entry and the per-signal numbers."""

    observation: Observation
    signals: tuple[SignalCheck, ...]


def run_check(
    specs: Sequence[SignalSpec],
    baseline: Mapping[str, Sequence[float]],
    sample: Mapping[str, Sequence[float] | None],
    *,
    at: datetime,
    previous: Sequence[Observation],
    tolerance: float,
    alpha: float = DEFAULT_ALPHA,
    settling: str | None = None,
) -> CheckResult:
    """Run one check over every guarded signal. ``previous`` is the status' check history;
    ``settling`` says why latency and saturation are still settling (see :mod:`.settling`)."""
    checks = tuple(
        check_signal(
            spec, baseline.get(spec.name, ()), sample.get(spec.name), tolerance=tolerance, alpha=alpha
        )
        for spec in specs
    )
    if settling is not None:
        checks = tuple(_excused(c) if c.kind in SETTLING_KINDS else c for c in checks)
    if not checks:
        verdict = CheckVerdict.NO_DATA
    elif any(c.failed for c in checks):
        verdict = CheckVerdict.FAIL
    elif any(c.no_data for c in checks):
        verdict = CheckVerdict.NO_DATA
    elif any(c.settling for c in checks):
        verdict = CheckVerdict.SETTLING
    else:
        verdict = CheckVerdict.PASS
    # Failures count per signal: two flukes on two different signals are not a regression.
    consecutive = max((_signal_streak(previous, c.signal) + 1 for c in checks if c.failed), default=0)
    note = "; ".join(c.note for c in checks) or "no signals configured"
    if verdict == CheckVerdict.SETTLING:
        note = f"settling, {settling}: {note}"
    observation = Observation(
        time=at,
        values=[
            SignalValue(
                signal=c.signal,
                value=c.observed_median,
                samples=len(sample.get(c.signal) or ()),
                error=None if not c.no_data else "no data",
                failed=c.failed,
                settling=c.settling or None,
            )
            for c in checks
        ],
        check=verdict,
        consecutive_failures=consecutive,
        note=note[:512],
    )
    return CheckResult(observation=observation, signals=checks)


def _excused(check: SignalCheck) -> SignalCheck:
    """A latency or saturation failure while the change's pods are settling: recorded, not counted."""
    if not check.failed:
        return check
    return replace(check, compare_failed=False, slo_failed=False, settling=True)


def _signal_streak(history: Sequence[Observation], signal: str) -> int:
    """Checks in a row, newest first, in which ``signal`` failed."""
    n = 0
    for obs in reversed(history):
        if not any(v.signal == signal and v.failed for v in obs.values):
            break
        n += 1
    return n


class GuardAction(StrEnum):
    """What the machine should do after a check."""

    CONTINUE = "Continue"
    """Keep baking."""
    SUCCEED = "Succeed"
    """Keep the change; the mitigation succeeded."""
    REVERT = "Revert"
    """Undo the change now."""
    HOLD = "Hold"
    """Keep the change, keep checking, and do not call it a success (needs a human or more data)."""


@dataclass(frozen=True)
class Judgement:
    action: GuardAction
    verdict: Verdict | None
    """Set whenever the action is not Continue."""


def _streak(history: Sequence[Observation], check: CheckVerdict) -> int:
    n = 0
    for obs in reversed(history):
        if obs.check != check:
            break
        n += 1
    return n


def _success_streak(history: Sequence[Observation], signal: str, below: float) -> int:
    n = 0
    for obs in reversed(history):
        value = next((v.value for v in obs.values if v.signal == signal), None)
        if obs.check in (CheckVerdict.FAIL, CheckVerdict.SETTLING) or value is None or not value < below:
            break
        n += 1
    return n


def trade_off(checks: Sequence[SignalCheck]) -> str | None:
    """Why this check is a trade-off rather than a regression, or None.

    A mitigation that took the error ratio from 40 % to 0 while p99 latency rose 30 % during its
    rollout must not be reverted for the latency: the revert would restore the outage. When some
    signal is better than the baseline by its minimum effect and others are worse, reverting is no longer
    "undo the harm" but a judgement call, so the guard does not revert on its own (the bake's end
    decides, and ``inconclusive`` says what then). Never when throughput is among the worse
    signals: requests not being served also make ratios look better.
    """
    worse = [c for c in checks if c.failed]
    better = [c for c in checks if c.improved and not c.failed]
    if not worse or not better:
        return None
    if any(c.kind is SignalKind.THROUGHPUT for c in worse):
        return None
    names = ", ".join(f"{c.signal} {_fmt(c.baseline_median)} → {_fmt(c.observed_median)}" for c in better)
    hurt = ", ".join(f"{c.signal} {_fmt(c.baseline_median)} → {_fmt(c.observed_median)}" for c in worse)
    return f"trade-off: better {names}; worse {hurt}"


def judge(
    history: Sequence[Observation],
    latest: CheckResult,
    *,
    guard: ResolvedGuard,
    bake_over: bool,
    at: datetime,
    thresholds: Mapping[str, float | None] | None = None,
) -> Judgement:
    """Decide after a check. ``history`` includes ``latest.observation`` as its last entry."""
    failure_limit = guard.failure_limit
    no_data = guard.no_data
    inconclusive = guard.inconclusive
    numbers = [c.number(threshold=(thresholds or {}).get(c.signal)) for c in latest.signals]
    checks = len(history)
    failed = sum(1 for o in history if o.check == CheckVerdict.FAIL)
    last = latest.observation

    def verdict(result: VerdictResult, reason: str) -> Verdict:
        return Verdict(
            result=result,
            reason=reason[:1024],
            decided_at=at,
            checks=checks,
            failed_checks=failed,
            numbers=numbers[:10],
        )

    trade = trade_off(latest.signals)
    if last.check == CheckVerdict.FAIL and last.consecutive_failures >= failure_limit:
        if trade is None:
            reason = (
                f"{last.consecutive_failures} failed checks in a row (failureLimit {failure_limit}, "
                f"tolerance {guard.tolerance:g}): {last.note}"
            )
            return Judgement(GuardAction.REVERT, verdict(VerdictResult.WORSE, reason))
        if not bake_over:
            # Reverting would bring back what the mitigation cured; let the bake show whether the
            # regression settles (a rollout's own transient often does) and judge at its end.
            return Judgement(GuardAction.CONTINUE, None)
    if last.check == CheckVerdict.NO_DATA:
        streak = _streak(history, CheckVerdict.NO_DATA)
        if no_data == NoDataAction.REVERT and streak >= failure_limit:
            reason = f"no data for {streak} checks (failureLimit {failure_limit}); noData=Revert: {last.note}"
            return Judgement(GuardAction.REVERT, verdict(VerdictResult.NO_DATA, reason))
        if bake_over:
            reason = f"bake ended without data on the last check; noData={no_data.value}: {last.note}"
            action = GuardAction.REVERT if no_data == NoDataAction.REVERT else GuardAction.HOLD
            return Judgement(action, verdict(VerdictResult.NO_DATA, reason))
        return Judgement(GuardAction.CONTINUE, None)
    criteria = guard.success_criteria
    if criteria is not None and last.check == CheckVerdict.PASS:
        streak = _success_streak(history, criteria.signal, criteria.below)
        if streak >= criteria.checks:
            reason = (
                f"success criteria met: {criteria.signal} below {criteria.below:g} for {streak} "
                f"consecutive checks (needs {criteria.checks}): {last.note}"
            )
            return Judgement(GuardAction.SUCCEED, verdict(VerdictResult.HEALTHY, reason))
    if not bake_over:
        return Judgement(GuardAction.CONTINUE, None)
    if last.check == CheckVerdict.PASS:
        reason = f"bake complete, {checks} checks, last check passed: {last.note}"
        return Judgement(GuardAction.SUCCEED, verdict(VerdictResult.HEALTHY, reason))
    if last.check == CheckVerdict.SETTLING:
        ended = "bake ended while the new pods were still settling"
    else:
        ended = (
            f"bake ended on a failed check ({last.consecutive_failures} in a row, "
            f"failureLimit {failure_limit})"
        )
    reason = f"{ended}{'; ' + trade if trade else ''}; inconclusive={inconclusive.value}: {last.note}"
    action = {
        InconclusiveAction.HOLD: GuardAction.HOLD,
        InconclusiveAction.REVERT: GuardAction.REVERT,
        InconclusiveAction.KEEP: GuardAction.SUCCEED,
    }[inconclusive]
    return Judgement(action, verdict(VerdictResult.INCONCLUSIVE, reason))
