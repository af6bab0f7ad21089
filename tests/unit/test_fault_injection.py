"""The test-only crash point: off unless its variable is set, refused when malformed, and it fires
only after the write it names was accepted (never before, never on another write)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import pytest

import stanch.wiring.handlers.mitigation as handlers
from stanch.adapters.effects import EffectResult, Outcome
from stanch.adapters.kube import KubeClient
from stanch.adapters.prometheus import PrometheusClient
from stanch.core.effects import ObjectKey, Patch, Precondition, Step
from stanch.core.mitigation_context import IncidentFacts
from stanch.core.settings import Settings
from stanch.wiring.fault_injection import CRASH_AFTER_ENV, CrashPoint, crash_point
from stanch.wiring.metrics import Metrics
from stanch.wiring.mitigation_policy import PolicyContext


def test_no_variable_no_crash_point_and_a_malformed_one_is_refused() -> None:
    assert crash_point({}) is None
    assert crash_point({CRASH_AFTER_ENV: " "}) is None
    assert crash_point({CRASH_AFTER_ENV: "Apply:ConfigMap"}) == CrashPoint("Apply", "ConfigMap")
    with pytest.raises(ValueError, match="<Step>:<Kind>"):
        crash_point({CRASH_AFTER_ENV: "ApplyConfigMap"})


class Executor:
    """Answers every write with ``outcome`` and records what was sent."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.sent: list[str] = []

    async def run(self, effect: Any) -> EffectResult:
        self.sent.append(effect.key.kind)
        return EffectResult(effect=effect, outcome=self.outcome, message="", resource_version="2")


def _patch(kind: str, name: str) -> Patch:
    return Patch(
        key=ObjectKey("v1", kind, name, "shop"),
        ops=({"op": "replace", "path": "/data/a", "value": "1"},),
        precondition=Precondition(),
        step=Step.APPLY,
    )


def _sent(
    outcome: Outcome, crash: CrashPoint | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], int]:
    crashes: list[int] = []

    def crash_now() -> None:
        crashes.append(1)
        raise SystemExit  # the real one never returns

    monkeypatch.setattr(handlers, "crash_now", crash_now)
    runtime = handlers.Runtime(
        kube=cast(KubeClient, object()),
        prometheus=PrometheusClient("http://prometheus.invalid"),
        settings=Settings(prometheus_url="http://prometheus.invalid", all_namespaces=True),
        metrics=Metrics(),
        crash_after=crash,
    )
    executor = Executor(outcome)
    runtime.executor = cast(Any, executor)
    obj = {
        "metadata": {"name": "m", "namespace": "shop", "uid": "u", "generation": 1},
        "spec": {"target": {"name": "web"}, "configToggle": {"configMap": "flags", "key": "a", "value": "1"}},
        "status": {},
    }
    one = handlers.Pass(runtime, obj, IncidentFacts(), PolicyContext())
    group = [_patch("ConfigMap", "flags"), _patch("Deployment", "web")]
    with contextlib.suppress(SystemExit):
        asyncio.run(one._mutate(group))
    return executor.sent, len(crashes)


def test_the_crash_fires_right_after_the_named_write_was_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Killed between the two writes of the step: the second is never sent.
    assert _sent(Outcome.APPLIED, CrashPoint("Apply", "ConfigMap"), monkeypatch) == (["ConfigMap"], 1)
    # A refused write is not the point named; another step or kind neither; unset, never.
    assert _sent(Outcome.INVALID, CrashPoint("Apply", "ConfigMap"), monkeypatch) == (["ConfigMap"], 0)
    assert _sent(Outcome.APPLIED, CrashPoint("Revert", "ConfigMap"), monkeypatch)[1] == 0
    assert _sent(Outcome.APPLIED, None, monkeypatch) == (["ConfigMap", "Deployment"], 0)
