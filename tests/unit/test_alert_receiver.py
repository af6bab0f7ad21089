"""The receiver's door, on a real socket: token, size, content type, handler failures, TLS files,
and the intake's answers for refusals that need no cluster."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stanch.adapters.alert_receiver import (
    MAX_BODY_BYTES,
    PATH,
    AlertReceiver,
    ReceiverConfig,
    ReceiverError,
    Reply,
    load_config,
)
from stanch.core.settings import resolve
from stanch.wiring.alerts import AlertIntake
from stanch.wiring.metrics import Metrics

TOKEN = "s3cret-token"


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append(("error", event, fields))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


class Served:
    def __init__(self, receiver: AlertReceiver, log: Log, calls: list[bytes], counted: list[str]) -> None:
        self.receiver, self.log, self.calls, self.counted = receiver, log, calls, counted

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}{PATH}"


@pytest.fixture
async def served(token_file: Path) -> AsyncIterator[Served]:
    calls: list[bytes] = []
    counted: list[str] = []

    async def handler(body: bytes) -> Reply:
        calls.append(body)
        if body == b'{"boom": true}':
            raise RuntimeError("a bug")
        return Reply(201, {"status": "ok"})

    log = Log()
    receiver = AlertReceiver(ReceiverConfig("127.0.0.1", 0, token_file), handler, log, count=counted.append)
    await receiver.start()
    assert receiver.port != 0
    yield Served(receiver, log, calls, counted)
    await receiver.stop()


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as reply:
        return reply.status, json.loads(await reply.read() or b"{}"), dict(reply.headers)


def rotate(path: Path, token: str | None) -> None:
    """What the kubelet does to a mounted Secret's file (sync: the test's loop may block on it)."""
    if token is None:
        path.unlink()
    else:
        path.write_text(token)


JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


async def test_the_right_token_reaches_the_handler(served: Served) -> None:
    status, body, _ = await post(served.url, b"{}", AUTH)
    assert (status, body) == (201, {"status": "ok"})
    assert served.calls == [b"{}"]


@pytest.mark.parametrize(
    "headers",
    [
        JSON,
        {**JSON, "Authorization": "Bearer wrong"},
        {**JSON, "Authorization": f"Bearer {TOKEN}x"},
        {**JSON, "Authorization": f"Basic {TOKEN}"},
        {**JSON, "Authorization": "Bearer"},
        {**JSON, "Authorization": TOKEN},
    ],
)
async def test_anything_but_the_token_is_401_and_never_reaches_the_handler(
    served: Served, headers: dict[str, str]
) -> None:
    status, body, reply_headers = await post(served.url, b"{}", headers)
    assert status == 401
    assert body["reason"] == "Unauthorized"
    assert reply_headers["WWW-Authenticate"].startswith("Bearer")
    assert served.calls == []
    assert served.counted == ["Unauthorized"]
    assert TOKEN not in json.dumps(served.log.lines)


async def test_a_rotated_token_takes_effect_without_a_restart(served: Served, token_file: Path) -> None:
    rotate(token_file, "rotated")
    assert (await post(served.url, b"{}", AUTH))[0] == 401
    assert (await post(served.url, b"{}", {**JSON, "Authorization": "Bearer rotated"}))[0] == 201


async def test_a_vanished_token_file_is_503_so_alertmanager_retries(served: Served, token_file: Path) -> None:
    rotate(token_file, None)
    status, body, _ = await post(served.url, b"{}", AUTH)
    assert (status, body["reason"]) == (503, "NoToken")
    assert served.calls == []


async def test_an_oversized_body_is_413_before_the_handler(served: Served) -> None:
    status, body, _ = await post(served.url, b"x" * (MAX_BODY_BYTES + 1), AUTH)
    assert (status, body["reason"]) == (413, "TooLarge")
    assert served.calls == []


async def test_a_chunked_oversized_body_is_413_too(served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    async with (
        aiohttp.ClientSession() as session,
        session.post(served.url, data=chunks(), headers=AUTH) as reply,
    ):
        assert reply.status == 413
    assert served.calls == []


async def test_other_content_types_are_415(served: Served) -> None:
    status, body, _ = await post(served.url, b"{}", {**AUTH, "Content-Type": "text/plain"})
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


async def test_a_failing_handler_is_a_500_and_the_server_lives_on(served: Served) -> None:
    status, body, _ = await post(served.url, b'{"boom": true}', AUTH)
    assert (status, body["reason"]) == (500, "InternalError")
    assert any(event == "alertmanager notification failed" for _, event, _ in served.log.lines)
    assert (await post(served.url, b"{}", AUTH))[0] == 201


async def test_other_methods_and_paths_are_refused(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(served.url, headers=AUTH) as reply:
            assert reply.status == 405
        async with session.post(served.url.replace(PATH, "/"), data=b"{}", headers=AUTH) as reply:
            assert reply.status == 404
    assert served.calls == []


@pytest.mark.parametrize("content", ["", "  \n", "x" * 5000])
def test_an_unusable_token_file_stops_the_start(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(ReceiverError, match=str(path)):
        load_config("127.0.0.1", 0, str(path))
    with pytest.raises(ReceiverError, match="cannot read"):
        load_config("127.0.0.1", 0, str(tmp_path / "missing"))


def test_a_taken_port_stops_the_start_and_a_free_one_is_served(token_file: Path) -> None:
    config = load_config("127.0.0.1", 0, str(token_file))
    assert config.sock is not None
    port = config.sock.getsockname()[1]
    try:
        with pytest.raises(ReceiverError, match=f"cannot listen on 127.0.0.1:{port}"):
            load_config("127.0.0.1", port, str(token_file))
    finally:
        config.sock.close()


async def test_the_socket_bound_at_start_is_the_one_served(token_file: Path) -> None:
    config = load_config("127.0.0.1", 0, str(token_file))
    assert config.sock is not None
    port = config.sock.getsockname()[1]

    async def handler(body: bytes) -> Reply:
        return Reply(200, {"got": len(body)})

    receiver = AlertReceiver(config, handler, Log())
    await receiver.start()
    try:
        assert receiver.port == port
        status, body, _ = await post(f"http://127.0.0.1:{port}{PATH}", b"{}", AUTH)
        assert (status, body) == (200, {"got": 2})
    finally:
        await receiver.stop()


def test_unloadable_tls_files_stop_the_start(token_file: Path, tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("not a certificate")
    (tmp_path / "tls.key").write_text("not a key")
    with pytest.raises(ReceiverError, match=r"tls\.crt"):
        load_config("127.0.0.1", 0, str(token_file), str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))


# --- the intake's refusals that need no cluster ---------------------------------------------------


class NoCluster:
    """Any call is a failure of the test: these refusals must come before the first request."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the intake called the cluster ({name}) for a refused notification")


def intake(**flags: Any) -> tuple[AlertIntake, Metrics]:
    config = resolve(
        {"prometheus_url": "http://prometheus:9090", "namespaces": ("shop", "team-*"), **flags},
        {},
        in_cluster=False,
        is_tty=False,
    )
    metrics = Metrics()
    return AlertIntake(NoCluster(), config, metrics), metrics  # type: ignore[arg-type]


def notification(namespace: str = "shop", **labels: str) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "X", "namespace": namespace, "deployment": "checkout", **labels},
        "annotations": {},
        "startsAt": "2026-03-14T09:41:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "abc",
    }
    return json.dumps(
        {
            "version": "4",
            "groupKey": "k",
            "status": "firing",
            "receiver": "stanch",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "truncatedAlerts": 0,
            "alerts": [alert],
        }
    ).encode()


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"[]", 400, "InvalidPayload"),
        (notification().replace(b'"4"', b"4"), 400, "InvalidPayload"),
        (notification(deployment=""), 422, "NoTarget"),
        (notification(deployment="Bad_Name"), 422, "InvalidTarget"),
        (notification("kube-system"), 403, "NamespaceNotWatched"),
        (notification("team"), 403, "NamespaceNotWatched"),
    ],
)
async def test_refusals_need_no_cluster_and_are_counted(body: bytes, status: int, reason: str) -> None:
    handler, metrics = intake()
    reply = await handler.handle(body)
    assert (reply.status, reply.body["reason"]) == (status, reason)
    assert reply.body["message"]
    assert metrics.alertmanager_notifications.labels(outcome=reason)._value.get() == 1


async def test_workload_labels_come_from_the_settings() -> None:
    handler, _ = intake(alertmanager_workload_labels="app")
    reply = await handler.handle(notification("shop", deployment="", app=""))
    assert reply.body["reason"] == "NoTarget"
    assert "none of the labels app is set" in reply.body["message"]


# --- settings -------------------------------------------------------------------------------------


def settings(flags: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return resolve(
        {"prometheus_url": "http://prometheus:9090", "all_namespaces": True, **flags},
        env or {},
        in_cluster=False,
        is_tty=False,
    )


def test_the_receiver_is_off_by_default_and_with_off() -> None:
    assert settings({}).alertmanager_address is None
    assert settings({}, {"STANCH_ALERTMANAGER_ADDRESS": "off"}).alertmanager_address is None


def test_flags_win_over_variables() -> None:
    config = settings(
        {"alertmanager_address": "127.0.0.1:9999", "alertmanager_token_file": "/flag"},
        {
            "STANCH_ALERTMANAGER_ADDRESS": ":8082",
            "STANCH_ALERTMANAGER_TOKEN_FILE": "/env",
            "STANCH_ALERTMANAGER_NAMESPACE_LABELS": "exported_namespace, namespace",
        },
    )
    assert str(config.alertmanager_address) == "127.0.0.1:9999"
    assert config.alertmanager_token_file == "/flag"
    assert config.alertmanager_namespace_labels == ("exported_namespace", "namespace")
    assert config.alertmanager_workload_labels == ("deployment", "workload")
    env_only = settings(
        {}, {"STANCH_ALERTMANAGER_ADDRESS": ":8082", "STANCH_ALERTMANAGER_TOKEN_FILE": "/env"}
    )
    assert str(env_only.alertmanager_address) == "0.0.0.0:8082"


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        ({"alertmanager_address": ":8082"}, "--alertmanager-token-file (or STANCH_ALERTMANAGER_TOKEN_FILE)"),
        ({"alertmanager_address": "host"}, "--alertmanager-address (or STANCH_ALERTMANAGER_ADDRESS)"),
        ({"alertmanager_tls_key_file": "/k"}, "--alertmanager-tls-cert-file"),
        ({"alertmanager_workload_labels": "app-name"}, "--alertmanager-workload-labels"),
        ({"alertmanager_severity_label": "a,b"}, "--alertmanager-severity-label"),
    ],
)
def test_bad_receiver_settings_name_the_flag(flags: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match="alertmanager") as caught:
        settings(flags)
    assert str(caught.value).startswith(names), str(caught.value)
