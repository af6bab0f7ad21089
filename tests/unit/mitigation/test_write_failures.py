"""A write the API server refuses for good (422 from an immutable ConfigMap or an admission policy,
403) ends the step at once and visibly; a write that keeps failing transiently or in conflict ends
after a small, bounded number of attempts. Counted: writes sent, status writes, Events."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx2 as httpx

from stanch.adapters.effects import EffectExecutor, Outcome
from stanch.adapters.kube import KubeClient
from stanch.core.effects import ObjectKey, Patch, Precondition
from stanch.core.machine.phases.failures import WRITES_ACCEPTED
from stanch.core.machine.reading import MAX_ATTEMPTS
from stanch.core.models import MitigationPhase

from .fake_api import TIMEOUT, Driver, FakeApi, healthy, machine, world_for, worse

P = MitigationPhase
DENIED = (
    422,
    "configmaps \"flags\" is forbidden: ValidatingAdmissionPolicy 'freeze' with binding 'freeze' denied "
    "request: flags are frozen",
)
TOGGLE = {"configToggle": {"configMap": "flags", "key": "checkout_v2", "value": "off", "restart": True}}


def drive(action: dict[str, Any], api: FakeApi, *, bake: Any = healthy) -> Driver:
    driver = Driver(machine(action), api, sampler=bake)
    driver.run()
    return driver


def sends(api: FakeApi, what: str) -> int:
    return api.sent_log.count(what)


def refused_condition(driver: Driver) -> tuple[str, str, str]:
    (cond,) = [c for c in driver.state.status.conditions if c.type == WRITES_ACCEPTED]
    return cond.status.value, cond.reason, cond.message


def test_a_refused_single_write_fails_once_with_the_object_the_message_and_the_fix() -> None:
    action = {"scale": {"replicas": 5}}
    api = world_for(action)
    api.refuse[("Apply", "Deployment", "web")] = DENIED
    driver = drive(action, api)
    assert driver.state.status.phase == P.FAILED
    assert sends(api, "Apply:Deployment/web") == 1  # never retried
    assert api.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert "stanch.dev/lock" not in api.objects[("Deployment", "web")]["metadata"]["annotations"]
    status, reason, message = refused_condition(driver)
    assert (status, reason) == ("False", "Refused")
    assert "HTTP 422" in message
    assert "flags are frozen" in message
    assert "fix:" in message
    (event,) = [e for e in driver.kube_events if e.reason == "ApplyFailed"]
    assert event.type == "Warning"
    assert "replicas 3 → 5" in event.message
    assert "nothing was changed" in event.message
    assert "Resume" not in [a.event for a in driver.state.status.audit]
    assert len(driver.kube_events) <= 6  # Planned, Locked, Baseline, ApplyFailed (and no loop)
    assert driver.status_writes <= 8


def test_a_refused_second_write_undoes_the_first_and_ends_reverted_saying_why() -> None:
    api = world_for(TOGGLE)
    api.refuse[("Apply", "Deployment", "web")] = DENIED
    driver = drive(TOGGLE, api)
    assert driver.state.status.phase == P.REVERTED, driver.state.status.message
    assert api.objects[("ConfigMap", "flags")]["data"]["checkout_v2"] == "on"  # the first write undone
    template = api.objects[("Deployment", "web")]["spec"]["template"]
    assert "annotations" not in template["metadata"]  # and no restart: the pods never saw the change
    assert [m for m in api.sent_log if not m.startswith(("Lock", "Unlock"))] == [
        "Apply:ConfigMap/flags",
        "Apply:Deployment/web",
        "Revert:ConfigMap/flags",
    ]
    assert refused_condition(driver)[:2] == ("False", "Refused")
    reverting = next(a for a in driver.state.status.audit if a.event == "Reverting")
    assert "Apply refused" in reverting.reason
    assert "undoing the writes that landed" in reverting.reason
    assert len(driver.kube_events) <= 8


def test_a_refused_first_write_of_two_changes_nothing_and_fails() -> None:
    api = world_for(TOGGLE)
    api.refuse[("Apply", "ConfigMap", "flags")] = DENIED
    driver = drive(TOGGLE, api)
    assert driver.state.status.phase == P.FAILED
    assert [m for m in api.sent_log if not m.startswith(("Lock", "Unlock"))] == ["Apply:ConfigMap/flags"]
    assert "flags are frozen" in driver.state.status.message


def test_a_refused_promotion_aborts_the_canary() -> None:
    action = {"canary": {"image": "web:v3", "replicas": 1}}
    api = world_for(action)
    api.refuse[("Promote", "Deployment", "web")] = DENIED
    driver = drive(action, api)
    assert driver.state.status.phase == P.REVERTED
    assert ("Deployment", "web-canary-m1") not in api.objects  # the canary does not keep running
    assert (
        api.objects[("Deployment", "web")]["spec"]["template"]["spec"]["containers"][0]["image"] == "web:v2"
    )
    assert sends(api, "Promote:Deployment/web") == 1


def test_a_canary_promoted_whose_removal_is_refused_needs_attention_naming_it() -> None:
    action = {"canary": {"image": "web:v3", "replicas": 1}}
    api = world_for(action)
    api.refuse[("Promote", "Deployment", "web-canary-m1")] = (403, "deployments is forbidden: cannot delete")
    driver = drive(action, api)
    assert driver.state.status.phase == P.NEEDS_ATTENTION
    assert "web-canary-m1" in driver.state.status.message
    assert "RBAC" in driver.state.status.message
    assert sends(api, "Promote:Deployment/web-canary-m1") == 1


def test_a_refused_revert_needs_attention_once() -> None:
    api = world_for(TOGGLE)
    api.refuse[("Revert", "ConfigMap", "flags")] = (
        422,
        'ConfigMap "flags" is invalid: data: Forbidden: field is immutable when `immutable` is set',
    )
    driver = drive(TOGGLE, api, bake=worse)
    assert driver.state.status.phase == P.NEEDS_ATTENTION
    assert sends(api, "Revert:ConfigMap/flags") == 1
    assert api.objects[("ConfigMap", "flags")]["data"]["checkout_v2"] == "off"  # still live: said so
    assert "still in place" in driver.state.status.message
    assert "immutable" in driver.state.status.message
    assert refused_condition(driver)[:2] == ("False", "Refused")
    assert "Resume" not in [a.event for a in driver.state.status.audit]


def test_a_persistent_transient_failure_is_retried_a_few_times_with_a_backoff_then_ends() -> None:
    action = {"scale": {"replicas": 5}}
    api = world_for(action)
    api.refuse[("Apply", "Deployment", "web")] = (503, "etcdserver: leader changed")
    driver = drive(action, api)
    assert driver.state.status.phase == P.FAILED
    assert sends(api, "Apply:Deployment/web") == MAX_ATTEMPTS
    assert refused_condition(driver)[:2] == ("False", "RetriesExhausted")
    retries = [a for a in driver.state.status.audit if a.event == "Retry"]
    assert len(retries) == MAX_ATTEMPTS - 1
    assert [r.reason.rsplit("in ", 1)[1] for r in retries] == ["2s", "4s", "8s", "16s"]
    assert len(driver.kube_events) <= 6 + 2 * MAX_ATTEMPTS


def test_a_persistent_conflict_the_world_does_not_explain_ends_after_a_few_attempts() -> None:
    action = {"scale": {"replicas": 5}}
    api = world_for(action)
    api.refuse[("Apply", "Deployment", "web")] = (
        409,
        "Operation cannot be fulfilled: the object has been modified",
    )
    driver = drive(action, api)
    assert driver.state.status.phase == P.FAILED
    assert sends(api, "Apply:Deployment/web") == MAX_ATTEMPTS
    assert driver.status_writes <= 8 + MAX_ATTEMPTS


def test_a_persistent_timeout_of_a_revert_ends_needing_attention() -> None:
    action = {"scale": {"replicas": 5}}
    api = world_for(action)
    api.refuse[("Revert", "Deployment", "web")] = (TIMEOUT, "ReadTimeout")
    driver = drive(action, api, bake=worse)
    assert driver.state.status.phase == P.NEEDS_ATTENTION
    assert sends(api, "Revert:Deployment/web") == MAX_ATTEMPTS


# --- the adapter: a failed test op is a conflict, a 422 naming the object is a refusal ------------


def _executor(status: dict[str, Any]) -> EffectExecutor:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status["code"], json=status, headers={"content-type": "application/json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(reply), base_url="https://api.invalid")
    return EffectExecutor(KubeClient(http))


PATCH = Patch(
    key=ObjectKey("v1", "ConfigMap", "flags", "shop"),
    ops=({"op": "add", "path": "/data/k", "value": "off"},),
    precondition=Precondition(tests=(("/data/k", "on"),)),
    step="Apply",
)
BARE_422 = {
    "kind": "Status",
    "status": "Failure",
    "message": "the server rejected our request due to an error in our request",
    "reason": "Invalid",
    "details": {},
    "code": 422,
}
ADMISSION_422 = json.loads(
    '{"kind":"Status","status":"Failure","message":"configmaps \\"flags\\" is forbidden: '
    "ValidatingAdmissionPolicy 'freeze' with binding 'freeze' denied request: flags are frozen\","
    '"reason":"Invalid","details":{"name":"flags","kind":"configmaps","causes":[{"message":"denied"}]},'
    '"code":422}'
)


async def test_a_failed_test_op_is_a_conflict_and_an_admission_denial_a_refusal() -> None:
    # As the API server (v1.34) answers each: a failed JSON-patch test names nothing.
    conflict = await _executor(BARE_422).run(PATCH)
    assert (conflict.outcome, conflict.code) == (Outcome.CONFLICT, 422)
    denied = await _executor(ADMISSION_422).run(PATCH)
    assert (denied.outcome, denied.code) == (Outcome.INVALID, 422)
    assert "flags are frozen" in denied.message
    unavailable = await _executor({"kind": "Status", "code": 503, "reason": "ServiceUnavailable"}).run(PATCH)
    assert (unavailable.outcome, unavailable.code) == (Outcome.TRANSIENT, 503)


def test_deleted_after_a_crash_between_two_writes_undoes_only_the_write_that_landed() -> None:
    """configToggle + restart: the ConfigMap write landed, the process died before the restart, and
    the Mitigation is deleted before it resumes. The revert puts the flag back and restarts nothing
    (the pods never restarted onto the new value); it does not call its own write drift."""
    for point in range(1, 40):
        api = world_for(TOGGLE)
        driver = Driver(machine(TOGGLE), api, crash_after=point)
        while not driver.crashed and driver.state.status.phase != P.SUCCEEDED:
            driver._pass()
        if api.sent_log == ["Lock:Deployment/web", "Apply:ConfigMap/flags"]:
            break
    else:
        raise AssertionError("no crash point between the ConfigMap write and the restart")
    driver.state = replace(driver.state, deleting=True)
    final = driver.run()
    assert final.status.phase == P.REVERTED, final.status.message
    assert api.sent_log[2:] == ["Revert:ConfigMap/flags", "Unlock:Deployment/web"]
    assert api.objects[("ConfigMap", "flags")]["data"]["checkout_v2"] == "on"
    assert "annotations" not in api.objects[("Deployment", "web")]["spec"]["template"]["metadata"]
