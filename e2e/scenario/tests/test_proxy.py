"""The Prometheus outage proxy cuts pooled connections too (loopback only, no cluster)."""

from __future__ import annotations

import http.server
import threading
import time

import httpx
import pytest

from e2e.scenario.proxy import OutageProxy


def test_outage_refuses_new_and_cuts_open_connections_then_recovers() -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    proxy = OutageProxy("127.0.0.1", srv.server_address[1])
    try:
        with httpx.Client(trust_env=False) as client:
            assert client.get(proxy.url + "/").status_code == 501  # reached the server
            proxy.outage(1.0)
            with pytest.raises(httpx.HTTPError):
                client.get(proxy.url + "/", timeout=2)
            time.sleep(1.2)
            assert client.get(proxy.url + "/").status_code == 501
    finally:
        proxy.close()
        srv.shutdown()
