"""Hand-built evidence for analysis and report tests: a 30-minute window sampled every 30 s."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from stanch.core.investigation.analysis import Findings, investigate
from stanch.core.models import (
    Evidence,
    IncidentSpec,
    MetricPoint,
    MetricSummary,
    PodGroup,
    ReasonCount,
    RolloutRevision,
    TargetRef,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)
SAMPLES = 60
NOW = T0 + SAMPLES * STEP
ONSET_INDEX = 30
ONSET = T0 + ONSET_INDEX * STEP


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def points(values: Sequence[float], start: datetime = T0) -> list[MetricPoint]:
    return [MetricPoint(time=start + i * STEP, value=v) for i, v in enumerate(values)]


def noisy(level: float, n: int, sigma: float, rng: random.Random) -> list[float]:
    return [max(0.0, level + rng.gauss(0, sigma)) for _ in range(n)]


def step(
    before: float, after: float, *, at_index: int = ONSET_INDEX, sigma: float = 0.0, seed: int = 1
) -> list[float]:
    rng = random.Random(seed)
    return noisy(before, at_index, sigma, rng) + noisy(after, SAMPLES - at_index, sigma, rng)


def flat(level: float, *, sigma: float = 0.0, seed: int = 1) -> list[float]:
    return noisy(level, SAMPLES, sigma, random.Random(seed))


def metric(signal: str, values: Sequence[float], scope: str = "overall") -> MetricSummary:
    pts = points(values)
    return MetricSummary(signal=signal, scope=scope, points=pts, now=values[-1], peak=max(values))


def scoped(signal: str, scope: str, now: float, before: float | None = None) -> MetricSummary:
    return MetricSummary(signal=signal, scope=scope, now=now, before=before, peak=now)


def revision(
    number: int,
    created_minutes: float,
    image: str,
    *,
    changes: Sequence[str] = (),
    current: bool = False,
    replicas: int = 3,
) -> RolloutRevision:
    return RolloutRevision(
        revision=number,
        replica_set=f"checkout-{number}abc",
        created_at=at(created_minutes),
        images=[image],
        changes=list(changes),
        current=current,
        replicas=replicas,
        ready_replicas=replicas,
    )


def two_revisions(new_at_minutes: float = 11.0) -> list[RolloutRevision]:
    """Revision 6 (old, api:1.4.2) and revision 7 (api:1.5.0), deployed at ``new_at_minutes``."""
    return [
        revision(7, new_at_minutes, "api:1.5.0", changes=["image api:1.4.2 → api:1.5.0"], current=True),
        revision(6, -600, "api:1.4.2", replicas=0),
    ]


def group(key: str, total: int, ready: int, restarts: int = 0, **reasons: int) -> PodGroup:
    return PodGroup(
        key=key,
        total=total,
        ready=ready,
        restarts=restarts,
        reasons=[ReasonCount(reason=r, count=c) for r, c in reasons.items()],
    )


def spec(**kw: Any) -> IncidentSpec:
    return IncidentSpec(target=TargetRef(name="checkout"), **kw)


def run(evidence: Evidence, **kw: Any) -> Findings:
    incident_spec = kw.pop("incident_spec", None) or spec()
    kw.setdefault("now", NOW)
    kw.setdefault("created_at", NOW)
    return investigate(incident_spec, evidence, **kw)
