"""Prometheus text exposition (format 0.0.4) of the simulation, written by hand for speed.

The simulator exports series on behalf of other pods (like kube-state-metrics or a federation
endpoint), so Prometheus must scrape it with ``honor_labels: true`` to keep ``namespace``/``pod``.
Rendering happens once per tick; scrapes serve the cached bytes, which keeps /metrics cheap at
thousands of pods.
"""

from __future__ import annotations

from collections.abc import Iterable

from e2e.simulator.pods import PodView
from e2e.simulator.simulation import BUCKETS, CODES, Simulation

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LE = [repr(b) for b in BUCKETS] + ["+Inf"]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _http_labels(p: PodView, deployment: str) -> str:
    return labels(
        (
            ("namespace", p.namespace),
            ("deployment", deployment),
            ("pod", p.name),
            ("node", p.node),
            ("revision", p.revision),
        )
    )


def render(sim: Simulation, *, tick_seconds: float = 0.0) -> bytes:
    requests: list[str] = [
        "# HELP http_requests_total HTTP requests served, by status code and client.",
        "# TYPE http_requests_total counter",
    ]
    durations: list[str] = [
        "# HELP http_request_duration_seconds HTTP request latency.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    cpu: list[str] = [
        "# HELP container_cpu_usage_seconds_total Cumulative CPU time consumed.",
        "# TYPE container_cpu_usage_seconds_total counter",
    ]
    memory: list[str] = [
        "# HELP container_memory_working_set_bytes Current working set.",
        "# TYPE container_memory_working_set_bytes gauge",
    ]
    limits: list[str] = [
        "# HELP kube_pod_container_resource_limits The number of requested limit resource by a container.",
        "# TYPE kube_pod_container_resource_limits gauge",
    ]
    restarts: list[str] = [
        "# HELP kube_pod_container_status_restarts_total The number of container restarts per container.",
        "# TYPE kube_pod_container_status_restarts_total counter",
    ]
    for key in sorted(sim.pods):
        s = sim.pods[key]
        p = s.view
        for c in p.containers:
            ksm = labels((("namespace", p.namespace), ("pod", p.name), ("uid", p.uid), ("container", c.name)))
            restarts.append(f"kube_pod_container_status_restarts_total{{{ksm}}} {c.restart_count}")
            if c.memory_limit_bytes is not None:
                limits.append(
                    f'kube_pod_container_resource_limits{{{ksm},node="{escape(p.node)}",'
                    f'resource="memory",unit="byte"}} {_num(c.memory_limit_bytes)}'
                )
            if c.cpu_limit_cores is not None:
                limits.append(
                    f'kube_pod_container_resource_limits{{{ksm},node="{escape(p.node)}",'
                    f'resource="cpu",unit="core"}} {_num(c.cpu_limit_cores)}'
                )
        rates = s.rates
        if rates is None or not rates.serving:
            continue
        base = _http_labels(p, p.deployment)
        for (code, client), n in sorted(s.requests.items()):
            requests.append(f'http_requests_total{{{base},code="{code}",client="{escape(client)}"}} {n}')
        for client, hist in sorted(s.durations.items()):
            hl = f'{base},client="{escape(client)}"'
            cumulative = 0
            for le, k in zip(_LE, hist.buckets, strict=True):
                cumulative += k
                durations.append(f'http_request_duration_seconds_bucket{{{hl},le="{le}"}} {cumulative}')
            durations.append(f"http_request_duration_seconds_sum{{{hl}}} {hist.total!r}")
            durations.append(f"http_request_duration_seconds_count{{{hl}}} {hist.count}")
        for container, seconds in sorted(s.cpu_seconds.items()):
            cl = labels(
                (("namespace", p.namespace), ("pod", p.name), ("container", container), ("node", p.node))
            )
            cpu.append(f"container_cpu_usage_seconds_total{{{cl}}} {seconds!r}")
        for container, value in sorted(s.memory_bytes.items()):
            if value <= 0:
                continue
            cl = labels(
                (("namespace", p.namespace), ("pod", p.name), ("container", container), ("node", p.node))
            )
            memory.append(f"container_memory_working_set_bytes{{{cl}}} {_num(round(value))}")
    # Requests the load balancer rejected because no pod was Ready: production's ingress metrics
    # would show them; here they carry an empty pod label.
    for (namespace, _), edge in sorted(sim.edge.items()):
        base = labels(
            (
                ("namespace", namespace),
                ("deployment", edge.rates.deployment),
                ("pod", ""),
                ("node", ""),
                ("revision", ""),
            )
        )
        for client, n in sorted(edge.requests.items()):
            requests.append(f'http_requests_total{{{base},code="503",client="{escape(client)}"}} {n}')
    own = [
        "# HELP stanch_simulator_pods Pods the simulator currently tracks.",
        "# TYPE stanch_simulator_pods gauge",
        f"stanch_simulator_pods {len(sim.pods)}",
        "# HELP stanch_simulator_tick_duration_seconds Time the last tick took to compute.",
        "# TYPE stanch_simulator_tick_duration_seconds gauge",
        f"stanch_simulator_tick_duration_seconds {tick_seconds!r}",
    ]
    text = "\n".join([*requests, *durations, *cpu, *memory, *limits, *restarts, *own]) + "\n"
    return text.encode()


__all__ = ["CODES", "CONTENT_TYPE", "render"]
