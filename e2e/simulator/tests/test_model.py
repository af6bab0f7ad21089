"""The pure model: load, capacity, revisions, nodes, dependencies, memory and CPU."""

from __future__ import annotations

from dataclasses import replace

import pytest

from e2e.simulator.model import (
    APP,
    CERT,
    DEPENDENCY,
    DEPENDENCY_SLOW,
    NODE,
    OVERLOAD,
    Inputs,
    Plan,
    WorkloadHealth,
    load_latency_factor,
    plan,
)
from e2e.simulator.pods import PodView, ServiceView
from e2e.simulator.tests.factories import T0, pod, replicas
from e2e.simulator.world import parse_world

NOW = T0 + 600


def run(pods: list[PodView], world: dict[str, str] | None = None, **kw: object) -> Plan:
    return plan(Inputs(pods, parse_world(world or {}), NOW, **kw))  # type: ignore[arg-type]


def mean_error(p: Plan, workload: str = "checkout") -> float:
    return p.workloads[("shop", workload)].error_ratio


def test_traffic_is_split_over_ready_pods_only() -> None:
    pods = replicas(4)
    pods[3] = pod(pods[3].name, ready=False)
    p = run(pods, {"traffic.shop.checkout": "90"})
    assert [round(p.pods[x.key].rps, 6) for x in pods] == [30.0, 30.0, 30.0, 0.0]


def test_default_traffic_applies_without_a_key() -> None:
    p = run(replicas(2))
    assert sum(r.rps for r in p.pods.values()) == pytest.approx(50.0)


def test_scaling_up_lowers_per_pod_load_errors_and_latency() -> None:
    world = {"traffic.shop.checkout": "600"}
    small = run(replicas(3, knobs={"capacity-rps": "100"}), world)
    large = run(replicas(8, knobs={"capacity-rps": "100"}), world)
    small_pod = next(iter(small.pods.values()))
    large_pod = next(iter(large.pods.values()))
    assert small_pod.rps == pytest.approx(200.0)
    assert large_pod.rps == pytest.approx(75.0)
    assert mean_error(small) == pytest.approx(0.5, abs=0.02)  # half the load beyond capacity is shed
    assert mean_error(large) < 0.01
    assert large_pod.latency_median_s < small_pod.latency_median_s
    assert any(c.kind == OVERLOAD for c in small_pod.causes)


def test_scale_down_under_load_raises_errors() -> None:
    world = {"traffic.shop.checkout": "250"}
    before = run(replicas(4), world)
    after = run(replicas(2), world)
    assert mean_error(before) < 0.02
    assert mean_error(after) > 0.15


def test_latency_grows_queueing_style_near_capacity() -> None:
    assert load_latency_factor(0.1) == pytest.approx(1.0, abs=0.01)
    assert load_latency_factor(0.5) < 1.2
    assert load_latency_factor(0.9) > 5
    assert load_latency_factor(3.0) == load_latency_factor(0.95)


def test_bad_revision_raises_errors_only_on_its_pods() -> None:
    good = replicas(3, prefix="checkout-aaa111", revision="aaa111")
    bad = replicas(1, prefix="checkout-bbb222", revision="bbb222", knobs={"error-ratio": "0.4"})
    p = run(good + bad, {"traffic.shop.checkout": "100"})
    for g in good:
        assert p.pods[g.key].error_ratio == 0.0
    assert p.pods[bad[0].key].error_ratio == pytest.approx(0.4)
    assert [c.kind for c in p.pods[bad[0].key].causes] == [APP]
    assert mean_error(p) == pytest.approx(0.1)


def test_image_profile_from_the_world_changes_behaviour_without_annotations() -> None:
    old = pod("checkout-a-1", image="shop/checkout:1.4.1")
    new = pod("checkout-b-1", image="shop/checkout:1.4.2", revision="b")
    p = run([old, new], {"images": '{"shop/checkout:1.4.2": {"error-ratio": "0.3"}}'})
    assert p.pods[old.key].error_ratio == 0.0
    assert p.pods[new.key].error_ratio == pytest.approx(0.3)


def test_feature_flag_in_config_map_turns_an_error_path_on_and_off() -> None:
    knobs = {
        "config-map": "checkout-flags",
        "flag.new-pricing": "error-ratio=0.5; error-message=pricing {id}",
    }
    pods = replicas(2, knobs=knobs)
    off = run(pods, config_maps={("shop", "checkout-flags"): {"new-pricing": "false"}})
    on = run(pods, config_maps={("shop", "checkout-flags"): {"new-pricing": "true"}})
    assert mean_error(off) == 0.0
    assert mean_error(on) == pytest.approx(0.5)
    assert next(iter(on.pods.values())).behaviour.error_message == "pricing {id}"


def test_node_fault_from_the_world_hits_only_pods_on_that_node() -> None:
    a = pod("checkout-1", node="node-1")
    b = pod("checkout-2", node="node-2")
    p = run([a, b], {"node.node-2": "fail"})
    assert p.pods[a.key].error_ratio == 0.0
    assert p.pods[b.key].error_ratio > 0.8
    assert p.pods[b.key].causes[0].kind == NODE


def test_unready_node_fails_its_pods_and_bad_node_knob_is_per_pod() -> None:
    a = pod("checkout-1", node="node-1", knobs={"bad-node": "node-1", "bad-node-effect": "slow"})
    b = pod("checkout-2", node="node-2", knobs={"bad-node": "node-1", "bad-node-effect": "slow"})
    c = pod("checkout-3", node="node-3")
    p = run([a, b, c], unready_nodes=frozenset({"node-3"}))
    assert p.pods[a.key].latency_median_s > 3 * p.pods[b.key].latency_median_s
    assert p.pods[b.key].error_ratio == 0.0
    assert p.pods[c.key].error_ratio > 0.8


def test_dependency_failure_propagates_to_callers_on_the_next_tick() -> None:
    callers = replicas(2, knobs={"depends-on": "payments"})
    payments = replicas(2, prefix="payments-x", workload="payments", knobs={"error-ratio": "0.6"})
    first = run(callers + payments)
    assert mean_error(first) == 0.0  # the dependency's health is not known yet
    second = run(callers + payments, previous=first.workloads)
    assert mean_error(second) == pytest.approx(0.6, abs=0.01)
    kinds = {c.kind for c in second.pods[callers[0].key].causes}
    assert kinds == {DEPENDENCY}


def test_world_dependency_fault_on_an_external_dependency() -> None:
    callers = replicas(2, knobs={"depends-on": "orders-db:5432"})
    healthy = run(callers)
    slow = run(callers, {"dependency.shop.orders-db": "slow"})
    down = run(callers, {"dependency.shop.orders-db": "fail"})
    assert mean_error(healthy) == 0.0
    assert (
        slow.workloads[("shop", "checkout")].latency_s > healthy.workloads[("shop", "checkout")].latency_s + 1
    )
    assert {c.kind for c in next(iter(slow.pods.values())).causes} == {DEPENDENCY_SLOW}
    assert mean_error(down) > 0.99


def test_dependency_with_no_ready_pods_is_refusing_connections() -> None:
    callers = replicas(1, knobs={"depends-on": "payments"})
    previous = {("shop", "payments"): WorkloadHealth("payments", 1.0, 0.0, 0, True)}
    p = run(callers, previous=previous)
    assert mean_error(p) > 0.99


def test_memory_leak_grows_with_uptime_and_stays_under_the_limit() -> None:
    leaky = [pod("checkout-1", knobs={"memory-leak-mb-per-min": "20"}, memory_limit_mb=512)]
    early = plan(Inputs(leaky, parse_world({}), T0 + 60))
    later = plan(Inputs(leaky, parse_world({}), T0 + 600))
    much_later = plan(Inputs(leaky, parse_world({}), T0 + 3600))
    m = [x.pods[leaky[0].key].memory_bytes["app"] for x in (early, later, much_later)]
    assert m[0] < m[1] < m[2]
    assert m[2] <= 512 * 1024 * 1024
    assert much_later.pods[leaky[0].key].memory_pressure
    assert not early.pods[leaky[0].key].memory_pressure


def test_cpu_hot_pins_exactly_the_chosen_ordinal() -> None:
    pods = replicas(3, knobs={"cpu-hot-ordinal": "1", "cpu-hot-cores": "2"}, cpu_limit=1.0)
    p = run(pods)
    hot = [x.name for x in pods if p.pods[x.key].cpu_hot]
    assert hot == [pods[1].name]
    assert p.pods[pods[1].key].cpu_cores["app"] == pytest.approx(1.0)  # throttled at the limit
    assert p.pods[pods[1].key].latency_median_s > p.pods[pods[0].key].latency_median_s


def test_cpu_hot_after_waits_for_uptime() -> None:
    pods = replicas(2, knobs={"cpu-hot-ordinal": "0", "cpu-hot-after": "20m"})
    assert not any(r.cpu_hot for r in run(pods).pods.values())


def test_client_mix_and_per_client_errors() -> None:
    world = {"clients.shop.checkout": "web=1,scraper=3", "client-errors.shop.checkout": "scraper=0.5"}
    r = next(iter(run(replicas(2), world).pods.values()))
    assert dict(r.clients) == pytest.approx({"web": 0.25, "scraper": 0.75})
    web = dict(r.outcomes["web"])
    scraper = dict(r.outcomes["scraper"])
    assert web.get(500, 0.0) == 0.0
    assert scraper[500] == pytest.approx(0.5)


def test_expired_certificate_from_world_or_knob() -> None:
    world = run(replicas(1), {"cert.shop.checkout": "expired"})
    knob = run(replicas(1, knobs={"cert-expired": "true"}))
    for p in (world, knob):
        r = next(iter(p.pods.values()))
        assert r.causes[0].kind == CERT
        assert r.error_ratio > 0.8


def test_scaled_to_zero_is_answered_by_the_load_balancer() -> None:
    first = run(replicas(2))
    gone = run([], previous=first.workloads)
    assert ("shop", "checkout") in gone.edge
    assert gone.edge[("shop", "checkout")].rps == pytest.approx(50.0)
    forgotten = run([], previous=first.workloads, namespaces=frozenset({"other"}))
    assert forgotten.edge == {}


def test_never_ready_workload_gets_no_edge_errors() -> None:
    p = run(replicas(2, ready=False))
    assert p.edge == {}


def test_bad_knob_values_keep_defaults_and_are_reported() -> None:
    p = run([pod("checkout-1", knobs={"error-ratio": "lots", "latency-mss": "3"})])
    assert next(iter(p.pods.values())).behaviour.error_ratio == 0.0
    assert any("error-ratio" in msg for msg in p.problems)
    assert any("latency-mss" in msg for msg in p.problems)


def test_warmup_knob_makes_a_new_pod_fail_only_while_it_warms_up() -> None:
    cold = [pod("profile-1", knobs={"warmup": "20s", "warmup-error-ratio": "0.5"})]
    warming = plan(Inputs(cold, parse_world({}), T0 + 5))
    warm = plan(Inputs(cold, parse_world({}), T0 + 60))
    assert warming.pods[cold[0].key].error_ratio == pytest.approx(0.5, abs=0.05)
    assert warm.pods[cold[0].key].error_ratio < 0.05


def test_a_namespace_image_profile_changes_only_pods_of_that_namespace() -> None:
    ours = pod("checkout-b-1", image="shop/checkout:1.4.2", revision="b")
    world = {"images.elsewhere": '{"shop/checkout:1.4.2": {"error-ratio": "0.3"}}'}
    assert run([ours], world).pods[ours.key].error_ratio == 0.0
    world = {"images.shop": '{"shop/checkout:1.4.2": {"error-ratio": "0.3"}}'}
    assert run([ours], world).pods[ours.key].error_ratio == pytest.approx(0.3)


def _svc(selector: dict[str, str], *ports: int | str) -> dict[tuple[str, str], ServiceView]:
    return {("shop", "checkout"): ServiceView("shop", "checkout", selector, tuple(ports))}


def _labelled(n: int, **labels: str) -> list[PodView]:
    return [replace(p, labels={"app": "checkout", **labels}) for p in replicas(n)]


def test_a_service_that_selects_the_pods_on_their_port_changes_nothing() -> None:
    pods = _labelled(3)
    plain = plan(Inputs(pods, parse_world({}), T0 + 100))
    served = plan(Inputs(pods, parse_world({}), T0 + 100, services=_svc({"app": "checkout"}, 8080)))
    named = plan(Inputs(pods, parse_world({}), T0 + 100, services=_svc({"app": "checkout"}, "http")))
    assert plain.pods == served.pods == named.pods
    assert not served.edge


@pytest.mark.parametrize(
    "services",
    [_svc({"app": "checkout-v2"}, 8080), _svc({"app": "checkout"}, 9090), _svc({"app": "checkout"}, "grpc")],
    ids=["selector", "target-port", "port-name"],
)
def test_a_service_that_reaches_no_pod_leaves_them_idle_and_the_edge_answers_503(
    services: dict[tuple[str, str], ServiceView],
) -> None:
    pods = _labelled(3)
    before = plan(Inputs(pods, parse_world({}), T0 + 100, services=_svc({"app": "checkout"}, 8080)))
    broken = plan(Inputs(pods, parse_world({}), T0 + 101, previous=before.workloads, services=services))
    assert all(r.rps == 0 for r in broken.pods.values())
    edge = broken.edge[("shop", "checkout")]
    assert edge.rps == 50.0
    assert broken.workloads[("shop", "checkout")].error_ratio == 1.0


def test_a_service_sends_traffic_only_to_the_pods_it_selects() -> None:
    pods = _labelled(2) + [
        replace(p, labels={"app": "checkout", "track": "canary"}) for p in replicas(1, prefix="c")
    ]
    result = plan(
        Inputs(
            pods, parse_world({"traffic.shop.checkout": "90"}), T0 + 100, services=_svc({"track": "canary"})
        )
    )
    rps = {key[1]: r.rps for key, r in result.pods.items()}
    assert rps["c-00000"] == 90.0
    assert rps["checkout-aaa111-00000"] == rps["checkout-aaa111-00001"] == 0.0


def test_a_knob_moves_the_port_the_app_listens_on() -> None:
    pods = [replace(p, annotations={"sim.stanch.dev/port": "9090"}) for p in _labelled(2)]
    result = plan(Inputs(pods, parse_world({}), T0 + 100, services=_svc({"app": "checkout"}, 9090)))
    assert all(r.rps == 25.0 for r in result.pods.values())
