"""An operator that dies at the end of a Mitigation: the finishing status is persisted, and the
process exits before the effects it carries (the unlock, the auto-sync restore) ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from stanch.core.machine.reducer import reduce
from stanch.core.machine.state import MachineState, Transition

from . import test_machine
from .test_machine import Cluster


class CrashError(Exception):
    """The operator dies right after persisting the finishing status, before its effects ran."""


@dataclass
class CrashingCluster(Cluster):
    """A cluster whose first write of one of ``crash_on``'s steps kills the operator instead."""

    crash_on: tuple[str, ...] = ("Unlock",)

    def run(self, effect: Any) -> Any:
        if getattr(effect, "step", None) in self.crash_on:
            raise CrashError
        return super().run(effect)


def last_transition_before_the_crash(
    monkeypatch: pytest.MonkeyPatch, run: Callable[[], object]
) -> Transition:
    """Run ``run`` (driven by ``test_machine.step``) until it crashes; the last transition the reducer
    made, whose status the wiring had persisted."""
    seen: list[Transition] = []

    def recording(st: MachineState, obs: Any, *, now: datetime) -> Transition:
        t = reduce(st, obs, now=now)
        seen.append(t)
        return t

    monkeypatch.setattr(test_machine, "reduce", recording)
    with pytest.raises(CrashError):
        run()
    monkeypatch.undo()
    return seen[-1]
