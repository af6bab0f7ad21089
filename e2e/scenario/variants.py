"""Variants of a scenario: the same incident with jittered timings, traffic and noise.

A rule tuned to one scenario's timing (an Incident filed exactly 25 s after a rollout, 60 requests/s)
passes that scenario and fails the next real incident. A variant moves every such number a little,
deterministically from its seed, so a failure can be replayed (``--variant-seed``) and a fix checked
against the very variant that failed. The expectations never change: they are the same incident.

What moves, per variant (one random draw each, from ``Random(f"{seed}:{scenario name}")``):

- the warm-up, times 1.0 to 1.3 (never shorter: baselines need their length);
- the first step's time and every gap between consecutive distinct step times, times 0.8 to 1.25 each
  (steps at the same time stay together, and the order never changes);
- every traffic figure of the scenario (``world.traffic`` and ``traffic`` steps), times 0.85 to 1.15
  (a surge stays a surge of the same size relative to its baseline);
- the simulator's noise in the scenario's namespace (world key ``seed.{namespace}``).
"""

from __future__ import annotations

import random
from typing import Any

from e2e.scenario.format import NAMESPACE_PLACEHOLDER, Scenario, seconds

WARMUP = (1.0, 1.3)
GAP = (0.8, 1.25)
TRAFFIC = (0.85, 1.15)


def vary(sc: Scenario, seed: int) -> Scenario:
    rng = random.Random(f"{seed}:{sc.name}")
    data: dict[str, Any] = sc.model_dump(by_alias=True, exclude_unset=True, mode="json")
    world = data["world"]
    world["warmup"] = _ms(seconds(sc.world.warmup) * rng.uniform(*WARMUP))
    traffic = rng.uniform(*TRAFFIC)
    if "traffic" in world:
        world["traffic"] = {w: round(rps * traffic, 1) for w, rps in world["traffic"].items()}
    world["worldKeys"] = {**world.get("worldKeys", {}), f"seed.{NAMESPACE_PLACEHOLDER}": str(seed)}

    times = sorted({seconds(s.at) for s in sc.steps})
    moved: dict[float, float] = {}
    previous_old = previous_new = 0.0
    for t in times:
        previous_new += (t - previous_old) * rng.uniform(*GAP)
        previous_old = t
        moved[t] = previous_new
    for step, original in zip(data["steps"], sc.steps, strict=True):
        step["at"] = _ms(moved[seconds(original.at)])
        if "traffic" in step:
            step["traffic"] = {w: round(rps * traffic, 1) for w, rps in step["traffic"].items()}
    return Scenario.model_validate(data)


def _ms(value: float) -> str:
    return f"{round(value * 1000)}ms"
