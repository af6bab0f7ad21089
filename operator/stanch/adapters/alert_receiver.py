"""The HTTP side of the Alertmanager receiver: an aiohttp server in Kopf's event loop that checks
the caller and the request's size before anything reads the body, then hands the bytes on.

What the body means is decided elsewhere (``stanch.core.alerting``, through the handler the wiring
passes in); this module only guards the door: bearer token (from a file, re-read on every request
so a rotated Secret takes effect without a restart), optional TLS, a size limit, a content type,
and a bounded number of notifications handled at once. Every refusal is a 4xx with a JSON body
and a log line; an exception in the handler is a 500, never a dead server.
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

PATH = "/api/v1/alerts"
"""Where Alertmanager POSTs (its ``webhook_configs[].url`` ends with this path)."""
MAX_BODY_BYTES = 1024 * 1024
"""Larger notifications are refused (413): set Alertmanager's ``max_alerts`` (docs/alertmanager.md)."""
MAX_CONCURRENT = 8
TOKEN_MAX_BYTES = 4096


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


Handler = Callable[[bytes], Awaitable[Reply]]


class Log(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...
    def warning(self, event: str, **fields: Any) -> Any: ...
    def error(self, event: str, **fields: Any) -> Any: ...


class ReceiverError(Exception):
    """The receiver cannot start (its token or TLS files): ``str()`` says which file and why."""


@dataclass(frozen=True)
class ReceiverConfig:
    host: str
    port: int
    token_file: Path
    tls: ssl.SSLContext | None = field(default=None, compare=False)
    sock: socket.socket | None = field(default=None, compare=False)
    """Bound before Kopf starts (a taken port is one line at start); None: bind when serving."""

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


def read_token(path: Path) -> bytes:
    """The token in ``path`` without surrounding whitespace (a Secret's file often ends in a
    newline); ReceiverError when it is missing, unreadable, empty or implausibly large."""
    try:
        with path.open("rb") as f:
            raw = f.read(TOKEN_MAX_BYTES + 1)
    except OSError as exc:
        raise ReceiverError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(raw) > TOKEN_MAX_BYTES:
        raise ReceiverError(f"the token file {path} is larger than {TOKEN_MAX_BYTES} bytes")
    token = raw.strip()
    if not token:
        raise ReceiverError(f"the token file {path} is empty")
    return token


def load_config(
    host: str, port: int, token_file: str, cert_file: str | None = None, key_file: str | None = None
) -> ReceiverConfig:
    """Check the files now, so a wrong mount stops the operator at start with one line instead of
    refusing every notification later."""
    path = Path(token_file)
    read_token(path)
    tls = None
    if cert_file and key_file:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            tls.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ReceiverError(
                f"cannot load the TLS certificate {cert_file} and key {key_file}: {exc}"
            ) from None
    return ReceiverConfig(host, port, path, tls, listen(host, port))


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ReceiverError when the address is taken or not ours."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ReceiverError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _bearer(header: str | None) -> bytes | None:
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode()


class AlertReceiver:
    def __init__(
        self, config: ReceiverConfig, handler: Handler, log: Log, count: Callable[[str], None] | None = None
    ) -> None:
        self.config = config
        self._handler = handler
        self._log = log
        self._count = count or (lambda _outcome: None)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._runner: web.AppRunner | None = None
        self.port = config.port
        """The bound port (differs from the configured one when that is 0)."""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(PATH, self._receive)
        return app

    async def start(self) -> None:
        """Bind and serve; OSError when the address is taken or not ours."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site: web.BaseSite
        if self.config.sock is not None:
            site = web.SockSite(runner, self.config.sock, ssl_context=self.config.tls)
        else:
            site = web.TCPSite(runner, self.config.host, self.config.port, ssl_context=self.config.tls)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refuse(self, request: web.Request, status: int, reason: str, message: str) -> web.Response:
        self._log.warning(
            "alertmanager notification refused",
            status=status,
            reason=reason,
            problem=message,
            peer=request.remote,
        )
        self._count(reason)
        headers = {"WWW-Authenticate": 'Bearer realm="stanch"'} if status == 401 else None
        return web.json_response(
            {"status": "refused", "reason": reason, "message": message}, status=status, headers=headers
        )

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            expected = read_token(self.config.token_file)
        except ReceiverError as exc:
            # The Secret is being rotated or was removed: Alertmanager retries a 503.
            self._log.error("alertmanager receiver has no token", problem=str(exc))
            self._count("NoToken")
            return web.json_response({"status": "error", "reason": "NoToken"}, status=503)
        given = _bearer(request.headers.get("Authorization"))
        if given is None or not hmac.compare_digest(given, expected):
            return self._refuse(
                request,
                401,
                "Unauthorized",
                "missing or wrong bearer token: set http_config.authorization.credentials_file in the"
                " Alertmanager receiver to the token Stanch reads from --alertmanager-token-file",
            )
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._too_large(request)
        if request.content_type != "application/json":
            return self._refuse(
                request,
                415,
                "UnsupportedMediaType",
                f"content type {request.content_type!r}; send application/json",
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(request)
        async with self._slots:
            try:
                reply = await self._handler(body)
            except Exception as exc:  # a bug in one notification must not stop the server
                self._count("InternalError")
                self._log.error(
                    "alertmanager notification failed", error=type(exc).__name__, problem=str(exc)[:300]
                )
                return web.json_response({"status": "error", "reason": "InternalError"}, status=500)
        return web.json_response(reply.body, status=reply.status)

    def _too_large(self, request: web.Request) -> web.Response:
        return self._refuse(
            request,
            413,
            "TooLarge",
            f"the notification is larger than {MAX_BODY_BYTES} bytes; lower max_alerts in the"
            " Alertmanager receiver's webhook_configs",
        )
