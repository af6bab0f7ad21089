"""Incident handlers without an API server: wake-ups, resolve, and writing status only on change."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
import pytest

from stanch.core.models import IncidentPhase, IncidentStatus, Scope
from stanch.wiring.handlers import incident
from stanch.wiring.investigation import HEARTBEAT, status_patch
from stanch.wiring.metrics import Metrics

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_pokes_wake_only_the_incidents_of_that_workload() -> None:
    pokes = incident.Pokes()
    a = pokes.register(("shop", "checkout-5xx"), ("shop", "checkout"))
    b = pokes.register(("shop", "cart-slow"), ("shop", "cart"))
    assert pokes.poke_target("shop", "checkout") == 1
    assert a.is_set()
    assert not b.is_set()
    assert pokes.poke_target("other", "checkout") == 0
    # Retargeting an Incident (spec edit) moves its registration.
    pokes.register(("shop", "checkout-5xx"), ("shop", "payments"))
    a.clear()
    assert pokes.poke_target("shop", "checkout") == 0
    pokes.unregister(("shop", "checkout-5xx"))
    assert pokes.poke_target("shop", "payments") == 0


def test_pod_maps_to_its_deployment_through_the_replica_set() -> None:
    owners: list[dict[str, Any]] = [{"kind": "ReplicaSet", "name": "checkout-7d9f8b6c4", "controller": True}]
    assert incident._deployment_of_pod({"pod-template-hash": "7d9f8b6c4"}, owners) == "checkout"
    assert incident._deployment_of_pod({"pod-template-hash": "other"}, owners) is None
    assert incident._deployment_of_pod({}, owners) is None


async def test_sleep_or_poke_returns_early_when_poked() -> None:
    flag = asyncio.Event()

    class NeverStopped:
        def __bool__(self) -> bool:
            return False

        async def wait(self, seconds: float | None = None) -> None:
            await asyncio.sleep(seconds or 0)

    asyncio.get_running_loop().call_later(0.05, flag.set)
    started = asyncio.get_running_loop().time()
    await incident._sleep_or_poke(flag, cast(kopf.DaemonStopped, NeverStopped()), 5.0)
    assert asyncio.get_running_loop().time() - started < 1.0


def status(top: str | None, refreshed: datetime) -> IncidentStatus:
    return IncidentStatus(
        phase=IncidentPhase.INVESTIGATING,
        top_hypothesis=top,
        scope=Scope(onset=NOW),
        last_refreshed=refreshed,
    )


def test_status_is_written_only_when_it_changed_or_the_heartbeat_is_due() -> None:
    old = status("RecentDeploy 80%", NOW).to_dict()
    old["kopf"] = {"progress": {}}
    later = NOW + timedelta(seconds=30)
    assert status_patch(old, status("RecentDeploy 80%", later), later) is None
    changed = status_patch(old, status("ConfigChange 70%", later), later)
    assert changed is not None
    assert changed["topHypothesis"] == "ConfigChange 70%"
    assert "kopf" not in changed, "Kopf's bookkeeping is never touched"
    gone = status_patch(old, status(None, later), later)
    assert gone is not None
    assert gone["topHypothesis"] is None, "a vanished field is removed with an explicit null"
    beat = NOW + HEARTBEAT
    assert status_patch(old, status("RecentDeploy 80%", beat), beat) is not None


def registry_handlers() -> dict[str, Any]:
    registry = kopf.OperatorRegistry()
    incident.register(registry, Metrics(), clock=lambda: NOW)
    return {str(h.id): h for h in registry._changing.get_all_handlers()}


def body(resolved: bool, phase: str | None = "Investigating") -> kopf.Body:
    raw = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"namespace": "shop", "name": "checkout-5xx", "uid": "u", "generation": 4},
        "spec": {"target": {"kind": "Deployment", "name": "checkout"}, "resolved": resolved},
        "status": {"phase": phase, "conditions": []},
    }
    return kopf.Body(cast(kopf.RawBody, raw))


async def test_resolve_sets_the_phase_once_and_keeps_the_record(monkeypatch: Any) -> None:
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "info", lambda obj, *, reason, message="": posted.append((reason, message)))
    handler = registry_handlers()["incident-resolve"]
    patch = kopf.Patch()
    result = await handler.fn(body=body(True), patch=patch, logger=logging.getLogger("t"))
    assert result is None
    assert patch["status"]["phase"] == "Resolved"
    assert patch["status"]["observedGeneration"] == 4
    (condition,) = patch["status"]["conditions"]
    assert (condition["type"], condition["status"]) == ("Resolved", "True")
    assert "hypotheses" not in patch["status"], "the investigation's record is left as it is"
    assert [r for r, _ in posted] == ["Resolved"]

    again = kopf.Patch()
    await handler.fn(body=body(True, phase="Resolved"), patch=again, logger=logging.getLogger("t"))
    assert not again, "already resolved: nothing to write, no second Event"
    assert len(posted) == 1


async def test_open_sets_phase_and_target_at_once(monkeypatch: Any) -> None:
    posted: list[str] = []
    monkeypatch.setattr(kopf, "info", lambda obj, *, reason, message="": posted.append(reason))
    handler = registry_handlers()["incident-open"]
    patch = kopf.Patch()
    b = body(False, phase=None)
    await handler.fn(body=b, spec=b["spec"], patch=patch, logger=logging.getLogger("t"))
    assert patch["status"] == {"target": "Deployment/shop/checkout", "phase": "Investigating"}
    assert posted == ["InvestigationStarted"]


def cross_namespace_body() -> kopf.Body:
    b = dict(body(False, phase=None))
    b["spec"] = {"target": {"kind": "Deployment", "name": "coredns", "namespace": "kube-system"}}
    return kopf.Body(cast(kopf.RawBody, b))


async def test_an_incident_naming_another_namespace_is_refused_visibly_and_never_investigated(
    monkeypatch: Any,
) -> None:
    """Design invariant 11: its author would read another namespace's evidence through Stanch."""
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "warn", lambda obj, *, reason, message="": warned.append((reason, message)))
    monkeypatch.setattr(kopf, "info", lambda obj, *, reason, message="": warned.append((reason, message)))
    handlers = registry_handlers()
    b = cross_namespace_body()
    patch = kopf.Patch()
    await handlers["incident-open"].fn(body=b, spec=b["spec"], patch=patch, logger=logging.getLogger("t"))
    (condition,) = patch["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Valid",
        "False",
        "CrossNamespaceTarget",
    )
    assert (
        "spec.target.namespace 'kube-system' is not this Incident's namespace 'shop'" in condition["message"]
    )
    assert "phase" not in patch["status"], "not investigating"
    assert [r for r, _ in warned] == ["CrossNamespaceTarget"]
    # The investigation daemon's filter says no.
    assert not incident._is_open(spec=b["spec"], namespace="shop")
    assert incident._is_open(spec=body(False)["spec"], namespace="shop")
    # An edit that names another namespace later is refused the same way, once.
    again = kopf.Patch()
    said = {**dict(b), "status": {"conditions": patch["status"]["conditions"]}}
    await handlers["incident-out-of-scope"].fn(
        body=kopf.Body(cast(kopf.RawBody, said)), spec=b["spec"], patch=again, logger=logging.getLogger("t")
    )
    assert len(warned) == 1, "said once"


def test_the_investigation_refuses_a_target_elsewhere() -> None:
    from stanch.core.models import IncidentSpec
    from stanch.wiring.investigation import target_of

    b = cross_namespace_body()
    with pytest.raises(ValueError, match=r"spec\.target\.namespace"):
        target_of(b, IncidentSpec.model_validate(b["spec"]))
    own = body(False)
    assert target_of(own, IncidentSpec.model_validate(own["spec"])) == ("shop", "checkout")
