"""Prometheus credentials, CA and tenancy headers: the settings that name them, the requests the
adapter builds with them, and that the secrets never show up anywhere but the request."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from stanch.adapters.prometheus import (
    CredentialsError,
    PrometheusClient,
    PrometheusError,
    check_files,
    tls_verify,
)
from stanch.core.settings import ConfigError, PrometheusConnection, Settings, parse_header, resolve
from stanch.wiring.cli import build_parser, check_prometheus_files, settings_from_args

URL = "http://prometheus.monitoring.svc:9090"
HTTPS = "https://prometheus.monitoring.svc:9090"
TOKEN = "s3cr3t-token-value"
EMPTY = {"status": "success", "data": {"resultType": "vector", "result": []}}


def settings(flags: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Settings:
    base: dict[str, Any] = {"prometheus_url": URL, "all_namespaces": True}
    return resolve({**base, **(flags or {})}, env or {}, in_cluster=False, is_tty=False)


# --- settings -------------------------------------------------------------------------------------


def test_every_option_comes_from_its_flag_or_its_variable() -> None:
    from_env = settings(
        {"prometheus_url": HTTPS},
        {
            "STANCH_PROMETHEUS_BEARER_TOKEN_FILE": "/var/run/secrets/prom/token",
            "STANCH_PROMETHEUS_CA_FILE": "/etc/prom/ca.crt",
            "STANCH_PROMETHEUS_HEADERS": "X-Scope-OrgID: team-a\nX-Extra: one",
        },
    )
    conn = from_env.prometheus
    assert conn.bearer_token_file == "/var/run/secrets/prom/token"
    assert conn.ca_file == "/etc/prom/ca.crt"
    assert conn.headers == (("X-Scope-OrgID", "team-a"), ("X-Extra", "one"))
    flags = build_parser().parse_args(
        [
            "run",
            "--all-namespaces",
            "--prometheus-url",
            HTTPS,
            "--prometheus-header",
            "X-Scope-OrgID: team-b",
            "--prometheus-header",
            "X-Other:2",
            "--prometheus-insecure-skip-tls-verify",
            "--prometheus-username",
            "stanch",
            "--prometheus-password-file",
            "/p",
            "--signal-preset",
            "istio",
            "--workload-label",
            "app",
        ]
    )
    from_flags = settings_from_args(flags, {"STANCH_PROMETHEUS_HEADERS": "X-Scope-OrgID: env"}, is_tty=False)
    conn = from_flags.prometheus
    assert conn.headers == (("X-Scope-OrgID", "team-b"), ("X-Other", "2"))  # flags win over the variable
    assert conn.insecure_skip_tls_verify is True
    assert (conn.username, conn.password_file) == ("stanch", "/p")
    assert from_flags.signal_preset == "istio"
    assert 'app="{{workload}}"' in from_flags.signal_templates["error_ratio"]


def test_headers_variable_may_be_comma_separated() -> None:
    config = settings(env={"STANCH_PROMETHEUS_HEADERS": "X-Scope-OrgID: a, X-B: b"})
    assert config.prometheus_headers == (("X-Scope-OrgID", "a"), ("X-B", "b"))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("X-Scope-OrgID team-a", "is not 'Name: value'"),
        (": value", "is not 'Name: value'"),
        ("X Scope: a", "is not a valid header name"),
        ("Authorization: Bearer abc", "--prometheus-bearer-token-file"),
        ("host: evil", "set the host in --prometheus-url"),
    ],
)
def test_bad_headers_name_the_flag_and_the_fix(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings({"prometheus_headers": [raw]})
    assert str(err.value).startswith("--prometheus-header (or STANCH_PROMETHEUS_HEADERS): ")
    assert fragment in str(err.value)
    assert "Bearer abc" not in str(err.value)  # a refused value is never echoed


def test_a_header_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ConfigError, match="line break"):
        parse_header("prometheus_headers", "X-A: one\r\nX-Injected: two")


@pytest.mark.parametrize(
    ("flags", "field_flag", "fragment"),
    [
        (
            {
                "prometheus_bearer_token_file": "/t",
                "prometheus_username": "u",
                "prometheus_password_file": "/p",
            },
            "--prometheus-bearer-token-file",
            "exclude each other",
        ),
        ({"prometheus_username": "u"}, "--prometheus-password-file", "needs both"),
        ({"prometheus_password_file": "/p"}, "--prometheus-username", "needs both"),
        ({"prometheus_ca_file": "/ca"}, "--prometheus-url", "need an https:// URL"),
        ({"prometheus_insecure_skip_tls_verify": True}, "--prometheus-url", "need an https:// URL"),
        (
            {
                "prometheus_url": HTTPS,
                "prometheus_ca_file": "/ca",
                "prometheus_insecure_skip_tls_verify": True,
            },
            "--prometheus-insecure-skip-tls-verify",
            "exclude each other",
        ),
        ({"signal_preset": "datadog"}, "--signal-preset", "use one of simulator, kube-state-metrics"),
        ({"workload_label": "app.kubernetes.io/name"}, "--workload-label", "not a Prometheus label name"),
    ],
)
def test_conflicts_name_the_flag(flags: dict[str, Any], field_flag: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(flags)
    assert str(err.value).startswith(field_flag + " (or STANCH_")
    assert fragment in str(err.value)


def test_insecure_variable_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="STANCH_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY='maybe'"):
        settings({"prometheus_url": HTTPS}, {"STANCH_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY": "maybe"})


def test_the_start_line_says_which_mechanisms_without_values() -> None:
    config = settings(
        {"prometheus_bearer_token_file": "/t", "prometheus_headers": ["X-Scope-OrgID: tenant-secret"]}
    )
    described = json.dumps(config.prometheus.describe())
    assert '"auth": "bearer"' in described
    assert "X-Scope-OrgID" in described
    assert "tenant-secret" not in described


def test_start_fails_in_one_line_on_an_unreadable_token_file(tmp_path: Path) -> None:
    config = settings({"prometheus_bearer_token_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError) as err:
        check_prometheus_files(config)
    assert str(err.value).startswith(
        "--prometheus-bearer-token-file (or STANCH_PROMETHEUS_BEARER_TOKEN_FILE): "
    )
    assert "cannot read the bearer token file" in str(err.value)


def test_start_fails_on_a_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    config = settings({"prometheus_url": HTTPS, "prometheus_ca_file": str(bad)})
    with pytest.raises(
        ConfigError, match=r"^--prometheus-ca-file \(or STANCH_PROMETHEUS_CA_FILE\): cannot load"
    ):
        check_prometheus_files(config)


def test_tls_verify_follows_the_settings() -> None:
    assert tls_verify(PrometheusConnection(url=HTTPS)) is True
    assert tls_verify(PrometheusConnection(url=HTTPS, insecure_skip_tls_verify=True)) is False


# --- the requests the adapter builds --------------------------------------------------------------


def _recording_client(
    conn: PrometheusConnection, seen: list[httpx2.Request], status: int = 200
) -> PrometheusClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(status, json=EMPTY if status == 200 else {"status": "error", "error": "no"})

    # The client's own auth, headers and TLS settings, with the network swapped for a recorder.
    return PrometheusClient.connect(conn, transport=httpx2.MockTransport(handler))


def _query(client: PrometheusClient) -> None:
    async def go() -> None:
        try:
            await client.query("up")
        finally:
            await client.close()

    asyncio.run(go())


def test_the_bearer_token_and_headers_are_on_every_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    seen: list[httpx2.Request] = []
    conn = PrometheusConnection(url=URL, bearer_token_file=str(token), headers=(("X-Scope-OrgID", "team-a"),))
    _query(_recording_client(conn, seen))
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["X-Scope-OrgID"] == "team-a"
    assert seen[0].url.path == "/api/v1/query"


def test_a_rotated_token_is_used_without_a_restart(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    seen: list[httpx2.Request] = []
    client = _recording_client(PrometheusConnection(url=URL, bearer_token_file=str(token)), seen)

    async def go() -> None:
        await client.query("up")
        token.write_text("second")
        await client.query("up")
        await client.close()

    asyncio.run(go())
    assert [r.headers["Authorization"] for r in seen] == ["Bearer first", "Bearer second"]


def test_basic_auth_reads_the_password_file(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pa55")
    seen: list[httpx2.Request] = []
    conn = PrometheusConnection(url=URL, username="stanch", password_file=str(password))
    _query(_recording_client(conn, seen))
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"stanch:pa55").decode()


def test_without_credentials_no_authorization_header_is_sent() -> None:
    seen: list[httpx2.Request] = []
    _query(_recording_client(PrometheusConnection(url=URL), seen))
    assert "Authorization" not in seen[0].headers


def test_a_refused_token_is_a_typed_error_that_does_not_quote_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    seen: list[httpx2.Request] = []
    client = _recording_client(PrometheusConnection(url=URL, bearer_token_file=str(token)), seen, status=401)
    with pytest.raises(PrometheusError) as err:
        _query(client)
    assert err.value.kind == "unauthorized"
    assert TOKEN not in str(err.value)


def test_a_token_file_gone_at_query_time_is_a_credentials_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    seen: list[httpx2.Request] = []
    client = _recording_client(PrometheusConnection(url=URL, bearer_token_file=str(token)), seen)
    token.unlink()
    with pytest.raises(PrometheusError) as err:
        _query(client)
    assert err.value.kind == "credentials"
    assert "cannot read the bearer token file" in err.value.message
    assert not seen  # nothing was sent without the token


def test_a_multi_line_token_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("line-one-secret\nline-two-secret")
    with pytest.raises(CredentialsError) as err:
        check_files(PrometheusConnection(url=URL, bearer_token_file=str(token)))
    assert "more than one line" in str(err.value)
    assert "secret" not in str(err.value).replace(str(token), "")


# --- a real HTTP server on loopback ---------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers.items()))
        body = json.dumps(EMPTY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_and_tenant_reach_a_real_server(tmp_path: Path, loopback_server: str) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    conn = PrometheusConnection(
        url=loopback_server, bearer_token_file=str(token), headers=(("X-Scope-OrgID", "team-a"),)
    )
    _query(PrometheusClient.connect(conn, timeout=5))
    assert len(_Recorder.seen) == 1
    assert _Recorder.seen[0]["Authorization"] == f"Bearer {TOKEN}"
    assert _Recorder.seen[0]["X-Scope-OrgID"] == "team-a"
