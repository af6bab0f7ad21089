"""The crash matrix over the pure reducer: every action by every crash point by every transient error
between writes ends exactly as the run without a fault does: each write applied exactly once (or
cleanly reverted), never one of our own writes taken for someone else's change, never a write
re-sent after it landed.

A crash point is any status write or any write sent, over the whole run (lock, apply, evictions,
promote, revert, the terminal status, the unlock, the release confirmed): the process dies right
after it and a new one resumes from the persisted status (for a finished Mitigation, the pass that
releases a lock the crash left). A transient error (409, 503, a timeout) hits one write once, the
unlock included, and the unlock re-sent after a crash at the terminal status. Each action runs twice:
with a healthy bake (kept; a canary promoted) and a worse one (reverted; a restart cannot be, so
Failed). Every run ends with the lock gone, removed once, and ``LockReleased=True``.

The ending also on its own: an unlock refused for good (403, an admission denial) leaves the lock,
says ``NotReleased`` and posts one Warning Event; a lock another Mitigation took meanwhile (while
the operator was down, or between a read and the unlock) is never removed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from stanch.core.machine.transitions import LOCK_RELEASED
from stanch.core.models import LOCK_ANNOTATION, MitigationPhase
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
    # The way back from a bad autoscaler change: bounds and a utilization target in one HPA patch.
    "autoscaler": (
        {
            "autoscaler": {
                "minReplicas": 3,
                "maxReplicas": 10,
                "targetUtilization": [{"resource": "cpu", "averageUtilization": 50}],
            }
        },
        True,
    ),
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
    points: int
    """Every crash point of the run (the terminal status, the unlock, the release confirmed)."""
    unlock: int
    """The number of the unlock among the writes sent."""
    warnings: int
    """Warning Events posted."""
    audit: tuple[str, ...]
    """The audit's events."""


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
    assert lock_released(driver) == ("True", "Released"), (case, bake)
    return Outcome(
        phase=final.status.phase,
        mutations=tuple(api.mutations),
        world=normalized(api),
        events=len(driver.kube_events),
        sent=api.sent,
        write_events=tuple(sends),
        last_point=terminal[0],
        points=driver.events,
        unlock=api.sent_log.index(UNLOCK) + 1,
        warnings=warnings(driver),
        audit=tuple(a.event for a in final.status.audit),
    )


UNLOCK = "Unlock:Deployment/web"


def lock_released(driver: Driver) -> tuple[str, str | None]:
    """The final ``LockReleased`` condition, as (status, reason)."""
    (condition,) = [c for c in driver.state.status.conditions if c.type == LOCK_RELEASED]
    return condition.status.value, condition.reason


def warnings(driver: Driver) -> int:
    return sum(e.type == "Warning" for e in driver.kube_events)


def lock_of(api: FakeApi) -> str | None:
    holder: str | None = (
        api.objects[("Deployment", "web")]["metadata"].get("annotations", {}).get(LOCK_ANNOTATION)
    )
    return holder


def without_lock(world: dict[tuple[str, str], Any]) -> dict[tuple[str, str], Any]:
    """The world but the target's lock annotation and the generation its writes move."""
    out = copy.deepcopy(world)
    target = out[("Deployment", "web")]["metadata"]
    target.get("annotations", {}).pop(LOCK_ANNOTATION, None)
    target.pop("generation", None)
    return out


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
    # The autoscaler change lands on the HPA (never on the replicas it owns) and its revert puts
    # back exactly what was there.
    kept = clean("autoscaler", "healthy").world[("HorizontalPodAutoscaler", "web")]["spec"]
    assert (kept["minReplicas"], kept["maxReplicas"]) == (3, 10)
    assert [m["resource"]["target"]["averageUtilization"] for m in kept["metrics"]] == [80, 50]
    assert "Apply:HorizontalPodAutoscaler/web" in clean("autoscaler", "healthy").mutations
    undone = clean("autoscaler", "worse")
    back = undone.world[("HorizontalPodAutoscaler", "web")]["spec"]
    assert (back["minReplicas"], back["maxReplicas"]) == (2, 4)
    assert [m["resource"]["target"]["averageUtilization"] for m in back["metrics"]] == [80, 90]
    assert undone.mutations[-2] == "Revert:HorizontalPodAutoscaler/web"
    assert not any(
        m.endswith("Deployment/web") for m in undone.mutations if m.startswith(("Apply", "Revert"))
    )


def _faults() -> list[tuple[str, str, str, int, int | None]]:
    """(case, bake, kind, crash point or write number, HTTP status)."""
    out: list[tuple[str, str, str, int, int | None]] = []
    for case in CASES:
        for bake in BAKES:
            base = clean(case, bake)
            # Every crash point, the ending's included: after the terminal status (the unlock lost),
            # after the unlock (its answer lost), after the release is confirmed.
            out.extend((case, bake, "crash", point, None) for point in range(1, base.points + 1))
            for number in range(1, base.sent + 1):
                out.extend((case, bake, "error", number, code) for code in ERRORS.values())
                out.extend((case, bake, "error+crash", number, code) for code in ERRORS.values())
            # The unlock lost in a crash after the terminal status, and its re-send failing once.
            out.extend((case, bake, "crash+error", base.unlock, code) for code in ERRORS.values())
    return out


FAULTS = _faults()


def test_the_matrix_covers_every_write_of_every_step() -> None:
    assert len(FAULTS) >= 800
    kinds = {kind for _, _, kind, _, _ in FAULTS}
    assert kinds == {"crash", "error", "error+crash", "crash+error"}
    for case in CASES:
        for bake in BAKES:
            base = clean(case, bake)
            faults = {(kind, at, code) for c, b, kind, at, code in FAULTS if (c, b) == (case, bake)}
            # The ending too: a crash after the terminal status and after the unlock, every error
            # on the unlock (alone and followed by a crash), and on its re-send after a crash.
            assert base.write_events[base.unlock - 1] == base.last_point + 1, (case, bake)
            assert {("crash", base.last_point, None), ("crash", base.last_point + 1, None)} <= faults
            for code in ERRORS.values():
                for kind in ("error", "error+crash", "crash+error"):
                    assert (kind, base.unlock, code) in faults, (case, bake, kind, code)


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
    elif kind == "error+crash":
        assert code is not None
        # The failed write's result is lost too: the process dies right after the failure.
        driver, api = run(case, bake, fail_at={at: code}, crash_after=base.write_events[at - 1])
    else:
        assert code is not None
        # The terminal status is written and the process dies: the next one re-sends the unlock,
        # and that fails once.
        driver, api = run(case, bake, fail_at={at: code}, crash_after=base.last_point)
        assert api.sent_log[at - 1] == UNLOCK
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
    # The lock is released exactly once (the world above has no lock annotation), and the
    # Mitigation says so.
    assert lock_of(api) is None
    assert api.mutations.count(UNLOCK) == 1
    assert lock_released(driver) == ("True", "Released"), driver.state.status.conditions
    ending = at >= base.last_point if kind == "crash" else at == base.unlock
    if ending:
        # A fault in the ending adds nothing but the release's condition on the way: no Event (a
        # crash right after the terminal status loses that transition's own), no audit entry.
        assert len(driver.kube_events) <= base.events
        assert tuple(audit) == base.audit


REFUSALS = {"403": (403, "forbidden"), "422": (422, "denied by admission policy no-annotation-edits")}
ENDINGS = [(case, bake) for case in CASES for bake in BAKES]


@pytest.mark.parametrize("crash", [False, True], ids=["", "crash"])
@pytest.mark.parametrize("refusal", REFUSALS)
@pytest.mark.parametrize(("case", "bake"), ENDINGS, ids=[f"{c}-{b}" for c, b in ENDINGS])
def test_a_refused_unlock_is_named_once_and_nothing_else_changes(
    case: str, bake: str, refusal: str, crash: bool
) -> None:
    """A refused unlock (RBAC, an admission denial) is not retried within the process: the lock stays,
    the condition says NotReleased with the fix, one Warning Event, also across a restart."""
    base = clean(case, bake)
    action, hpa = CASES[case]
    api = world_for(action, hpa=hpa)
    api.refuse[("Unlock", "Deployment", "web")] = REFUSALS[refusal]
    driver = Driver(machine(action), api, sampler=BAKES[bake], crash_after=base.last_point if crash else None)
    driver.run()
    assert driver.state.status.phase == base.phase
    assert lock_of(api) == "shop/m1"
    assert api.mutations == [m for m in base.mutations if m != UNLOCK]
    assert without_lock(normalized(api)) == without_lock(base.world)
    assert lock_released(driver) == ("False", "NotReleased")
    (named,) = [e for e in driver.kube_events if e.reason == "LockNotReleased"]
    assert named.type == "Warning"
    assert "kubectl annotate deployment web stanch.dev/active-mitigation-" in named.message
    assert warnings(driver) - 1 <= base.warnings, "no other Warning than the clean run's"
    # Sent once fire-and-forget (not after a crash at the terminal status), once awaited.
    assert api.sent_log.count(UNLOCK) == (1 if crash else 2)


TAKEOVERS = ["down-before-unlock", "down-after-unlock", "before-unlock", "before-resend"]


@pytest.mark.parametrize("when", TAKEOVERS)
@pytest.mark.parametrize(("case", "bake"), ENDINGS, ids=[f"{c}-{b}" for c, b in ENDINGS])
def test_a_lock_another_mitigation_took_meanwhile_is_never_removed(case: str, bake: str, when: str) -> None:
    """Another Mitigation holds the lock by the time ours is released: while the operator is down
    after the terminal status (the unlock lost) or after the unlock, just before the unlock is sent,
    or between the restart's read and its re-send. Its annotation stays; ours says released."""
    base = clean(case, bake)
    action, hpa = CASES[case]
    api = world_for(action, hpa=hpa)
    driver = Driver(machine(action), api, sampler=BAKES[bake])

    def take() -> None:
        api.take_lock("m2")

    if when == "down-before-unlock":
        driver.crash_after, driver.on_crash = base.last_point, take
    elif when == "down-after-unlock":
        driver.crash_after, driver.on_crash = base.last_point + 1, take
    elif when == "before-unlock":
        api.before[base.unlock] = take
    else:
        driver.crash_after = base.last_point
        api.before[base.unlock] = take  # the re-send, after the restart read the lock as ours
    driver.run()
    assert driver.state.status.phase == base.phase
    assert lock_of(api) == "m2"
    taken = api.mutations.index("Lock:m2")
    assert UNLOCK not in api.mutations[taken:], "nothing of ours after the lock changed hands"
    assert [m for m in api.mutations if m != "Lock:m2"] == [
        m for m in base.mutations if m != UNLOCK or when == "down-after-unlock"
    ]
    assert without_lock(normalized(api)) == without_lock(base.world)
    assert lock_released(driver) == ("True", "Released")
    assert len(driver.kube_events) <= base.events
    assert warnings(driver) <= base.warnings
    # What was sent: nothing once the restart read m2's lock; a conditional unlock whose test
    # failed (fire-and-forget, or awaited and answered "no longer ours"); ours, before m2 came.
    sent, failed = {
        "down-before-unlock": (0, 0),
        "down-after-unlock": (1, 0),
        "before-unlock": (1, 0),
        "before-resend": (1, 1),
    }[when]
    assert (api.sent_log.count(UNLOCK), api.failed) == (sent, failed)
