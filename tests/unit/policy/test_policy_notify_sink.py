"""The webhook sink end to end against a loopback HTTP server: one grouped POST, Slack shape."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stanch.core.policy.notifications import notice_for, offer
from stanch.core.settings import Settings, resolve
from stanch.wiring.handlers.policy import notifier_from_settings

from .policy_builders import NOW


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/abc", received
    server.shutdown()
    server.server_close()


def configured(env: dict[str, str]) -> Settings:
    flags = {"prometheus_url": "http://127.0.0.1:9090", "all_namespaces": True}
    return resolve(flags, env, in_cluster=False, is_tty=False)


def test_nothing_is_sent_by_default() -> None:
    assert notifier_from_settings(configured({}), lambda: NOW) is None


def test_non_http_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="http or https"):
        configured({"STANCH_NOTIFY_URL": "file:///etc/passwd"})


async def test_grouped_slack_message(receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    clock = [NOW]
    notifier = notifier_from_settings(
        configured({"STANCH_NOTIFY_URL": url, "STANCH_NOTIFY_FORMAT": "slack"}), lambda: clock[0]
    )
    assert notifier is not None
    for name in ("a", "b"):
        body = {
            "metadata": {"name": name, "namespace": "payments"},
            "status": {
                "phase": "AwaitingApproval",
                "audit": [{"time": NOW.isoformat(), "toPhase": "AwaitingApproval"}],
            },
        }
        notice = notice_for(body, NOW)
        assert notice is not None
        notifier.outbox = offer(notifier.outbox, notice, NOW, notifier.limits)
    await notifier.flush()
    assert received == [], "waits for neighbours"
    clock[0] = NOW + timedelta(seconds=31)
    await notifier.flush()
    await notifier.sink.close()
    assert len(received) == 1
    assert received[0]["text"].startswith("*Stanch: 2 mitigation(s) need a human*")
