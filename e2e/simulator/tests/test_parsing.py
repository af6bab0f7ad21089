"""Knobs, world keys, quantities and pods as the API server returns them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from e2e.simulator.knobs import (
    Dependency,
    KnobError,
    parse_dependencies,
    parse_duration,
    parse_overrides,
    resolve,
)
from e2e.simulator.pods import parse_quantity, pod_view, service_view
from e2e.simulator.world import DEFAULT_CLIENTS, NODE_FAIL, NODE_SLOW, HotPod, parse_world


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1.5m") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200
    with pytest.raises(KnobError):
        parse_duration("soon")


def test_dependencies() -> None:
    assert parse_dependencies("payments, billing/ledger:8080 ,") == (
        Dependency("payments", None, 5432),
        Dependency("ledger", "billing", 8080),
    )
    with pytest.raises(KnobError):
        parse_dependencies("db:http")


def test_overrides_reject_unknown_knobs() -> None:
    assert parse_overrides("error-ratio=0.2; latency-ms = 90") == (
        ("error-ratio", "0.2"),
        ("latency-ms", "90"),
    )
    with pytest.raises(KnobError):
        parse_overrides("errors=0.2")


def test_resolve_precedence_annotation_then_image_then_flag() -> None:
    annotations = {
        "sim.stanch.dev/error-ratio": "0.1",
        "sim.stanch.dev/latency-ms": "10",
        "sim.stanch.dev/flag.slow-path": "latency-ms=300",
        "sim.stanch.dev/lifecycle": "crashloop",  # owned by the kwok stages, not an error
        "unrelated/annotation": "x",
    }
    r = resolve(annotations, image_profile=(("error-ratio", "0.2"),), config_data={"slow-path": "on"})
    assert r.behaviour.error_ratio == 0.2
    assert r.behaviour.latency_ms == 300
    assert r.problems == ()


def test_quantities() -> None:
    assert parse_quantity("512Mi") == 512 * 2**20
    assert parse_quantity("1G") == 1e9
    assert parse_quantity("250m") == 0.25
    assert parse_quantity("2") == 2
    assert parse_quantity("1e3") == 1000
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("lots")


def test_world_keys() -> None:
    w = parse_world(
        {
            "traffic.default": "20",
            "traffic.shop.checkout": "300",
            "clients.shop.checkout": "web=3,bot=1",
            "client-errors.shop.checkout": "bot=0.5",
            "node.kwok-node-1": "fail",
            "node.kwok-node-2": "slow",
            "node.kwok-node-3": "ok",
            "dependency.shop.orders-db": "error-ratio=0.2; latency-ms=900",
            "cert.shop.checkout": "expired",
            "images": '{":2.0.0": "error-ratio=0.3"}',
            "bogus": "1",
            "traffic.shop": "10",
        }
    )
    assert w.traffic_for(("shop", "checkout")) == 300
    assert w.traffic_for(("shop", "cart")) == 20
    assert dict(w.clients_for(("shop", "checkout"))) == {"web": 0.75, "bot": 0.25}
    assert w.clients_for(("shop", "cart")) == DEFAULT_CLIENTS
    assert w.client_errors[("shop", "checkout")] == {"bot": 0.5}
    assert w.node_faults == {"kwok-node-1": NODE_FAIL, "kwok-node-2": NODE_SLOW}
    fault = w.dependency_faults[("shop", "orders-db")]
    assert (fault.error_ratio, fault.latency_ms) == (0.2, 900)
    assert ("shop", "checkout") in w.cert_expired
    assert w.image_profile("registry.local/shop/checkout:2.0.0") == (("error-ratio", "0.3"),)
    assert w.image_profile("shop/checkout:1.0.0") == ()
    assert len(w.problems) == 2


POD: dict[str, Any] = {
    "metadata": {
        "name": "checkout-7d9f8b6c5-x2x9z",
        "namespace": "shop",
        "uid": "u-1",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5", "sim.stanch.dev/workload": "true"},
        "annotations": {"sim.stanch.dev/error-ratio": "0.1"},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c5", "controller": True}
        ],
    },
    "spec": {
        "nodeName": "kwok-node-1",
        "containers": [
            {
                "name": "app",
                "image": "shop/checkout:1.0",
                "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}},
            },
            {"name": "proxy", "image": "envoy:1"},
        ],
    },
    "status": {
        "phase": "Running",
        "startTime": "2026-01-01T00:00:01Z",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "app",
                "restartCount": 2,
                "state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}},
                "lastState": {"terminated": {"reason": "OOMKilled"}},
            },
            {"name": "proxy", "restartCount": 0, "state": {"running": {}}},
        ],
    },
}


def test_pod_view_from_an_api_object() -> None:
    v = pod_view(POD)
    assert v is not None
    assert (v.workload, v.deployment, v.revision, v.node) == (
        "checkout",
        "checkout",
        "7d9f8b6c5",
        "kwok-node-1",
    )
    assert v.ready
    assert v.running
    assert not v.terminating
    assert v.main.memory_limit_bytes == 256 * 2**20
    assert v.main.cpu_limit_cores == 0.5
    assert v.main.last_terminated_reason == "OOMKilled"
    assert v.restart_count == 2
    assert v.containers[1].memory_limit_bytes is None
    assert v.main.started_at is not None
    assert v.started_at is not None
    assert v.main.started_at > v.started_at


def with_labels(labels: dict[str, str]) -> dict[str, Any]:
    obj = copy.deepcopy(POD)
    obj["metadata"]["labels"] = labels
    return obj


def test_pod_view_label_value_names_the_traffic_group() -> None:
    v = pod_view(with_labels({"pod-template-hash": "7d9f8b6c5", "sim.stanch.dev/workload": "cart"}))
    assert v is not None
    assert (v.workload, v.deployment) == ("cart", "checkout")
    assert v.labels == {"pod-template-hash": "7d9f8b6c5", "sim.stanch.dev/workload": "cart"}


def test_pods_without_the_label_are_ignored() -> None:
    assert pod_view(with_labels({"app": "x"})) is None


def test_namespace_images_apply_to_their_namespace_only_and_before_the_cluster_wide_ones() -> None:
    w = parse_world(
        {
            "images": '{"shop/api:2.0": "error-ratio=0.1", ":3.0": "latency-ms=50"}',
            "images.t-one": '{"shop/api:2.0": "error-ratio=0.9"}',
            "images.t-two": '{":3.0": "latency-ms=700"}',
        }
    )
    assert w.image_profile("shop/api:2.0", "t-one") == (("error-ratio", "0.9"),)
    assert w.image_profile("shop/api:2.0", "t-two") == (("error-ratio", "0.1"),)
    assert w.image_profile("shop/api:2.0") == (("error-ratio", "0.1"),)
    assert w.image_profile("other/x:3.0", "t-two") == (("latency-ms", "700"),)
    assert w.image_profile("other/x:3.0", "t-one") == (("latency-ms", "50"),)
    assert w.problems == ()


def test_an_images_key_must_name_one_namespace() -> None:
    w = parse_world({"images.": "{}", "images.a.b": "{}"})
    assert w.namespace_images == {}
    assert len(w.problems) == 2


def test_hot_pod_and_seed_keys() -> None:
    w = parse_world(
        {
            "hot-pod.shop.checkout": "cores=1.5",
            "hot-pod.shop.cart": "ordinal=2; cores=0.5",
            "hot-pod.shop.bad": "ordinal=-1",
            "hot-pod.shop.worse": "temperature=90",
            "seed.shop": "1234",
            "seed.a.b": "1",
        }
    )
    assert w.hot_pods[("shop", "checkout")] == HotPod(0, 1.5)
    assert w.hot_pods[("shop", "cart")] == HotPod(2, 0.5)
    assert w.noise_seeds == {"shop": "1234"}
    assert sorted(p.split("'")[1] for p in w.problems) == [
        "hot-pod.shop.bad",
        "hot-pod.shop.worse",
        "seed.a.b",
    ]


def test_service_view_from_an_api_object() -> None:
    svc = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "metrics"}, {"port": 82}],
        },
    }
    view = service_view(svc)
    assert view is not None
    assert view.key == ("shop", "web")
    assert view.target_ports == (8080, "metrics", 82)
    assert view.selects({"app": "web", "x": "y"})
    assert not view.selects({"app": "other"})
    assert (
        service_view({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"ports": [{"port": 5432}]}})
        is None
    )
    external = {
        "metadata": {"name": "x", "namespace": "shop"},
        "spec": {"type": "ExternalName", "selector": {"a": "b"}},
    }
    assert service_view(external) is None
