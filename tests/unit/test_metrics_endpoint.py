"""The operator's own metrics endpoint (`stanch run --metrics-address`): served over HTTP from its
private registry, and a port that cannot be bound stops `stanch run` before Kopf starts."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import kopf
import pytest

from stanch.core.settings import HostPort, resolve
from stanch.wiring import runner
from stanch.wiring.metrics import Metrics


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_metrics_are_served_over_http() -> None:
    metrics = Metrics()
    metrics.handler_invocations.labels(handler="incident-investigate").inc()
    server = metrics.serve(HostPort(host="127.0.0.1", port=0))
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'stanch_build_info{version="' in body
    assert 'stanch_handler_invocations_total{handler="incident-investigate"} 1.0' in body
    assert "python_gc_objects_collected_total" not in body, "a private registry: no global collectors"


def test_run_stops_before_kopf_when_the_metrics_port_is_taken(
    busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: started.append(kwargs))
    monkeypatch.setattr(runner, "configure_logging", lambda *args, **kwargs: None)
    config = resolve(
        {
            "prometheus_url": "http://prometheus.monitoring.svc:9090",
            "all_namespaces": True,
            "metrics_address": f"127.0.0.1:{busy_port}",
            "liveness_endpoint": "off",
        },
        {},
        in_cluster=False,
        is_tty=False,
    )
    assert runner.run_operator(config, Metrics()) == 1
    assert started == []
