"""Prometheus HTTP API: instant and range queries with timeouts and result-size caps.

Queries arrive here already rendered from named signal templates (label values escaped by
``stanch.core.investigation.signals.render``); this module never builds PromQL from user input.
Every failure is typed, because "no data" and "Prometheus is down" must reach the guard as what
they are — never as a healthy zero.

Credentials (a bearer token or a basic-auth password) are read from their files on every request,
as Prometheus's own ``credentials_file`` does, so a rotated Secret or projected token is picked up
without a restart; they go into the request headers and nowhere else (no log, no error message).
"""

from __future__ import annotations

import base64
import collections
import math
import ssl
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# httpx2: the one HTTP stack, the one lightkube (the Kubernetes client) already brings.
import httpx2 as httpx

from stanch.core.settings import PrometheusConnection

# Caps protect the operator from a template that accidentally matches the whole cluster.
MAX_SERIES = 200
MAX_POINTS_PER_SERIES = 2_000
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class PrometheusError(Exception):
    """A query that produced no usable answer; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        # unreachable | timeout | bad_query | server_error | too_large | bad_response | unauthorized
        # | credentials (the token or password file cannot be read)
        self.kind = kind
        self.message = message


class CredentialsError(Exception):
    """A credentials or CA file that cannot be used; the message names the file, never its content.
    ``field`` is the setting that named the file."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_FIELDS = {
    "bearer token": "prometheus_bearer_token_file",
    "password": "prometheus_password_file",
}


def _read_secret(path: str, what: str) -> str:
    field = _FIELDS[what]
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(field, f"cannot read the {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsError(field, f"the {what} file {path} is not UTF-8 text") from None
    if not value:
        raise CredentialsError(field, f"the {what} file {path} is empty")
    if any(c in value for c in "\r\n\0"):
        raise CredentialsError(field, f"the {what} file {path} holds more than one line")
    return value


def check_files(connection: PrometheusConnection) -> None:
    """Every file the connection names is usable now; raises :class:`CredentialsError`."""
    if connection.bearer_token_file is not None:
        _read_secret(connection.bearer_token_file, "bearer token")
    if connection.password_file is not None:
        _read_secret(connection.password_file, "password")
    tls_verify(connection)


class FileAuth(httpx.Auth):
    """``Authorization`` from a file read on every request: ``Bearer <token>`` or basic auth."""

    def __init__(
        self, *, token_file: str | None = None, username: str | None = None, password_file: str | None = None
    ) -> None:
        if (token_file is None) == (password_file is None):
            raise ValueError("exactly one of token_file and password_file")
        self.token_file = token_file
        self.username = username or ""
        self.password_file = password_file

    def header(self) -> str:
        if self.token_file is not None:
            return f"Bearer {_read_secret(self.token_file, 'bearer token')}"
        assert self.password_file is not None
        password = _read_secret(self.password_file, "password")
        pair = base64.b64encode(f"{self.username}:{password}".encode()).decode("ascii")
        return f"Basic {pair}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.header()
        yield request


def tls_verify(connection: PrometheusConnection) -> ssl.SSLContext | bool:
    """The ``verify`` for httpx2: the CA bundle's context, off when asked, else the system store."""
    if connection.insecure_skip_tls_verify:
        return False
    if connection.ca_file is not None:
        try:
            return ssl.create_default_context(cafile=connection.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialsError(
                "prometheus_ca_file", f"cannot load the CA file {connection.ca_file}: {exc}"
            ) from None
    return True


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[datetime, float]]

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None


class PrometheusClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        connection: PrometheusConnection | None = None,
    ) -> None:
        """``connection`` carries credentials, CA and headers; without it, plain ``base_url``.
        Raises :class:`CredentialsError` for a CA file that cannot be loaded."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = http or self.http_client(connection or PrometheusConnection(url=base_url), timeout)
        self.requests = 0
        # Requests by outcome ("ok" or a PrometheusError kind), read by the operator's metrics at
        # scrape time: an unreachable Prometheus is otherwise only a log line and "no data".
        self.outcomes: collections.Counter[str] = collections.Counter()

    @classmethod
    def connect(
        cls,
        connection: PrometheusConnection,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PrometheusClient:
        """``transport`` replaces the network (tests); auth, headers and TLS stay the connection's."""
        http = cls.http_client(connection, timeout, transport)
        return cls(connection.url, timeout=timeout, http=http)

    @staticmethod
    def http_client(
        connection: PrometheusConnection, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncClient:
        auth: httpx.Auth | None = None
        if connection.bearer_token_file is not None:
            auth = FileAuth(token_file=connection.bearer_token_file)
        elif connection.password_file is not None:
            auth = FileAuth(username=connection.username, password_file=connection.password_file)
        return httpx.AsyncClient(
            timeout=timeout,
            # Never route queries (and the token) through a proxy picked up from the environment.
            trust_env=False,
            # A redirect to another host would carry the headers (a tenant id) along.
            follow_redirects=False,
            auth=auth,
            headers=dict(connection.headers),
            verify=tls_verify(connection),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        self.requests += 1
        try:
            data = await self._request(path, params)
        except PrometheusError as exc:
            self.outcomes[exc.kind] += 1
            raise
        self.outcomes["ok"] += 1
        return data

    async def _request(self, path: str, params: dict[str, str]) -> Any:
        try:
            resp = await self._http.get(f"{self.base_url}{path}", params=params)
        except httpx.TimeoutException as exc:
            raise PrometheusError(
                "timeout", f"no answer within {self.timeout}s ({exc.__class__.__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise PrometheusError("unreachable", f"{self.base_url}: {exc.__class__.__name__}: {exc}") from exc
        except CredentialsError as exc:
            raise PrometheusError("credentials", str(exc)) from None
        if resp.status_code in (401, 403):
            # The body may echo what was sent; the status says enough.
            raise PrometheusError(
                "unauthorized", f"HTTP {resp.status_code} from {self.base_url}: check the token or password"
            )
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
        except (httpx.HTTPError, CredentialsError):
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
