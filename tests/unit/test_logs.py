"""Log output: JSON with the object bound, Kopf's stdlib records included, credentials redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from stanch.core.settings import LogFormat
from stanch.wiring.logs import bind_object, configure_logging, object_fields, remove_logging

INCIDENT = {
    "apiVersion": "stanch.dev/v1alpha1",
    "kind": "Incident",
    "metadata": {"namespace": "shop", "name": "checkout-5xx", "uid": "u-1", "generation": 2},
}
MITIGATION = {
    "kind": "Mitigation",
    "metadata": {"namespace": "shop", "name": "rollback-1", "uid": "u-2"},
    "spec": {"incidentRef": {"name": "checkout-5xx"}},
}


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = configure_logging(LogFormat.JSON, "DEBUG", stream=out)
    yield out
    remove_logging(handler)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_bound_object_lines_are_json_with_identity(stream: io.StringIO) -> None:
    bind_object(INCIDENT).info("investigating", step="scope")
    (line,) = lines(stream)
    assert line["event"] == "investigating"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert line["step"] == "scope"
    assert {k: line[k] for k in ("kind", "namespace", "name", "uid", "incident")} == {
        "kind": "Incident",
        "namespace": "shop",
        "name": "checkout-5xx",
        "uid": "u-1",
        "incident": "checkout-5xx",
    }


def test_mitigation_lines_carry_their_incident() -> None:
    fields = object_fields(MITIGATION)
    assert fields["mitigation"] == "rollback-1"
    assert fields["incident"] == "checkout-5xx"


def test_credentials_are_redacted_in_fields_and_text(stream: io.StringIO) -> None:
    bind_object(INCIDENT).warning(
        "query failed for https://alice:s3cr3t-pass@prom:9090",
        password="hunter2hunter2",
        headers={"Authorization": "Bearer abcdefghijklmnop"},
    )
    raw = stream.getvalue()
    for secret in ("s3cr3t-pass", "hunter2hunter2", "abcdefghijklmnop"):
        assert secret not in raw
    (line,) = lines(stream)
    assert line["password"] == "[REDACTED]"


def test_kopf_stdlib_records_are_json_and_bound(stream: io.StringIO) -> None:
    # The shape of Kopf's ObjectLogger records: a flat k8s_ref in the record's extras.
    ref = {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "namespace": "shop",
        "name": "m1",
        "uid": "u-9",
    }
    logging.getLogger("kopf.objects").info(
        "Handler %r failed: token=%s", "mitigation-accept", "zzzzzzzzzz", extra={"k8s_ref": ref}
    )
    logging.getLogger("kopf.reactor").debug("plain library line")
    first, second = lines(stream)
    assert first["logger"] == "kopf.objects"
    assert (first["namespace"], first["name"], first["uid"], first["mitigation"]) == (
        "shop",
        "m1",
        "u-9",
        "m1",
    )
    assert "zzzzzzzzzz" not in first["event"]
    assert "'mitigation-accept'" in first["event"]
    assert second["event"] == "plain library line"


def test_tracebacks_are_rendered_and_redacted(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("connect to postgres://app:pa55word-xyz@db failed")
    except RuntimeError:
        structlog.get_logger("stanch").exception("boom")
    raw = stream.getvalue()
    assert "pa55word-xyz" not in raw
    (line,) = lines(stream)
    assert "RuntimeError" in line["exception"]


def test_console_format_is_readable() -> None:
    out = io.StringIO()
    handler = configure_logging(LogFormat.CONSOLE, "INFO", stream=out)
    try:
        bind_object(INCIDENT).info("investigating", api_key="k-123456789")
    finally:
        remove_logging(handler)
        structlog.reset_defaults()
    text = out.getvalue()
    assert "investigating" in text
    assert "checkout-5xx" in text
    assert "k-123456789" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_http_client_request_lines_stay_out_even_at_debug(stream: io.StringIO) -> None:
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).info('HTTP Request: GET https://127.0.0.1/api "HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("connection pool exhausted")
    assert [line["event"] for line in lines(stream)] == ["connection pool exhausted"]
