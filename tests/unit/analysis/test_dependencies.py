"""Failing dependencies: the host each runtime's error line names, resolved to the namespace's Service
and the workload behind it (or said to be external), and the Dependency hypothesis built on that."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from stanch.core.investigation.analysis import build_context
from stanch.core.investigation.analysis.ranking import rank
from stanch.core.investigation.analysis.rules import dependency_failure
from stanch.core.investigation.dependencies import (
    HostErrors,
    Namespace,
    candidate_hosts,
    dependency_evidence,
    failure_kinds,
    resolve,
    spec_change,
)
from stanch.core.models import (
    DependencyEvidence,
    Evidence,
    HypothesisCategory,
    LogSignature,
    ObjectRef,
    PodHealth,
)

from .scenario_builders import NOW, ONSET, at, flat, group, metric, revision, scoped, spec, step

# --- every runtime's way of saying it -------------------------------------------------------------

FORMATS = [
    # Go net/http and database/sql
    (
        'Get "http://payments:8080/charge": dial tcp 10.96.4.7:8080: connect: connection refused',
        "refused",
        "payments:8080",
    ),
    ("dial tcp 10.96.4.7:5432: connect: connection refused", "refused", "10.96.4.7:5432"),
    ("dial tcp 10.96.4.7:5432: i/o timeout", "timeout", "10.96.4.7:5432"),
    (
        "dial tcp: lookup payments.shop.svc.cluster.local on 10.96.0.10:53: no such host",
        "dns",
        "payments.shop.svc.cluster.local",
    ),
    ('Post "https://payments.shop:8443/v1": context deadline exceeded', "timeout", "payments.shop:8443"),
    # Java
    (
        "org.apache.http.conn.HttpHostConnectException: Connect to payments:8080 [payments/10.96.4.7] "
        "failed: Connection refused (Connection refused)",
        "refused",
        "payments",
    ),
    (
        "io.netty.channel.AbstractChannel$AnnotatedConnectException: "
        "Connection refused: payments/10.96.4.7:8080",
        "refused",
        "payments:8080",
    ),
    (
        "java.net.UnknownHostException: payments.shop.svc.cluster.local",
        "dns",
        "payments.shop.svc.cluster.local",
    ),
    (
        "java.net.SocketTimeoutException: connect timed out calling http://ledger:9090/entries",
        "timeout",
        "ledger:9090",
    ),
    # Python
    (
        "requests.exceptions.ConnectionError: HTTPConnectionPool(host='payments', port=8080): Max retries "
        "exceeded with url: /charge (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
        "object at 0x7f3b>: Failed to establish a new connection: [Errno 111] Connection refused'))",
        "refused",
        "payments:8080",
    ),
    (
        "aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host payments:8080 ssl:default "
        "[Connect call failed ('10.96.4.7', 8080)]",
        "refused",
        "payments:8080",
    ),
    ("Error 111 connecting to redis:6379. Connection refused.", "refused", "redis:6379"),
    # Node
    ("Error: connect ECONNREFUSED 10.96.4.7:8080", "refused", "10.96.4.7:8080"),
    ("Error: getaddrinfo ENOTFOUND payments", "dns", "payments"),
    # gRPC
    (
        'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing '
        'dial tcp 10.96.4.7:50051: connect: connection refused"',
        "unavailable",
        "10.96.4.7:50051",
    ),
    (
        'status = StatusCode.UNAVAILABLE details = "failed to connect to all addresses; last error: '
        'UNKNOWN: ipv4:10.96.4.7:50051: Failed to connect to remote host: Connection refused"',
        "unavailable",
        "10.96.4.7:50051",
    ),
    # Envoy / Istio access log
    (
        '[2024-05-01T12:00:00.000Z] "POST /charge HTTP/1.1" 503 UF upstream_reset_before_response_started'
        '{connection_failure} - "-" 0 91 1 - "-" "curl" "abc" "payments:8080" "10.244.1.5:8080" '
        "outbound|8080||payments.shop.svc.cluster.local",
        "unavailable",
        "payments.shop.svc.cluster.local:8080",
    ),
    # 5xx from an upstream
    ("upstream payments returned 503 Service Unavailable", "5xx", "payments"),
    # the local simulator's line
    (
        "ERROR dial tcp 10.1.2.3:5432: connect: connection refused to payments:5432 attempt=2 request_id=ab",
        "refused",
        "payments:5432",
    ),
]


@pytest.mark.parametrize(("line", "kind", "host"), FORMATS)
def test_every_runtime_names_its_failing_host(line: str, kind: str, host: str) -> None:
    assert kind in failure_kinds(line)
    assert host in candidate_hosts(line)


@pytest.mark.parametrize(
    "line",
    [
        "ERROR 503 Service Unavailable: worker pool exhausted (queue depth 300) request_id=ab",
        "INFO GET /api/v1/orders 200 12ms client=web",
        "ERROR unhandled exception in handler path=/api/v1/cart/123 status=500",
        "HTTP 503 Service Unavailable",
    ],
)
def test_lines_that_are_not_a_dependency_failing(line: str) -> None:
    assert failure_kinds(line) == []


def test_the_dns_server_of_a_failed_lookup_is_not_the_dependency() -> None:
    hosts = candidate_hosts("dial tcp: lookup ledger on 10.96.0.10:53: no such host")
    assert hosts == ["ledger"]


def test_envoys_bare_reset_names_no_host() -> None:
    line = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    assert failure_kinds(line)
    assert candidate_hosts(line) == []


# --- the namespace ----------------------------------------------------------------------------------

NS = "shop"


def service(name: str, ip: str, selector: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": selector or {"app": name}, **spec},
    }


def endpoint_slice(svc: str, ready: Sequence[str], not_ready: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{svc}-x1", "labels": {"kubernetes.io/service-name": svc}},
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in ready]
        + [{"addresses": [a], "conditions": {"ready": False}} for a in not_ready],
    }


def workload(
    kind: str, name: str, replicas: int, ready: int, revision_no: int | None = None
) -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": str(revision_no)} if revision_no else {}
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{kind}-{name}",
            "annotations": annotations,
            "managedFields": [
                {
                    "manager": "kubectl-set",
                    "operation": "Update",
                    "time": "2024-05-01T12:14:00Z",
                    "fieldsV1": {"f:spec": {"f:template": {}}},
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "subresource": "status",
                    "time": "2024-05-01T12:29:00Z",
                    "fieldsV1": {"f:status": {}},
                },
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "tier": "backend"}}},
        },
        "status": {"readyReplicas": ready},
    }


def replica_set(owner: str, number: int, created: datetime) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{owner}-{number}abc",
            "creationTimestamp": created.isoformat(),
            "annotations": {"deployment.kubernetes.io/revision": str(number)},
            "ownerReferences": [{"controller": True, "uid": f"uid-Deployment-{owner}"}],
        }
    }


WORLD = Namespace(
    NS,
    services=[
        service("payments", "10.96.4.7"),
        service("ledger", "10.96.4.8"),
        service("db", "None", selector={"app": "db"}),
        service("stripe", "", type="ExternalName", externalName="api.stripe.com", selector=None),
    ],
    endpoint_slices=[
        endpoint_slice("payments", [], ["10.244.1.5", "10.244.2.6"]),
        endpoint_slice("db", ["10.244.3.9"]),
    ],
    deployments=[workload("Deployment", "payments", 2, 0, revision_no=5)],
    stateful_sets=[workload("StatefulSet", "db", 1, 1)],
    replica_sets=[
        replica_set("payments", 4, ONSET - timedelta(hours=3)),
        replica_set("payments", 5, ONSET - timedelta(minutes=2)),
    ],
)


@pytest.mark.parametrize(
    ("host", "service_name", "external"),
    [
        ("10.96.4.7", "payments", False),  # ClusterIP
        ("10.96.4.7:8080", "payments", False),
        ("10.244.1.5:8080", "payments", False),  # a pod behind it (not ready, still its endpoint)
        ("10.244.3.9", "db", False),  # a headless Service's endpoint
        ("payments", "payments", False),
        ("payments:8080", "payments", False),
        ("payments.shop", "payments", False),
        ("payments.shop.svc", "payments", False),
        ("payments.shop.svc.cluster.local", "payments", False),
        ("payments.shop.svc.cluster.local.", "payments", False),
        ("db-0.db.shop.svc.cluster.local:5432", "db", False),  # a StatefulSet pod's own name
        ("stripe", "stripe", True),  # ExternalName
        ("api.stripe.com:443", None, True),
        ("203.0.113.9:443", None, True),
        ("payments.billing.svc.cluster.local", None, False),  # another namespace
        ("missing", None, False),
        ("127.0.0.1:15000", None, False),
    ],
)
def test_hosts_resolve_to_the_namespaces_services(
    host: str, service_name: str | None, external: bool
) -> None:
    got = resolve(host, WORLD)
    assert got.service == service_name, got
    assert got.external is external, got
    assert got.how


def test_other_namespaces_and_missing_services_say_so() -> None:
    assert "another namespace" in resolve("payments.billing.svc.cluster.local", WORLD).how
    assert "no Service named missing" in resolve("missing", WORLD).how


def test_the_spec_writer_is_the_change_not_the_status_writer() -> None:
    changed, what = spec_change(workload("Deployment", "payments", 2, 2))
    assert changed == at(14)
    assert what == "pod template written by kubectl-set"


@dataclass(frozen=True)
class L:
    time: datetime | None
    pod: str
    message: str


def test_lines_from_many_addresses_of_one_service_are_one_dependency() -> None:
    lines = [
        L(
            ONSET + timedelta(seconds=i),
            f"checkout-abc-{i % 3}",
            f"dial tcp {ip}:8080: connect: connection refused",
        )
        for i, ip in enumerate(["10.96.4.7", "10.244.1.5", "10.244.2.6"] * 50)
    ]
    lines.append(
        L(ONSET - timedelta(seconds=5), "checkout-abc-0", 'Get "http://payments:8080/x": i/o timeout')
    )
    deps = dependency_evidence(lines, WORLD)
    assert len(deps) == 1
    dep = deps[0]
    assert dep.count == 151
    assert dep.pods == 3
    assert dep.service is not None
    assert dep.service.name == "payments"
    assert dep.workload == ObjectRef(
        kind="Deployment", name="payments", namespace=NS, uid="uid-Deployment-payments"
    )
    assert (dep.endpoints_ready, dep.endpoints_total) == (0, 2)
    assert (dep.replicas, dep.ready_replicas) == (2, 0)
    assert dep.first_seen == ONSET - timedelta(seconds=5)
    assert "payments:8080" in dep.sample
    assert set(dep.failures) == {"refused", "timeout"}
    assert (dep.revision, dep.previous_revision) == (5, 4)
    assert dep.changed_at == ONSET - timedelta(minutes=2)
    assert "revision 5" in dep.change


def test_a_name_that_resolves_beats_a_random_address_on_the_same_line() -> None:
    line = "ERROR dial tcp 10.1.2.3:5432: connect: connection refused to payments:5432 attempt=1"
    (dep,) = dependency_evidence([L(ONSET, "p", line)], WORLD)
    assert dep.service is not None
    assert dep.service.name == "payments"
    assert dep.host == "payments:5432"


def test_external_hosts_are_named_as_external() -> None:
    (dep,) = dependency_evidence([L(ONSET, "p", "dial tcp 203.0.113.9:443: i/o timeout")], WORLD)
    assert dep.external
    assert dep.service is None
    assert "outside" in dep.resolution


def test_secrets_in_the_first_line_are_redacted() -> None:
    line = 'Get "https://user:hunter2@payments:8443/x": dial tcp 10.96.4.7:8443: connect: connection refused'
    (dep,) = dependency_evidence([L(ONSET, "p", line)], WORLD)
    assert "hunter2" not in dep.sample


# --- the hypothesis ---------------------------------------------------------------------------------


def sig(text: str, count: int, first: datetime = ONSET, revision_no: int | None = None) -> LogSignature:
    return LogSignature(
        signature=text, count=count, pods=6, first_seen=first, revision=revision_no, sample=text
    )


PAYMENTS = DependencyEvidence(
    host="payments:8080",
    failures=["refused"],
    count=480,
    pods=6,
    first_seen=ONSET + timedelta(seconds=10),
    sample="ERROR dial tcp 10.96.4.7:8080: connect: connection refused to payments:8080",
    service=ObjectRef(kind="Service", name="payments", namespace=NS),
    workload=ObjectRef(kind="Deployment", name="payments", namespace=NS),
    resolution="10.96.4.7 is the ClusterIP of Service payments",
    endpoints_ready=0,
    endpoints_total=2,
    replicas=2,
    ready_replicas=0,
    changed_at=ONSET - timedelta(hours=3),
    change="revision 4 (ReplicaSet payments-4abc) created",
    revision=4,
    previous_revision=3,
)
ERRORS = metric("error_ratio", step(0.002, 0.3, sigma=0.002))


def harmless_deploy_then_dependency(**dep: Any) -> Evidence:
    """Revision 7 rolled out 10 minutes before the onset; both revisions' pods err alike."""
    return Evidence(
        metrics=[
            ERRORS,
            scoped("error_ratio", "revision:7", 0.3, before=0.002),
            scoped("error_ratio", "revision:6", 0.31, before=0.002),
        ],
        rollouts=[
            revision(7, 5.0, "api:1.5.0", changes=["image api:1.4.2 → api:1.5.0"], current=True),
            revision(6, -600, "api:1.4.2"),
        ],
        pod_health=PodHealth(total=6, ready=6, by_revision=[group("7", 3, 3), group("6", 3, 3)]),
        log_signatures=[sig("ERROR dial tcp <ip>: connect: connection refused to payments:<n>", 480)],
        dependencies=[PAYMENTS.model_copy(update=dep)],
    )


def test_a_dependency_failing_at_the_onset_leads_and_no_rollback_of_the_target_is_suggested() -> None:
    ranked = rank(build_context(spec(), harmless_deploy_then_dependency(), now=NOW, created_at=NOW))
    top = ranked[0]
    assert top.category is HypothesisCategory.DEPENDENCY, ranked
    assert "Service payments (Deployment payments)" in top.statement
    assert "no automatic mitigation" in top.statement
    assert top.suggested_mitigation is None
    assert any("no ready endpoint (0/2)" in s for s in top.supporting)
    assert any("first line: ERROR dial tcp" in s for s in top.supporting)
    assert any("every revision of the target fails alike" in s for s in top.supporting)
    assert any("first appear at the onset" in s for s in top.supporting)
    assert any(
        "Deployment payments last changed 3h" in s and "revision 4" in s and "not at the onset" in s
        for s in top.supporting
    )


def test_a_dependency_that_changed_at_the_onset_gets_its_own_rollback() -> None:
    evidence = harmless_deploy_then_dependency(changed_at=ONSET - timedelta(minutes=1))
    h = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert h.suggested_mitigation is not None
    assert h.suggested_mitigation.target.name == "payments"
    assert h.suggested_mitigation.rollback is not None
    assert h.suggested_mitigation.rollback.to_revision == 3
    assert any("Deployment payments changed 1m before the onset" in s for s in h.supporting)


@pytest.mark.parametrize(
    ("update", "why"),
    [
        ({"external": True, "service": None, "workload": None}, "outside the cluster"),
        ({"workload": None}, "no Deployment or StatefulSet"),
        (
            {"workload": ObjectRef(kind="StatefulSet", name="payments", namespace=NS), "changed_at": ONSET},
            "no revision to roll back to",
        ),
        ({}, "did not change at the onset"),
    ],
)
def test_no_automatic_mitigation_says_why(update: dict[str, Any], why: str) -> None:
    h = dependency_failure(
        build_context(spec(), harmless_deploy_then_dependency(**update), now=NOW, created_at=NOW)
    )
    assert h is not None
    assert h.suggested_mitigation is None
    assert "no automatic mitigation: " in h.statement
    assert why in h.statement


def test_a_healthy_dependency_right_after_a_deploy_of_the_target_points_back_at_the_deploy() -> None:
    healthy = {"endpoints_ready": 2, "ready_replicas": 2}
    evidence = harmless_deploy_then_dependency(**healthy).model_copy(
        update={
            "metrics": [ERRORS],  # no per-revision comparison: one revision serves
            "rollouts": [
                revision(7, 13.0, "api:1.5.0", changes=["env DB_HOST: payments → paymnets"], current=True),
                revision(6, -600, "api:1.4.2", replicas=0),
            ],
            "pod_health": PodHealth(total=3, ready=3, by_revision=[group("7", 3, 3)]),
        }
    )
    failing = dependency_failure(
        build_context(spec(), harmless_deploy_then_dependency(), now=NOW, created_at=NOW)
    )
    h = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert failing is not None
    assert h is not None
    assert h.confidence <= failing.confidence - 30
    assert any("may call the dependency wrongly" in c for c in h.contradicting)


def test_without_resolved_evidence_the_logs_still_name_a_host() -> None:
    evidence = Evidence(
        metrics=[ERRORS, metric("latency_p99", flat(0.1))],
        log_signatures=[
            sig("Error: connect ECONNREFUSED <ip>", 200).model_copy(
                update={"sample": "Error: connect ECONNREFUSED 10.96.4.7:8080"}
            )
        ],
    )
    h = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert "dependency 10.96.4.7:8080" in h.statement
    assert h.suggested_mitigation is None


def test_only_the_new_revision_failing_on_it_is_not_the_dependency() -> None:
    evidence = harmless_deploy_then_dependency().model_copy(
        update={
            "log_signatures": [
                sig("ERROR dial tcp <ip>: connect: connection refused to payments:<n>", 480, revision_no=7)
            ]
        }
    )
    everyone = dependency_failure(
        build_context(spec(), harmless_deploy_then_dependency(), now=NOW, created_at=NOW)
    )
    only_new = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert everyone is not None
    assert only_new is not None
    assert only_new.confidence < everyone.confidence
    assert any("only revision 7" in c for c in only_new.contradicting)


# --- dependency metrics -----------------------------------------------------------------------------


def test_the_metrics_run_of_errors_starts_after_its_last_quiet_sample() -> None:
    quiet_then_erring = HostErrors(
        "payments", tuple((ONSET + timedelta(seconds=30 * i), v) for i, v in enumerate([0, 2, 0, 3, 4, 5]))
    )
    assert quiet_then_erring.since == ONSET + timedelta(seconds=90)
    assert quiet_then_erring.rate == 5
    assert HostErrors("payments", ((ONSET, 1.0), (NOW, 0.0))).since is None


def test_a_metric_alone_names_and_resolves_the_dependency() -> None:
    metric_host = HostErrors(
        "payments.shop.svc.cluster.local", ((ONSET - timedelta(minutes=1), 0.0), (ONSET, 12.5), (NOW, 14.0))
    )
    quiet = HostErrors("ledger.shop.svc.cluster.local", ((ONSET, 0.0), (NOW, 0.0)))
    (dep,) = dependency_evidence([], WORLD, [metric_host, quiet])
    assert dep.service is not None
    assert dep.service.name == "payments"
    assert dep.count == 0
    assert dep.failures == ["errors"]
    assert dep.errors_per_second == 14.0
    assert dep.errors_since == ONSET


def test_lines_and_the_metric_about_one_service_are_one_dependency() -> None:
    metric_host = HostErrors("payments.shop.svc.cluster.local", ((ONSET, 3.0), (NOW, 4.0)))
    lines = [L(ONSET, "p", "dial tcp 10.96.4.7:8080: connect: connection refused")] * 12
    (dep,) = dependency_evidence(lines, WORLD, [metric_host])
    assert dep.count == 12
    assert dep.host == "10.96.4.7:8080"  # as the lines write it
    assert dep.failures == ["refused", "errors"]
    assert dep.errors_per_second == 4.0


def test_a_metric_erring_since_the_onset_is_not_thin_evidence() -> None:
    measured = PAYMENTS.model_copy(
        update={
            "count": 0,
            "first_seen": None,
            "sample": "",
            "failures": ["errors"],
            "errors_per_second": 14.0,
            "errors_since": ONSET,
        }
    )
    evidence = harmless_deploy_then_dependency().model_copy(
        update={"log_signatures": [], "dependencies": [measured]}
    )
    h = dependency_failure(build_context(spec(), evidence, now=NOW, created_at=NOW))
    assert h is not None
    assert not any("log line(s) mention it" in c for c in h.contradicting)
    assert any("dependency_errors: 14/s from payments:8080" in s for s in h.supporting)
    assert any("first appear at the onset" in s for s in h.supporting)
    assert h.confidence >= 80
