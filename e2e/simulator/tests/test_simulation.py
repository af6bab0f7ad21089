"""Counters, noise and determinism of the simulation, and its exposition."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2e.simulator import exposition
from e2e.simulator.simulation import BUCKETS, Simulation, lognormal_bucket_shares, multinomial, poisson
from e2e.simulator.tests.factories import T0, pod, replicas
from e2e.simulator.world import parse_world

COUNTERS = (
    "http_requests_total",
    "container_cpu_usage_seconds_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "http_request_duration_seconds_sum",
)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def run(sim: Simulation, pods: list, ticks: int, world: dict[str, str] | None = None, start: int = 0) -> None:  # type: ignore[type-arg]
    w = parse_world(world or {})
    for i in range(start, start + ticks):
        sim.step(pods, w, T0 + 100 + i, 1.0)


def parse(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    pods = replicas(3, knobs={"error-ratio": "0.05"})
    a, b, c = Simulation(7), Simulation(7), Simulation(8)
    for sim in (a, b, c):
        run(sim, pods, 20)
    assert exposition.render(a) == exposition.render(b)
    assert exposition.render(a) != exposition.render(c)


def test_a_pods_numbers_do_not_depend_on_its_neighbours() -> None:
    alone, crowded = Simulation(3), Simulation(3)
    target = pod("checkout-x")
    run(alone, [target, pod("checkout-y")], 10, {"traffic.shop.checkout": "100"})
    run(
        crowded,
        [target, pod("checkout-y"), pod("other-1", workload="other")],
        10,
        {"traffic.shop.checkout": "100"},
    )
    assert alone.pods[target.key].requests == crowded.pods[target.key].requests


def test_counters_are_monotonic_and_gauges_present() -> None:
    sim = Simulation(1)
    pods = replicas(2, knobs={"error-ratio": "0.2"})
    previous: dict[str, float] = {}
    for tick in range(30):
        run(sim, pods, 1, start=tick)
        now = parse(exposition.render(sim).decode())
        for name, value in now.items():
            if name.startswith(COUNTERS):
                assert value >= previous.get(name, 0.0), name
        previous = now
    assert any(k.startswith("container_memory_working_set_bytes") for k in previous)
    assert any('resource="memory",unit="byte"' in k for k in previous)
    assert any('resource="cpu",unit="core"' in k for k in previous)


def test_error_ratio_over_time_matches_the_knob() -> None:
    sim = Simulation(2)
    run(sim, replicas(3, knobs={"error-ratio": "0.3"}), 120, {"traffic.shop.checkout": "150"})
    total = errors = 0
    for s in sim.pods.values():
        for (code, _), n in s.requests.items():
            total += n
            errors += n if code >= 500 else 0
    assert total == pytest.approx(150 * 120, rel=0.05)
    assert errors / total == pytest.approx(0.3, abs=0.02)


def test_histogram_is_cumulative_and_consistent() -> None:
    sim = Simulation(4)
    run(sim, replicas(1, knobs={"latency-ms": "80"}), 20)
    metrics = parse(exposition.render(sim).decode())
    buckets = [
        v for k, v in metrics.items() if k.startswith("http_request_duration_seconds_bucket") and '"web"' in k
    ]
    assert buckets == sorted(buckets)
    count = next(
        v for k, v in metrics.items() if k.startswith("http_request_duration_seconds_count") and '"web"' in k
    )
    assert buckets[-1] == count
    total = next(
        v for k, v in metrics.items() if k.startswith("http_request_duration_seconds_sum") and '"web"' in k
    )
    assert 0.05 < total / count < 0.15


def test_restart_resets_counters_and_restarts_metric_follows_status() -> None:
    sim = Simulation(5)
    before = pod("checkout-1")
    run(sim, [before], 10)
    assert sum(sim.pods[before.key].requests.values()) > 100
    after = pod("checkout-1", restarts=1)
    result = sim.step([after], parse_world({}), T0 + 200, 1.0)
    assert result.restarted == (before.key,)
    assert sum(sim.pods[before.key].requests.values()) < 100
    text = exposition.render(sim).decode()
    assert 'kube_pod_container_status_restarts_total{namespace="shop",pod="checkout-1"' in text
    assert re.search(r'kube_pod_container_status_restarts_total\{[^}]*container="app"\} 1$', text, re.M)


def test_leak_restarts_from_zero_after_a_restart() -> None:
    sim = Simulation(6)
    leaky = pod("checkout-1", knobs={"memory-leak-mb-per-min": "30"}, memory_limit_mb=4096)
    run(sim, [leaky], 1, start=1200)
    grown = sim.pods[leaky.key].memory_bytes["app"]
    sim.step(
        [pod("checkout-1", knobs={"memory-leak-mb-per-min": "30"}, memory_limit_mb=4096, restarts=1)],
        parse_world({}),
        T0 + 1301,
        1.0,
    )
    assert sim.pods[leaky.key].memory_bytes["app"] < grown / 3


def test_pods_that_are_not_running_export_no_http_series() -> None:
    sim = Simulation(1)
    run(sim, [pod("checkout-1", running=False, ready=False)], 3)
    text = exposition.render(sim).decode()
    assert "http_requests_total{" not in text
    assert "kube_pod_container_status_restarts_total{" in text


def test_gone_pods_disappear_and_scaled_to_zero_shows_503_at_the_edge() -> None:
    sim = Simulation(1)
    pods = replicas(2)
    run(sim, pods, 3)
    result = sim.step([], parse_world({}), T0 + 500, 1.0)
    assert set(result.gone_pods) == {p.key for p in pods}
    text = exposition.render(sim).decode()
    assert 'pod="checkout-aaa111-00000"' not in text
    assert re.search(
        r'http_requests_total\{namespace="shop",deployment="checkout",pod="",[^}]*code="503"', text
    )


def test_label_values_are_escaped() -> None:
    assert exposition.escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_lognormal_shares_sum_to_one_and_center_on_the_median() -> None:
    shares = lognormal_bucket_shares(0.04, 0.3)
    assert sum(shares) == pytest.approx(1.0)
    below = sum(s for le, s in zip(BUCKETS, shares, strict=False) if le <= 0.025)
    assert below < 0.1


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 5000), shares=st.lists(st.floats(0, 1), min_size=1, max_size=8), seed=st.integers())
def test_multinomial_preserves_the_total(n: int, shares: list[float], seed: int) -> None:
    total = sum(shares)
    norm = [s / total for s in shares] if total > 0 else [1.0 / len(shares)] * len(shares)
    out = multinomial(random.Random(seed), n, norm)
    assert sum(out) == n
    assert all(k >= 0 for k in out)


def test_poisson_mean() -> None:
    rng = random.Random(0)
    for lam in (0.5, 7.0, 400.0):
        draws = [poisson(rng, lam) for _ in range(4000)]
        assert sum(draws) / len(draws) == pytest.approx(lam, rel=0.08)


def _cpu(sim: Simulation) -> dict[str, float]:
    assert sim.last_plan is not None
    return {key[1]: rates.cpu_cores["app"] for key, rates in sim.last_plan.pods.items()}


def test_a_hot_pod_key_pins_one_pod_and_a_new_pod_does_not_inherit_it() -> None:
    sim = Simulation(1)
    pods = replicas(3, cpu_limit=0.5)
    run(sim, pods, 2)
    calm = _cpu(sim)
    hot_world = {"hot-pod.shop.checkout": "ordinal=1; cores=1.5"}
    run(sim, pods, 3, hot_world, start=2)
    cpu = _cpu(sim)
    assert cpu["checkout-aaa111-00001"] == 0.5  # at its limit: throttled
    assert sim.last_plan is not None
    hot = {key[1] for key, r in sim.last_plan.pods.items() if r.cpu_hot}
    assert hot == {"checkout-aaa111-00001"}
    latency = {key[1]: r.latency_median_s for key, r in sim.last_plan.pods.items()}
    assert latency["checkout-aaa111-00001"] > 2 * latency["checkout-aaa111-00000"]
    assert cpu["checkout-aaa111-00000"] == pytest.approx(calm["checkout-aaa111-00000"])
    # The hot pod is restarted (deleted, replaced by a new one): the busy loop went with it, and no
    # sibling became the new ordinal-1 pod.
    after = [pods[0], pods[2], pod("checkout-aaa111-00009", created=T0 + 50, cpu_limit=0.5)]
    run(sim, after, 3, hot_world, start=5)
    assert sim.last_plan is not None
    assert not any(r.cpu_hot for r in sim.last_plan.pods.values())
    # Changing the key picks again; deleting it cures.
    run(sim, after, 1, {"hot-pod.shop.checkout": "ordinal=0; cores=2"}, start=8)
    assert {k[1] for k, r in sim.last_plan.pods.items() if r.cpu_hot} == {"checkout-aaa111-00000"}
    run(sim, after, 1, {}, start=9)
    assert not any(r.cpu_hot for r in sim.last_plan.pods.values())


def test_a_hot_pod_key_waits_for_enough_running_pods() -> None:
    sim = Simulation(1)
    run(sim, replicas(1), 2, {"hot-pod.shop.checkout": "ordinal=2"})
    assert sim.hot_latch == {}
    run(sim, replicas(3), 1, {"hot-pod.shop.checkout": "ordinal=2"}, start=2)
    assert [pod for _, pod in sim.hot_latch.values()] == [("shop", "checkout-aaa111-00002")]


def test_a_namespace_noise_seed_changes_its_noise_only() -> None:
    pods = [*replicas(2), *replicas(2, prefix="cart-bbb", namespace="other", workload="cart")]
    plain, seeded = Simulation(7), Simulation(7)
    run(plain, pods, 10)
    run(seeded, pods, 10, {"seed.shop": "42"})

    def samples(sim: Simulation, namespace: str) -> list[str]:
        text = exposition.render(sim).decode()
        return sorted(line for line in text.splitlines() if f'namespace="{namespace}"' in line)

    assert samples(plain, "other") == samples(seeded, "other")
    assert samples(plain, "shop") != samples(seeded, "shop")
    again = Simulation(7)
    run(again, pods, 10, {"seed.shop": "42"})
    assert samples(again, "shop") == samples(seeded, "shop")
