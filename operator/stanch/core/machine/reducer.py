"""The mitigation state machine as a reducer: ``reduce(state, observation, now=...) -> Transition``."""

from __future__ import annotations

from datetime import datetime

from stanch.core.machine.observations import Observation
from stanch.core.machine.state import MachineState, Transition


def reduce(state: MachineState, observation: Observation, *, now: datetime) -> Transition:
    """Decide what happens next. Pure: no I/O, time comes in as ``now``."""
    raise NotImplementedError("work in progress: the API is fixed, the transitions land next")
