"""HTTP on the loopback listener: /metrics, /healthz, /world (GET/PUT/PATCH) and /debug/pods."""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from aiohttp import web

from e2e.simulator import exposition
from e2e.simulator.runner import Runner

log = logging.getLogger("stanch.simulator.http")

RUNNER: web.AppKey[Runner] = web.AppKey("runner", Runner)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` -> (host, port); anything but a loopback address is refused."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    if host == "localhost":
        host = "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"--listen must be a loopback address, got {host!r}")
    return host, int(port)


def _world_body(runner: Runner) -> dict[str, Any]:
    return {"data": runner.world_data, "problems": list(runner.world.problems)}


def _as_strings(raw: object, *, allow_null: bool) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object of key -> string")
    out: dict[str, str | None] = {}
    for key, value in raw.items():
        if value is None and allow_null:
            out[str(key)] = None
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out[str(key)] = str(value)
        else:
            raise web.HTTPBadRequest(text=f"value of {key!r} must be a string or a number")
    return out


async def _read_json(request: web.Request) -> object:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    # Accept the shape GET returns as well as a bare map.
    if isinstance(body, dict) and set(body) <= {"data", "problems"} and isinstance(body.get("data"), dict):
        return body["data"]
    return body


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNNER].metrics, headers={"Content-Type": exposition.CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    if runner.healthy:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="starting\n")


async def get_world(request: web.Request) -> web.Response:
    return web.json_response(_world_body(request.app[RUNNER]))


async def put_world(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    data = _as_strings(await _read_json(request), allow_null=False)
    await _store(runner, {k: v for k, v in data.items() if v is not None})
    return web.json_response(_world_body(runner))


async def patch_world(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    changes = _as_strings(await _read_json(request), allow_null=True)
    merged = dict(runner.world_data)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    await _store(runner, merged)
    return web.json_response(_world_body(runner))


async def _store(runner: Runner, data: dict[str, str]) -> None:
    try:
        await runner.put_world(data)
    except Exception as exc:
        log.warning("could not write the world ConfigMap: %s", exc)
        raise web.HTTPBadGateway(text=f"could not write the world ConfigMap: {exc}") from exc


async def debug_pods(request: web.Request) -> web.Response:
    """What the model thinks of every pod right now; for tests and for humans."""
    sim = request.app[RUNNER].sim
    pods = []
    for (namespace, name), series in sorted(sim.pods.items()):
        r = series.rates
        pods.append(
            {
                "namespace": namespace,
                "pod": name,
                "workload": series.view.workload,
                "deployment": series.view.deployment,
                "revision": series.view.revision,
                "node": series.view.node,
                "ready": series.view.ready,
                "serving": bool(r and r.serving),
                "rps": round(r.rps, 3) if r else 0.0,
                "utilisation": round(r.utilisation, 3) if r else 0.0,
                "errorRatio": round(r.error_ratio, 4) if r else 0.0,
                "latencyMs": round(r.latency_median_s * 1000, 2) if r else 0.0,
                "causes": [c.kind + (f":{c.detail}" if c.detail else "") for c in r.causes] if r else [],
                "memoryBytes": round(sum(series.memory_bytes.values())),
                "cpuHot": bool(r and r.cpu_hot),
            }
        )
    workloads = [
        {
            "namespace": ns,
            "workload": wl,
            "deployment": h.deployment,
            "errorRatio": round(h.error_ratio, 4),
            "latencyMs": round(h.latency_s * 1000, 2),
            "readyPods": h.ready_pods,
        }
        for (ns, wl), h in sorted(sim.health.items())
    ]
    return web.json_response({"pods": pods, "workloads": workloads})


def make_app(runner: Runner) -> web.Application:
    app = web.Application()
    app[RUNNER] = runner
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/world", get_world)
    app.router.add_put("/world", put_world)
    app.router.add_patch("/world", patch_world)
    app.router.add_get("/debug/pods", debug_pods)
    return app
