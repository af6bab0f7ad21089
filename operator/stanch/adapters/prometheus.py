"""Prometheus HTTP API: instant and range queries with timeouts and result-size caps.

Queries arrive here already rendered from named signal templates (label values escaped by
``stanch.core.investigation.signals.render``); this module never builds PromQL from user input.
Every failure is typed, because "no data" and "Prometheus is down" must reach the guard as what
they are — never as a healthy zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

# Caps protect the operator from a template that accidentally matches the whole cluster.
MAX_SERIES = 200
MAX_POINTS_PER_SERIES = 2_000
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class PrometheusError(Exception):
    """A query that produced no usable answer; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # unreachable | timeout | bad_query | server_error | too_large | bad_response
        self.message = message


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[datetime, float]]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None


class PrometheusClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # trust_env=False: never route queries through a proxy picked up from the environment.
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)
        self.requests = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        self.requests += 1
        try:
            resp = await self._http.get(f"{self.base_url}{path}", params=params)
        except httpx.TimeoutException as exc:
            raise PrometheusError(
                "timeout", f"no answer within {self.timeout}s ({exc.__class__.__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise PrometheusError("unreachable", f"{self.base_url}: {exc.__class__.__name__}: {exc}") from exc
        if len(resp.content) > MAX_RESPONSE_BYTES:
            raise PrometheusError("too_large", f"response of {len(resp.content)} bytes exceeds the cap")
        try:
            body = resp.json()
        except ValueError as exc:
            raise PrometheusError("bad_response", f"HTTP {resp.status_code}, not JSON") from exc
        if resp.status_code == 400 or body.get("errorType") == "bad_data":
            raise PrometheusError("bad_query", str(body.get("error", resp.text[:300])))
        if resp.status_code >= 400 or body.get("status") != "success":
            raise PrometheusError("server_error", f"HTTP {resp.status_code}: {body.get('error', '')}")
        return body["data"]

    async def query(self, promql: str, at: datetime | None = None) -> list[Series]:
        params = {"query": promql, "timeout": f"{self.timeout:g}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        data = await self._get("/api/v1/query", params)
        return _parse(data)

    async def query_range(self, promql: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        step_s = max(step.total_seconds(), 1.0)
        if (end - start).total_seconds() / step_s > MAX_POINTS_PER_SERIES:
            raise PrometheusError(
                "too_large", f"{start}..{end} at {step_s}s exceeds {MAX_POINTS_PER_SERIES} points"
            )
        params = {
            "query": promql,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step_s:g}",
            "timeout": f"{self.timeout:g}s",
        }
        data = await self._get("/api/v1/query_range", params)
        return _parse(data)

    async def ready(self) -> bool:
        try:
            resp = await self._http.get(f"{self.base_url}/-/ready")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200


def _value(raw: str) -> float | None:
    """Prometheus encodes values as strings; NaN and infinities are not measurements."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _parse(data: dict[str, Any]) -> list[Series]:
    result_type = data.get("resultType")
    result = data.get("result", [])
    if result_type == "scalar":
        ts, raw = result
        v = _value(raw)
        return [Series({}, [(datetime.fromtimestamp(float(ts), UTC), v)] if v is not None else [])]
    if not isinstance(result, list):
        raise PrometheusError("bad_response", f"unexpected resultType {result_type!r}")
    if len(result) > MAX_SERIES:
        raise PrometheusError("too_large", f"{len(result)} series exceed the cap of {MAX_SERIES}")
    series: list[Series] = []
    for item in result:
        pairs = item.get("values") or ([item["value"]] if "value" in item else [])
        points = []
        for ts, raw in pairs[-MAX_POINTS_PER_SERIES:]:
            v = _value(raw)
            if v is not None:
                points.append((datetime.fromtimestamp(float(ts), UTC), v))
        series.append(Series(dict(item.get("metric", {})), points))
    return series
