"""Onset detection: when did the error (or latency) signal leave its normal level?

"First value above a threshold" is wrong both ways: it fires on noise, and on a ramp — which is what
a 5-minute ``rate()`` makes of every real step — it reports the moment the ramp crosses the line
rather than the moment the trouble began. So the detector works in two stages:

1. **Detect** with binary segmentation into piecewise-constant segments. A split is kept only when
   the two sides' means differ by more than :data:`Z_SPLIT` standard errors, with the noise sigma
   estimated robustly from successive differences (steps and trends barely move it). A shift then
   counts only if a later segment sits above the first one both significantly *and* by a minimum
   effect size that matters operationally (:class:`EffectFloor`): half a percent of errors, 50 ms.
2. **Locate** by least squares over a flat → linear rise → flat model on the stretch from the
   baseline to the first clearly elevated segment, searching every (rise start, rise end) pair. A
   step is the special case of a one-sample rise, so steps and ramps share one estimator, and the
   onset is the first sample of the rise.

Only shifts in the unhealthy direction (up, for errors and latency) are onsets: a drop is recovery.
Pure functions over at most a few hundred samples; no numpy needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from stanch.core.investigation.analysis.series import ERROR_RATIO, LATENCY, THROUGHPUT, mean, noise_sigma
from stanch.core.models import MetricPoint

MIN_POINTS = 8
"""Fewer samples than this cannot separate a change from noise."""
MIN_SEGMENT = 2
"""A segment shorter than this is an outlier, not a level."""
MIN_BASELINE = 3
"""Samples of normal behaviour needed before an onset can be placed."""
MIN_ELEVATED = 3
"""Samples a new level must last to count: two high samples at the end of a window are noise as
often as they are an incident."""
Z_RANK = 3.0
"""Rank-test z-score (Mann-Whitney) the elevated segment must reach against the baseline as well:
error ratios are skewed and clipped at zero, and a Gaussian test alone calls three unlucky samples
at the end of a quiet series an incident."""
Z_SPLIT = 5.0
"""Standard errors between two segment means before they count as different levels. High on
purpose: with ~60 samples there are ~60 candidate split points, and a false onset sends the
engineer after the wrong deploy."""


@dataclass(frozen=True)
class EffectFloor:
    """The smallest change worth calling an incident: ``absolute`` or ``relative`` x baseline."""

    absolute: float
    relative: float

    def of(self, baseline: float) -> float:
        return max(self.absolute, self.relative * abs(baseline))


FLOORS: dict[str, EffectFloor] = {
    ERROR_RATIO: EffectFloor(absolute=0.005, relative=0.5),
    LATENCY: EffectFloor(absolute=0.05, relative=0.25),
    THROUGHPUT: EffectFloor(absolute=0.5, relative=0.3),
}
DEFAULT_FLOOR = EffectFloor(absolute=0.0, relative=0.25)


@dataclass(frozen=True)
class Shift:
    """An upward level shift: where the rise starts and ends, and the levels around it."""

    start: int
    """Index of the first sample of the rise (the onset)."""
    end: int
    """Index of the first sample at the new level (``start`` for a step)."""
    start_time: datetime
    baseline: float
    """Mean before the rise."""
    level: float
    """Highest segment mean after the rise."""
    sigma: float
    """Noise sigma used for the decision."""


def _segments(values: Sequence[float], sigma: float) -> list[tuple[int, int]]:
    """Binary segmentation into half-open ``(start, end)`` index ranges of constant mean."""
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    threshold = (Z_SPLIT * sigma) ** 2
    out: list[tuple[int, int]] = []
    stack = [(0, len(values))]
    while stack:
        s, e = stack.pop()
        best_t2, best_k = -1.0, -1
        for k in range(s + MIN_SEGMENT, e - MIN_SEGMENT + 1):
            nl, nr = k - s, e - k
            diff = (prefix[k] - prefix[s]) / nl - (prefix[e] - prefix[k]) / nr
            t2 = diff * diff / (1 / nl + 1 / nr)
            if t2 > best_t2:
                best_t2, best_k = t2, k
        if best_k > 0 and best_t2 > threshold:
            stack += [(s, best_k), (best_k, e)]
        else:
            out.append((s, e))
    return sorted(out)


def rank_z(baseline: Sequence[float], elevated: Sequence[float]) -> float:
    """Mann-Whitney z-score (normal approximation, ties count half) that ``elevated`` is higher."""
    n1, n2 = len(baseline), len(elevated)
    u = sum(1.0 if e > b else 0.5 if e == b else 0.0 for e in elevated for b in baseline)
    sd = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return (u - n1 * n2 / 2) / sd if sd else 0.0


def _welch_se(a: Sequence[float], b: Sequence[float]) -> float:
    """Standard error of the difference of means with each side's own spread. Half-normal noise
    (an error ratio near zero) clusters by chance into a short run of higher values; a pooled sigma
    below the true spread calls that run a level, each side's own variance does not."""

    def var(xs: Sequence[float]) -> float:
        m = mean(xs)
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0

    return math.sqrt(var(a) / len(a) + var(b) / len(b))


def _pooled_sigma(values: Sequence[float], segments: Sequence[tuple[int, int]]) -> float:
    """Noise sigma pooled over the segments (each around its own mean)."""
    sse = 0.0
    for s, e in segments:
        m = mean(values[s:e])
        sse += sum((v - m) ** 2 for v in values[s:e])
    dof = len(values) - len(segments)
    return math.sqrt(sse / dof) if dof > 0 else 0.0


def _locate(values: Sequence[float], lo: int, a_max: int, hi: int, sigma: float) -> tuple[int, int]:
    """Least-squares fit of flat → linear rise → flat over ``values[lo:hi]``; returns the best
    ``(a, b)``: the last flat sample and the first sample at the new level.

    A ramp has one parameter more than a step, so it must beat the best step by a BIC-like margin;
    otherwise noise around a step is fitted as a short ramp that starts early."""
    best = (math.inf, a_max, a_max + 1)
    best_step = (math.inf, a_max, a_max + 1)
    n = hi - lo
    sy = sum(values[lo:hi])
    syy = sum(v * v for v in values[lo:hi])
    tail_count = [0] * (hi + 1)
    tail_sum = [0.0] * (hi + 1)
    for i in range(hi - 1, lo - 1, -1):
        tail_count[i] = tail_count[i + 1] + 1
        tail_sum[i] = tail_sum[i + 1] + values[i]
    for a in range(lo + MIN_BASELINE - 1, a_max + 1):
        for b in range(a + 1, hi):
            sw = float(tail_count[b])
            sww = float(tail_count[b])
            swy = tail_sum[b]
            width = b - a
            for i in range(a + 1, b):
                w = (i - a) / width
                sw += w
                sww += w * w
                swy += w * values[i]
            denom = n * sww - sw * sw
            if denom <= 0:
                continue
            d = (n * swy - sw * sy) / denom
            c = (sy - d * sw) / n
            sse = syy - c * sy - d * swy
            if sse < best[0] - 1e-12:
                best = (sse, a, b)
            if b == a + 1 and sse < best_step[0] - 1e-12:
                best_step = (sse, a, b)
    if best_step[0] - best[0] <= 2 * sigma * sigma * math.log(n):
        best = best_step
    return best[1], best[2]


def find_shift(points: Sequence[MetricPoint], floor: EffectFloor = DEFAULT_FLOOR) -> Shift | None:
    """The first significant upward level shift in a series (oldest first), or ``None``."""
    if len(points) < MIN_POINTS:
        return None
    values = [p.value for p in points]
    scale = max(abs(v) for v in values) or 1.0
    # Flat, quantised series (an error ratio of exactly 0) have no measurable noise; a floor keeps
    # the test from calling every wiggle significant.
    sigma = max(noise_sigma(values), floor.absolute / 4, 1e-9 * scale)
    segments = _segments(values, sigma)
    # Second opinion on the noise: the spread inside the segments just found. Skewed series (an
    # error ratio clipped at zero) fool the difference-based estimate; this one they do not.
    pooled = _pooled_sigma(values, segments)
    if pooled > sigma:
        sigma = pooled
        segments = _segments(values, sigma)
    if len(segments) < 2 or segments[0][1] - segments[0][0] < MIN_BASELINE:
        return None
    means = [mean(values[s:e]) for s, e in segments]
    base_start, base_end = segments[0]
    base_mean = means[0]
    elevated = None
    for j in range(1, len(segments)):
        s, e = segments[j]
        se = sigma * math.sqrt(1 / (base_end - base_start) + 1 / (e - s))
        effect = means[j] - base_mean
        if (
            e - s >= MIN_ELEVATED
            and effect >= floor.of(base_mean)
            and effect >= Z_SPLIT * se
            and rank_z(values[base_start:base_end], values[s:e]) >= Z_RANK
            and effect >= Z_SPLIT * _welch_se(values[base_start:base_end], values[s:e])
        ):
            elevated = j
            break
    if elevated is None:
        return None
    # Walk back over the staircase a ramp is cut into: every step above the baseline is part of it.
    first = elevated
    while first > 1 and means[first - 1] > base_mean + sigma:
        first -= 1
    a, b = _locate(values, base_start, segments[first][0] - 1, segments[elevated][1], sigma)
    start = min(a + 1, segments[first][0])
    return Shift(
        start=start,
        end=max(b, start),
        start_time=points[start].time,
        baseline=mean(values[:start]),
        level=max(means[elevated:]),
        sigma=sigma,
    )


def floor_for(signal: str) -> EffectFloor:
    return FLOORS.get(signal, DEFAULT_FLOOR)
