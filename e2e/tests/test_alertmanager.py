"""Alertmanager → Incident on the real API server.

End to end: a test-owned Prometheus scrapes the world's simulator and fires an alerting rule on a
workload's 5xx ratio into a real Alertmanager (loopback, gossip off), whose webhook delivers to the
operator's receiver; the operator, running as the shipped ServiceAccount, files one Incident for
the group, records a later alert of the group in it, and resolves it when the workload recovers.

Hostile payloads: every refusal is a 4xx and leaves nothing in the cluster; concurrent and repeated
deliveries of one notification converge on one Incident (the API server arbitrates the race).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cluster import WorldInfo
from e2e.cluster.alertmanager import alerting_prometheus, alertmanager, webhook_config
from e2e.cluster.processes import free_loopback_port
from e2e.identity import operator_kubeconfig
from e2e.kube import Kube, deployment
from e2e.operator_process import OperatorProcess
from e2e.tests.test_workloads import rollout_complete
from stanch.core.alerting.incidents import GROUP_LABEL

TOKEN = "e2e-receiver-token-0123456789"
PATH = "/api/v1/alerts"


def _receiver_operator(
    world: WorldInfo, namespace: str, workdir: Path, *, tls: tuple[Path, Path] | None = None
) -> tuple[OperatorProcess, str, Path]:
    token_file = workdir / "token"
    token_file.write_text(TOKEN + "\n")  # a Secret's file may end in a newline
    port = free_loopback_port()
    args = [
        "--alertmanager-address", f"127.0.0.1:{port}",
        "--alertmanager-token-file", str(token_file),
    ]  # fmt: skip
    scheme = "http"
    if tls is not None:
        args += ["--alertmanager-tls-cert-file", str(tls[0]), "--alertmanager-tls-key-file", str(tls[1])]
        scheme = "https"
    proc = OperatorProcess(
        operator_kubeconfig(world), world.prometheus_url, [namespace], workdir / "operator", extra_args=args
    )
    return proc, f"{scheme}://127.0.0.1:{port}{PATH}", token_file


def _trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _incidents(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.items("incident", namespace, selector=GROUP_LABEL)


def _receiver_up(url: str, verify: Any = True) -> bool:
    try:
        return httpx.post(url, content=b"{}", timeout=2, verify=verify).status_code == 401
    except httpx.HTTPError:
        return False


# --- end to end -----------------------------------------------------------------------------------


@pytest.mark.local_world("ready-pods", "simulator", "prometheus-process")
def test_an_alert_group_files_one_incident_that_resolves_with_the_alerts(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    assert world.simulator_url, "the workload simulator is part of the world"
    kube.apply(
        deployment("checkout", replicas=2, annotations={"sim.stanch.dev/error-ratio": "0.4"}),
        namespace=namespace,
    )
    kube.wait_for(lambda: rollout_complete(kube, namespace, "checkout"), 60, "the rollout")

    operator, receiver_url, token_file = _receiver_operator(world, namespace, tmp_path)
    operator.start()
    sel = f'namespace="{namespace}",deployment="checkout"'
    ratio = (
        f'sum by (namespace, deployment) (rate(http_requests_total{{{sel},code=~"5.."}}[10s]))'
        f" / sum by (namespace, deployment) (rate(http_requests_total{{{sel}}}[10s]))"
    )
    rules = {
        "groups": [
            {
                "name": "stanch-e2e",
                "interval": "1s",
                "rules": [
                    {
                        "alert": "CheckoutErrors",
                        "expr": f"{ratio} > 0.1",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": "5xx ratio above 10%"},
                    },
                    # The same group (routed by namespace and deployment), later and worse: it must
                    # join the first alert's Incident, not file a second one.
                    {
                        "alert": "CheckoutErrorsPage",
                        "expr": f"{ratio} > 0.2",
                        "for": "8s",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "5xx ratio above 20% for 8s"},
                    },
                ],
            }
        ]
    }
    config = webhook_config(receiver_url, token_file, group_by=["namespace", "deployment"])
    try:
        with (
            alertmanager(config, tmp_path / "am") as am_url,
            alerting_prometheus(
                world.simulator_url.removeprefix("http://"), am_url, rules, tmp_path / "prom"
            ),
        ):
            first = kube.wait_for(
                lambda: _incidents(kube, namespace), 90, "an Incident filed by Alertmanager"
            )
            assert len(first) == 1, [i["metadata"]["name"] for i in first]
            name = first[0]["metadata"]["name"]
            spec = first[0]["spec"]
            assert spec["target"] == {"kind": "Deployment", "name": "checkout"}
            assert spec["alertmanager"]["receiver"] == "stanch"
            assert spec["alertmanager"]["externalUrl"].startswith("http://")
            assert spec["resolved"] is False
            # The operator investigates it like any Incident.
            kube.wait_for(
                lambda: (
                    (kube.get("incident", name, namespace).get("status") or {}).get("phase")
                    == "Investigating"
                ),
                60,
                "the Incident under investigation",
            )

            def both_alerts() -> dict[str, Any] | None:
                inc = kube.get("incident", name, namespace)
                names = {a["labels"].get("alertname") for a in inc["spec"]["alertmanager"]["alerts"]}
                return inc if names == {"CheckoutErrors", "CheckoutErrorsPage"} else None

            joined = kube.wait_for(both_alerts, 90, "the later alert recorded in the same Incident")
            assert joined["spec"]["severity"] == "SEV1", "the critical alert raised the severity"
            assert all(a["status"] == "firing" for a in joined["spec"]["alertmanager"]["alerts"])
            assert [i["metadata"]["name"] for i in _incidents(kube, namespace)] == [name]

            def alert_on_timeline() -> bool:
                status = kube.get("incident", name, namespace).get("status") or {}
                return any(
                    e["kind"] == "Alert" and e["summary"].startswith("CheckoutErrorsPage fired")
                    for e in status.get("timeline") or []
                )

            kube.wait_for(alert_on_timeline, 60, "the later alert on the investigation's timeline")

            # The workload recovers: the alerts resolve, and so does the Incident.
            kube.apply(
                deployment("checkout", replicas=2, annotations={"sim.stanch.dev/error-ratio": "0"}),
                namespace=namespace,
            )

            def resolved() -> dict[str, Any] | None:
                inc = kube.get("incident", name, namespace)
                return (
                    inc
                    if inc["spec"].get("resolved") and (inc.get("status") or {}).get("phase") == "Resolved"
                    else None
                )

            done = kube.wait_for(resolved, 120, "the Incident resolved with its alerts")
            alerts = done["spec"]["alertmanager"]["alerts"]
            assert alerts
            assert all(a["status"] == "resolved" and a.get("endsAt") for a in alerts), alerts
            # Never deleted, never duplicated: the record stays.
            assert [i["metadata"]["name"] for i in _incidents(kube, namespace)] == [name]
    finally:
        operator.stop()
    filed = [r for r in operator.log_records() if r.get("event") == "incident filed from an alert group"]
    assert len(filed) == 1, filed
    assert filed[0]["incident"] == name
    updates = [r for r in operator.log_records() if r.get("event") == "incident updated from its alert group"]
    assert any(r.get("added", 0) >= 1 for r in updates), updates
    assert [r.get("resolved") for r in updates].count(True) == 1, updates


# --- hostile payloads -----------------------------------------------------------------------------


def _alert(namespace: str, workload: str = "checkout", **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "CheckoutErrors", "namespace": namespace, "deployment": workload, **labels},
        "annotations": {"summary": "5xx ratio above 10%"},
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "4b3d2c1a0f9e8d7c",
    }


def _payload(*alerts: dict[str, Any], group: str = "checkout") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="CheckoutErrors", deployment="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "stanch",
        "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_receiver(
    world: WorldInfo, namespace: str, crds_installed: None, tmp_path: Path, tls_files: tuple[Path, Path]
) -> Iterator[tuple[OperatorProcess, str, Path]]:
    operator, url, _ = _receiver_operator(world, namespace, tmp_path, tls=tls_files)
    operator.start()
    Kube.wait_for(lambda: _receiver_up(url, verify=_trust(tls_files[0])), 30, "the receiver over TLS")
    yield operator, url, tls_files[0]
    operator.stop()


def test_hostile_payloads_get_a_4xx_and_create_nothing(
    kube: Kube, namespace: str, tls_receiver: tuple[OperatorProcess, str, Path]
) -> None:
    operator, url, ca = tls_receiver
    kube.apply(deployment("checkout", replicas=1), namespace=namespace)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    good = json.dumps(_payload(_alert(namespace))).encode()
    wrong_types = _payload(_alert(namespace))
    wrong_types["alerts"][0]["labels"] = {"namespace": 7}
    not_a_date = _payload(_alert(namespace))
    not_a_date["alerts"][0]["startsAt"] = "yesterday"
    cases: list[tuple[str, dict[str, str], bytes, int, str]] = [
        ("no token", {}, good, 401, "Unauthorized"),
        ("wrong token", {"Authorization": "Bearer nope"}, good, 401, "Unauthorized"),
        ("basic auth", {"Authorization": f"Basic {TOKEN}"}, good, 401, "Unauthorized"),
        ("oversized", auth, b'{"version": "4", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "TooLarge"),
        ("not json", auth, b"{not json", 400, "InvalidPayload"),
        ("wrong types", auth, json.dumps(wrong_types).encode(), 400, "InvalidPayload"),
        ("not a date", auth, json.dumps(not_a_date).encode(), 400, "InvalidPayload"),
        (
            "version 3",
            auth,
            json.dumps({**_payload(_alert(namespace)), "version": "3"}).encode(),
            400,
            "InvalidPayload",
        ),
        ("no alerts", auth, json.dumps(_payload()).encode(), 400, "InvalidPayload"),
        (
            "no workload label",
            auth,
            json.dumps(_payload(_alert(namespace, workload=""))).encode(),
            422,
            "NoTarget",
        ),
        (
            "unknown workload",
            auth,
            json.dumps(_payload(_alert(namespace, "ghost"), group="ghost")).encode(),
            422,
            "UnknownTarget",
        ),
        ("bad name", auth, json.dumps(_payload(_alert(namespace, "../../x"))).encode(), 422, "InvalidTarget"),
        (
            "other namespace",
            auth,
            json.dumps(_payload(_alert("kube-system"))).encode(),
            403,
            "NamespaceNotWatched",
        ),
        (
            "two workloads",
            auth,
            json.dumps(
                _payload(_alert(namespace), {**_alert(namespace, "cart"), "fingerprint": "aa"})
            ).encode(),
            422,
            "AmbiguousTarget",
        ),
    ]
    with httpx.Client(verify=_trust(ca), timeout=10) as client:
        for what, headers, body, status, reason in cases:
            reply = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
            assert reply.status_code == status, (what, reply.status_code, reply.text[:300])
            assert reply.json()["reason"] == reason, (
                what,
                reply.text[:300],
            )
        wrong_type = client.post(url, content=good, headers={"Content-Type": "text/plain", **auth})
        assert wrong_type.status_code == 415
        assert client.get(url, headers=auth).status_code == 405
        # Plain HTTP to the TLS port is refused by the TLS layer; nothing reaches the handler.
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                url.replace("https://", "http://"), content=good, headers=auth, timeout=5
            ).raise_for_status()

    assert _incidents(kube, namespace) == []
    assert kube.items("incident", namespace) == []
    assert kube.get("incident", selector=GROUP_LABEL, namespace="kube-system")["items"] == []
    assert operator.proc is not None
    assert operator.proc.poll() is None, "the operator is still running"
    refusals = [r for r in operator.log_records() if r.get("event") == "alertmanager notification refused"]
    assert {r.get("reason") for r in refusals} >= {c[4] for c in cases}
    assert not any(TOKEN in json.dumps(r) for r in operator.log_records()), "the token is never logged"


def test_retries_and_concurrent_deliveries_converge_on_one_incident(
    kube: Kube, namespace: str, tls_receiver: tuple[OperatorProcess, str, Path]
) -> None:
    _, url, ca = tls_receiver
    kube.apply(deployment("checkout", replicas=1), namespace=namespace)
    firing = _alert(namespace)
    body = json.dumps(_payload(firing)).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def deliver_body(content: bytes) -> int:
        with httpx.Client(verify=_trust(ca), timeout=30) as client:
            return client.post(url, content=content, headers=headers).status_code

    def deliver(_: int) -> int:
        return deliver_body(body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(deliver, range(8)))
    assert all(s in (200, 201) for s in statuses), statuses
    assert statuses.count(201) == 1, statuses  # exactly one delivery filed it; the others found it
    assert deliver(0) == 200  # a later retry changes nothing
    incidents = _incidents(kube, namespace)
    assert len(incidents) == 1, [i["metadata"]["name"] for i in incidents]
    # The investigation writes status meanwhile; the spec's generation says whether anything else did.
    generation = incidents[0]["metadata"]["generation"]
    time.sleep(1)
    assert deliver(0) == 200
    assert _incidents(kube, namespace)[0]["metadata"]["generation"] == generation, "a retry writes nothing"

    # The group resolves: the same Incident is marked resolved, and a repeat of that changes nothing.
    resolved = _payload({**firing, "status": "resolved", "endsAt": datetime.now(UTC).isoformat()})
    resolved["status"] = "resolved"
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    httpx.post(
                        url, content=json.dumps(resolved), headers=headers, verify=_trust(ca), timeout=30
                    ).status_code
                ),
                range(4),
            )
        )
    assert all(s == 200 for s in statuses), statuses
    (incident,) = _incidents(kube, namespace)
    assert incident["spec"]["resolved"] is True
    assert [a["status"] for a in incident["spec"]["alertmanager"]["alerts"]] == ["resolved"]

    # The group fires again later: the next episode is a new Incident, the first one stays the record.
    again = json.dumps(_payload({**firing, "startsAt": datetime.now(UTC).isoformat()})).encode()
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda _: deliver_body(again), range(4)))
    assert sorted(statuses) == [200, 200, 200, 201], statuses
    episodes = {i["metadata"]["name"]: i for i in _incidents(kube, namespace)}
    first_name = incident["metadata"]["name"]
    assert set(episodes) == {first_name, f"{first_name}-2"}
    assert episodes[first_name]["spec"]["resolved"] is True
    assert episodes[f"{first_name}-2"]["spec"]["resolved"] is False
    assert episodes[f"{first_name}-2"]["metadata"]["labels"]["stanch.dev/alert-episode"] == "2"
