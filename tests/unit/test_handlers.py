"""Handler-level tests: the registered handlers, called the way Kopf calls them (no API server)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest

from stanch.adapters import credentials
from stanch.core.conditions import set_condition
from stanch.core.settings import resolve
from stanch.wiring.handlers import build_registry, startup
from stanch.wiring.metrics import Metrics

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def incident(generation: int = 3, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"namespace": "shop", "name": "checkout-5xx", "uid": "u-1", "generation": generation},
        "spec": {"target": {"kind": "Deployment", "name": "checkout"}},
        "status": {"conditions": conditions or []},
    }


def changing_handlers(registry: kopf.OperatorRegistry) -> dict[str, Any]:
    # Kopf has no public listing of a registry's handlers; tests may lean on the internal one.
    return {str(h.id): h for h in registry._changing.get_all_handlers()}


def test_every_handler_is_registered_with_an_explicit_id() -> None:
    registry = build_registry(Metrics())
    ids = set(changing_handlers(registry))
    assert ids == {
        "incident-open",
        "incident-spec-changed",
        "incident-out-of-scope",
        "incident-resolve",
        "incident-resolve-on-create",
        "incident-resolve-on-resume",
        "mitigation-finalize",
        "mitigation-requested-by",
        "policy-validate",
        "policy-validate-on-update",
        "policy-validate-on-resume",
    }
    assert {str(h.id) for h in registry._spawning.get_all_handlers()} == {
        "incident-investigate",
        "mitigation-machine",
    }
    assert {str(h.id) for h in registry._watching.get_all_handlers()} == {
        "incident-poke-deployment",
        "incident-poke-replicaset",
        "incident-poke-pod",
        "incident-remember-configmap",
        "incident-remember-hpa",
        "mitigation-wake",
        "incident-auto-mitigate",
        "mitigation-notify",
    }
    assert {str(h.id) for h in registry._indexing.get_all_handlers()} == {"stanch_configmap_references"}
    activity_ids = {str(h.id) for h in registry._activities.get_all_handlers()}
    assert activity_ids == {
        "stanch-login",
        "stanch-configure-kopf",
        "stanch-incident-clients",
        "stanch-incident-clients-close",
        "stanch-mitigation-clients",
        "stanch-mitigation-clients-close",
        "stanch-peering-object",
        "policy-notify-start",
        "policy-notify-stop",
        "stanch-alertmanager-receiver",
        "stanch-alertmanager-receiver-stop",
    }


async def test_handler_errors_are_counted() -> None:
    metrics = Metrics()

    @metrics.instrument("boom")
    async def failing() -> None:
        raise kopf.TemporaryError("later")

    with pytest.raises(kopf.TemporaryError):
        await failing()
    assert (
        metrics.registry.get_sample_value(
            "stanch_handler_errors_total", {"handler": "boom", "error": "TemporaryError"}
        )
        == 1
    )


def test_transition_time_only_moves_when_the_status_flips() -> None:
    earlier = set_condition(
        None, type_="Accepted", status="True", reason="Observed", message="m", observed_generation=1, now=NOW
    )
    later = datetime(2025, 2, 1, tzinfo=UTC)
    same = set_condition(
        earlier,
        type_="Accepted",
        status="True",
        reason="Observed",
        message="m2",
        observed_generation=2,
        now=later,
    )
    assert same[0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    assert same[0]["observedGeneration"] == 2
    flipped = set_condition(
        same, type_="Accepted", status="False", reason="R", message="m3", observed_generation=2, now=later
    )
    assert flipped[0]["lastTransitionTime"] == "2025-02-01T00:00:00Z"


def test_conditions_are_bounded() -> None:
    conditions: list[dict[str, Any]] = []
    for i in range(40):
        conditions = set_condition(
            conditions,
            type_=f"T{i}",
            status="True",
            reason="R",
            message="m",
            observed_generation=None,
            now=NOW,
        )
    assert len(conditions) == 16
    assert conditions[-1]["type"] == "T39"


async def test_startup_configures_kopf_storage_finalizer_and_peering() -> None:
    config = resolve(
        {"prometheus_url": "http://p:9090", "namespaces": ["shop"]}, {}, in_cluster=False, is_tty=False
    )
    settings = kopf.OperatorSettings()
    memo = kopf.Memo()
    memo[startup.MEMO_SETTINGS] = config
    await startup.configure(settings=settings, memo=memo, logger=logging.getLogger("t"))
    assert settings.persistence.finalizer == "stanch.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.StatusProgressStorage)
    assert settings.persistence.progress_storage.field == ("status", "kopf", "progress")
    assert isinstance(settings.persistence.diffbase_storage, kopf.StatusDiffBaseStorage)
    assert settings.persistence.diffbase_storage.field == ("status", "kopf", "lastHandledConfiguration")
    assert settings.peering.standalone is True
    assert settings.posting.loggers is False
    assert settings.posting.reporting_component == "stanch"
    assert settings.watching.server_timeout is not None


def test_peering_name_makes_peering_mandatory() -> None:
    config = resolve(
        {"prometheus_url": "http://p:9090", "all_namespaces": True, "peering_name": "stanch"},
        {},
        in_cluster=True,
        is_tty=False,
    )
    settings = kopf.OperatorSettings()
    startup.apply_kopf_settings(settings, config, "pod-1")
    assert (settings.peering.standalone, settings.peering.name, settings.peering.mandatory) == (
        False,
        "stanch",
        True,
    )
    assert settings.peering.lifetime == 30  # a crashed active replica's record expires after this


def test_login_prefers_an_explicit_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: local\n"
        "contexts: [{name: local, context: {cluster: local, user: me}}]\n"
        "clusters: [{name: local, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: me, user: {token: abc}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    credentials.select(credentials.Selection())  # the process resolves once: start afresh
    info = asyncio.run(startup.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("t")))
    assert info.server == "https://127.0.0.1:6443"


def test_login_without_credentials_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    credentials.select(credentials.Selection())
    with pytest.raises(kopf.LoginError, match="KUBECONFIG"):
        asyncio.run(startup.login(settings=kopf.OperatorSettings(), logger=logging.getLogger("t")))
