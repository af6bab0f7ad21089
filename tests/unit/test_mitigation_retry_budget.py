"""The daemon's retry budget: a pass that keeps raising is bounded, then the Mitigation is stopped
visibly (issue 13); a passing outage is waited out; a deletion always completes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import kopf
import pytest

from stanch.adapters.kube import KubeError, transient
from stanch.core.models import AuditEntry, MitigationPhase
from stanch.wiring.handlers import mitigation as handlers
from stanch.wiring.handlers.mitigation import MAX_PASS_FAILURES, PassResult, RetryBudget, Runtime
from stanch.wiring.metrics import Metrics

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BODY = kopf.Body({"metadata": {"namespace": "shop", "name": "m1"}, "spec": {"target": {"name": "web"}}})


class NotStopped:
    def __bool__(self) -> bool:
        return False


def runtime() -> Runtime:
    return cast(Runtime, SimpleNamespace(metrics=Metrics(), clock=lambda: T0))


def counter(rt: Runtime, name: str, **labels: str) -> float:
    value = rt.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def spent(budget: RetryBudget) -> bool:
    return budget.exhausted


def test_only_errors_a_retry_would_repeat_count_against_the_budget() -> None:
    budget = RetryBudget()
    for _ in range(50):
        budget.failed(KubeError(503, "ServiceUnavailable", "etcd leader changed"))
        budget.failed(ConnectionError("refused"))
    assert not spent(budget)
    assert budget.delay == 60.0  # the backoff still grows, capped
    for n in range(1, MAX_PASS_FAILURES + 1):
        assert not spent(budget)
        budget.failed(KeyError("replicas"))
        assert budget.counted == n
    assert spent(budget)
    assert budget.last_error == "KeyError: 'replicas'"
    budget.succeeded()
    assert (spent(budget), budget.delay) == (False, 1.0)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (KubeError(500, "InternalError", "x"), True),
        (KubeError(429, "TooManyRequests", "x"), True),
        (TimeoutError(), True),
        (KubeError(422, "Invalid", "status too large"), False),
        (KubeError(403, "Forbidden", "x"), False),
        (ValueError("x"), False),
    ],
)
def test_what_is_a_passing_outage(exc: BaseException, expected: bool) -> None:
    assert transient(exc) is expected


def test_a_pass_that_keeps_raising_is_stopped_after_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime()
    passes: list[str] = []

    async def drive_once(_rt: Runtime, namespace: str, name: str) -> PassResult:
        passes.append("pass")
        raise KeyError("replicas")

    async def stop_failing(_rt: Runtime, namespace: str, name: str, budget: RetryBudget) -> PassResult:
        passes.append(f"stop {budget.counted}: {budget.last_error}")
        return PassResult(phase=MitigationPhase.FAILED)

    async def no_sleep(*_: Any) -> None:
        return None

    monkeypatch.setattr(handlers, "drive_once", drive_once)
    monkeypatch.setattr(handlers, "stop_failing", stop_failing)
    monkeypatch.setattr(handlers, "_sleep", no_sleep)
    asyncio.run(handlers.run_daemon(rt, BODY, kopf.Memo(), cast(kopf.DaemonStopped, NotStopped())))
    assert passes == ["pass"] * MAX_PASS_FAILURES + [f"stop {MAX_PASS_FAILURES}: KeyError: 'replicas'"]
    sample = "stanch_mitigation_pass_errors_total"
    assert counter(rt, sample, error="KeyError", transient="false") == MAX_PASS_FAILURES


def test_when_even_stopping_fails_the_loop_ends_with_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime()
    events: list[tuple[str, str]] = []

    async def failing(*_: Any) -> PassResult:
        raise KubeError(422, "Invalid", "status is too large")

    async def no_sleep(*_: Any) -> None:
        return None

    def event(_body: Any, *, type: str, reason: str, message: str) -> None:
        events.append((reason, message))

    monkeypatch.setattr(handlers, "drive_once", failing)
    monkeypatch.setattr(handlers, "stop_failing", failing)
    monkeypatch.setattr(handlers, "_sleep", no_sleep)
    monkeypatch.setattr(kopf, "event", event)
    asyncio.run(handlers.run_daemon(rt, BODY, kopf.Memo(), cast(kopf.DaemonStopped, NotStopped())))
    ((reason, message),) = events
    assert reason == "RetryBudgetExhausted"
    assert "status is too large" in message
    assert "check the target" in message
    failures = "stanch_mitigation_failures_total"
    assert counter(rt, failures, reason="RetryBudgetExhausted", phase="unknown") == 1


def test_a_deletion_completes_when_its_passes_keep_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime()
    events: list[str] = []

    async def failing(*_: Any) -> PassResult:
        raise KeyError("replicas")

    async def no_sleep(_seconds: float) -> None:
        return None

    def event(_body: Any, *, type: str, reason: str, message: str) -> None:
        events.append(f"{type} {reason}: {message}")

    monkeypatch.setattr(handlers, "drive_once", failing)
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    monkeypatch.setattr(kopf, "event", event)
    asyncio.run(handlers.on_delete(rt, BODY, kopf.Memo()))  # returns: Kopf drops the finalizer
    (line,) = events
    assert line.startswith("Warning RetryBudgetExhausted: deleted although its passes failed 5 times")
    assert "check Deployment web" in line
    failures = "stanch_mitigation_failures_total"
    assert counter(rt, failures, reason="RetryBudgetExhausted", phase="Deleted") == 1


def entry(event: str, before: MitigationPhase, after: MitigationPhase) -> AuditEntry:
    return AuditEntry(time=T0, actor="stanch", event=event, from_phase=before, to_phase=after)


def test_the_failure_metric_counts_errors_that_stop_a_mitigation() -> None:
    p = MitigationPhase
    assert handlers.stopped_by_error(entry("InvalidGuard", p.BAKING, p.REVERTING))
    assert handlers.stopped_by_error(entry("BaselineNoData", p.BASELINE, p.FAILED))
    assert handlers.stopped_by_error(entry("Drift", p.BAKING, p.NEEDS_ATTENTION))
    assert not handlers.stopped_by_error(entry("Reverting", p.BAKING, p.REVERTING))
    assert not handlers.stopped_by_error(entry("Succeeded", p.BAKING, p.SUCCEEDED))
