"""The crash matrix over the pure reducer: every action by every crash point by every transient error
between writes ends exactly as the run without a fault does: each write applied exactly once (or
cleanly reverted), never one of our own writes taken for someone else's change, never a write
re-sent after it landed.

A crash point is any status write or any write sent, over the whole run (lock, apply, evictions,
promote, revert): the process dies right after it and a new one resumes from the persisted status.
A transient error (409, 503, a timeout) hits one write once. Each action runs twice: with a healthy
bake (kept; a canary promoted) and a worse one (reverted; a restart cannot be, so Failed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from stanch.core.models import MitigationPhase
from stanch.core.plans import RESTARTED_AT

from .fake_api import TIMEOUT, Driver, FakeApi, Sampler, healthy, machine, world_for, worse

P = MitigationPhase

CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "rollback": ({"rollback": {}}, False),
    "scale": ({"scale": {"replicas": 5}}, False),
    "scale-via-hpa": ({"scale": {"replicas": 6}}, True),
    "pause": ({"pause": {}}, False),
    "rolling-restart": ({"restart": {}}, False),
    "restart-pods": ({"restart": {"pods": ["web-a", "web-b"]}}, False),
    "canary": ({"canary": {"image": "web:v3", "replicas": 1}}, False),
    "config-toggle": ({"configToggle": {"configMap": "flags", "key": "checkout_v2", "value": "off"}}, False),
    "config-toggle-restart": (
        {"configToggle": {"configMap": "flags", "key": "checkout_v2", "value": "off", "restart": True}},
        False,
    ),
    "evacuate": ({"evacuate": {"node": "n1"}}, False),
}
BAKES: dict[str, Sampler] = {"healthy": healthy, "worse": worse}
ERRORS = {"409": 409, "503": 503, "timeout": TIMEOUT}


@dataclass(frozen=True)
class Outcome:
    phase: P | None
    mutations: tuple[str, ...]
    world: dict[tuple[str, str], Any]
    events: int
    sent: int
    write_events: tuple[int, ...]
    """The crash-point number of each write sent."""
    last_point: int
    """The crash point of the terminal status write."""


def normalized(api: FakeApi) -> dict[tuple[str, str], Any]:
    """The objects without what legitimately differs from run to run: resourceVersions, and the
    timestamp a revert's restart carries (it is the revert's start, later after a backoff)."""
    out = copy.deepcopy(api.objects)
    for obj in out.values():
        obj.get("metadata", {}).pop("resourceVersion", None)
        annotations = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "annotations"
        )
        if annotations and RESTARTED_AT in annotations:
            annotations[RESTARTED_AT] = "<stamp>"
    return out


def run(
    case: str, bake: str, *, crash_after: int | None = None, fail_at: dict[int, int] | None = None
) -> tuple[Driver, FakeApi]:
    action, hpa = CASES[case]
    api = world_for(action, hpa=hpa)
    api.fail_at = dict(fail_at or {})
    driver = Driver(machine(action), api, sampler=BAKES[bake], crash_after=crash_after)
    driver.run()
    return driver, api


@cache
def clean(case: str, bake: str) -> Outcome:
    action, hpa = CASES[case]
    api = world_for(action, hpa=hpa)
    sends: list[int] = []
    original = api.send

    driver = Driver(machine(action), api, sampler=BAKES[bake])

    def send(write: Any) -> Any:
        sends.append(driver.events + 1)  # the crash point this write is
        return original(write)

    api.send = send  # type: ignore[method-assign]
    terminal: list[int] = []
    counted = driver._event

    def event() -> bool:
        crashed = counted()
        if (
            driver.state.status.phase in (P.SUCCEEDED, P.REVERTED, P.FAILED, P.NEEDS_ATTENTION)
            and not terminal
        ):
            terminal.append(driver.events)
        return crashed

    driver._event = event  # type: ignore[method-assign]
    final = driver.run()
    return Outcome(
        phase=final.status.phase,
        mutations=tuple(api.mutations),
        world=normalized(api),
        events=len(driver.kube_events),
        sent=api.sent,
        write_events=tuple(sends),
        last_point=terminal[0],
    )


def test_the_clean_runs_end_as_each_action_should() -> None:
    expected = {
        ("canary", "healthy"): P.SUCCEEDED,
        ("rolling-restart", "worse"): P.FAILED,
        ("restart-pods", "worse"): P.FAILED,
    }
    for case in CASES:
        for bake in BAKES:
            outcome = clean(case, bake)
            want = expected.get((case, bake), P.SUCCEEDED if bake == "healthy" else P.REVERTED)
            assert outcome.phase == want, (case, bake)
    # Some steps really have several writes: the matrix crashes between them.
    assert clean("config-toggle-restart", "healthy").mutations[1:3] == (
        "Apply:ConfigMap/flags",
        "Apply:Deployment/web",
    )
    assert "Promote:Deployment/web-canary-m1" in clean("canary", "healthy").mutations
    reverted = clean("config-toggle-restart", "worse").mutations
    assert reverted[-3:-1] == ("Revert:ConfigMap/flags", "Revert:Deployment/web")


def _faults() -> list[tuple[str, str, str, int, int | None]]:
    """(case, bake, kind, crash point or write number, HTTP status)."""
    out: list[tuple[str, str, str, int, int | None]] = []
    for case in CASES:
        for bake in BAKES:
            base = clean(case, bake)
            # A crash after the terminal status write and before the unlock is the ending's own
            # (the lock release after a crash), not a step's writes: left out here.
            out.extend((case, bake, "crash", point, None) for point in range(1, base.last_point))
            for number in range(1, base.sent + 1):
                if base.write_events[number - 1] >= base.last_point:
                    continue  # the unlock: best effort, nothing is fed back
                out.extend((case, bake, "error", number, code) for code in ERRORS.values())
                out.extend((case, bake, "error+crash", number, code) for code in ERRORS.values())
    return out


FAULTS = _faults()


def test_the_matrix_covers_every_write_of_every_step() -> None:
    assert len(FAULTS) >= 500
    kinds = {kind for _, _, kind, _, _ in FAULTS}
    assert kinds == {"crash", "error", "error+crash"}


@pytest.mark.parametrize(
    ("case", "bake", "kind", "at", "code"),
    FAULTS,
    ids=[f"{c}-{b}-{k}{'' if code is None else code}@{n}" for c, b, k, n, code in FAULTS],
)
def test_a_fault_anywhere_ends_as_the_clean_run_with_every_write_once(
    case: str, bake: str, kind: str, at: int, code: int | None
) -> None:
    base = clean(case, bake)
    if kind == "crash":
        driver, api = run(case, bake, crash_after=at)
    elif kind == "error":
        assert code is not None
        driver, api = run(case, bake, fail_at={at: code})
    else:
        assert code is not None
        # The failed write's result is lost too: the process dies right after the failure.
        driver, api = run(case, bake, fail_at={at: code}, crash_after=base.write_events[at - 1])
    audit = [a.event for a in driver.state.status.audit]
    assert driver.state.status.phase == base.phase, driver.state.status.message
    assert "Drift" not in audit, driver.state.status.message
    # Every write exactly once, in order (evictions are independent: a retried one comes later).
    assert sorted(api.mutations) == sorted(base.mutations)
    assert [m for m in api.mutations if not m.startswith("Evict:")] == [
        m for m in base.mutations if not m.startswith("Evict:")
    ]
    assert normalized(api) == base.world
    # Nothing of ours is ever re-sent once it landed: the only refused write is the injected one.
    assert api.failed == (0 if kind == "crash" else 1)
    assert len(driver.kube_events) <= base.events + 3
