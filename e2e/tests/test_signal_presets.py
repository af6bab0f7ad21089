"""Every signal preset's rendered queries against a real Prometheus: each one parses and evaluates
(the local world has none of the mesh or ingress series, so most answer with no data, which is
what "no data" must look like: success and an empty result, never a parse error).

The queries go through the operator's own Prometheus client with a bearer token file and a tenancy
header configured, as an operator in front of Mimir would send them: Prometheus ignores both, and
the request path with them is the one the operator uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e.cluster import WorldInfo
from stanch.adapters.prometheus import PrometheusClient, PrometheusError
from stanch.core.investigation.presets import PRESETS, preset_templates
from stanch.core.investigation.signals import render
from stanch.core.settings import PrometheusConnection

VALUES = {"namespace": "shop", "workload": "checkout"}


def test_every_preset_query_parses_on_prometheus(world: WorldInfo, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("e2e-token")
    connection = PrometheusConnection(
        url=world.prometheus_url,
        bearer_token_file=str(token),
        headers=(("X-Scope-OrgID", "e2e"),),
    )
    queries = {
        f"{preset} ({label or 'its own label'}) {name}": render(name, template, VALUES)
        for preset in PRESETS
        for label in (None, "app")
        for name, template in preset_templates(preset, label).items()
    }

    async def ask_all() -> dict[str, str]:
        client = PrometheusClient.connect(connection, timeout=10)
        problems: dict[str, str] = {}
        try:
            for name, query in queries.items():
                try:
                    await client.query(query)
                except PrometheusError as exc:
                    problems[name] = f"{exc.kind}: {exc.message} in {query}"
        finally:
            await client.close()
        return problems

    assert asyncio.run(ask_all()) == {}
    assert len(queries) >= 6 * 2 * len(PRESETS)
