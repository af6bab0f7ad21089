"""Every read and write of every action goes through the real adapters (``read_target`` and the
``EffectExecutor``, on a ``KubeClient`` that refuses requests outside the permissions table), so an
action that needs a permission the shipped RBAC lacks fails here, not in a production cluster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import pytest

from stanch.adapters.effects import EffectExecutor
from stanch.adapters.kube import KubeClient, KubeError
from stanch.adapters.resources import KINDS
from stanch.adapters.targets import read_target
from stanch.core.effects import ObserveTarget
from stanch.core.machine.observations import Observation

from .fake_api import Driver, FakeApi, Write, healthy, machine, world_for, worse
from .test_crash_matrix import CASES


class RecordingApi:
    """An API server that says yes to everything, recording what it was asked."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        headers = {"content-type": "application/json"}
        if request.method == "GET" and request.url.path.rsplit("/", 1)[-1] in {
            k.plural for k in KINDS.values()
        }:
            return httpx.Response(
                200, json={"items": [], "metadata": {"resourceVersion": "1"}}, headers=headers
            )
        name = request.url.path.rsplit("/", 1)[-1]
        body = {"metadata": {"name": name, "uid": "u1", "resourceVersion": "2", "generation": 1}, "spec": {}}
        return httpx.Response(200, json=body, headers=headers)

    def client(self) -> KubeClient:
        return KubeClient(
            httpx.AsyncClient(transport=httpx.MockTransport(self), base_url="https://api.invalid")
        )


def test_a_request_outside_the_table_is_refused_before_it_is_sent() -> None:
    api = RecordingApi()

    async def read_a_secret() -> None:
        async with api.client() as kube:
            await kube.list("Secret", "shop")

    with pytest.raises(KubeError) as err:
        asyncio.run(read_a_secret())
    assert err.value.forbidden
    assert err.value.reason == "Undeclared"
    assert "list on secrets (core)" in err.value.message
    assert "permissions.py" in err.value.message
    assert api.requests == []


def test_a_rule_limited_to_names_covers_those_names_only() -> None:
    api = RecordingApi()

    async def read(name: str) -> None:
        async with api.client() as kube:
            await kube.get("ValidatingAdmissionPolicy", name)

    asyncio.run(read("stanch-identity"))
    with pytest.raises(KubeError) as err:
        asyncio.run(read("someone-elses-policy"))
    assert err.value.reason == "Undeclared"
    assert "not 'someone-elses-policy'" in err.value.message
    assert api.requests == [
        ("GET", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/stanch-identity")
    ]


def test_declared_requests_are_sent() -> None:
    api = RecordingApi()

    async def reads() -> None:
        async with api.client() as kube:
            await kube.get("Deployment", "web", "shop")
            await kube.logs("web-1", "shop", tail_lines=5)

    asyncio.run(reads())
    assert api.requests == [
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
        ("GET", "/api/v1/namespaces/shop/pods/web-1/log"),
    ]


@dataclass
class AdapterDriver(Driver):
    """The crash matrix's driver, with every read and write also sent through the adapters."""

    refused: list[str] = field(default_factory=list)
    recording: RecordingApi = field(default_factory=RecordingApi)

    def _other(self, effect: Any) -> list[Observation]:
        if isinstance(effect, ObserveTarget):
            try:
                asyncio.run(self._read(effect))
            except KubeError as exc:
                self.refused.append(exc.message)
        return super()._other(effect)

    async def _read(self, effect: ObserveTarget) -> None:
        async with self.recording.client() as kube:
            await read_target(kube, effect.reads)

    async def _write(self, write: Write) -> None:
        async with self.recording.client() as kube:
            result = await EffectExecutor(kube).run(write)
        if result.code == 403:
            self.refused.append(result.message)


@pytest.mark.parametrize("bake", ["healthy", "worse"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_action_uses_only_declared_permissions(case: str, bake: str) -> None:
    action, hpa = CASES[case]
    api: FakeApi = world_for(action, hpa=hpa)
    driver = AdapterDriver(machine(action), api, sampler=healthy if bake == "healthy" else worse)
    send = api.send

    def through_adapters(write: Write) -> Any:
        asyncio.run(driver._write(write))
        return send(write)

    api.send = through_adapters  # type: ignore[method-assign]
    driver.run()
    assert driver.recording.requests, "nothing went through the adapters"
    assert not driver.refused, "\n".join(driver.refused)
