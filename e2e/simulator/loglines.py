"""Log lines that match what a pod is doing, with the signatures an on-call engineer would grep for.

Every line carries varying numbers and ids (request ids, durations, addresses), so whoever groups
them into signatures has to normalise them, as with real logs. Lines are a sample of the traffic,
not one per request: a few errors per cause per tick and the odd access line.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

from e2e.simulator.model import (
    APP,
    BAD_INPUT,
    CERT,
    DEPENDENCY,
    DEPENDENCY_SLOW,
    NODE,
    NODE_SLOWNESS,
    OVERLOAD,
    Cause,
    PodRates,
)
from e2e.simulator.pods import PodView

MAX_ERRORS_PER_CAUSE = 3
_PATHS = ("/api/v1/orders", "/api/v1/cart", "/api/v1/items", "/api/v1/checkout", "/healthz/deep")


def timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rid(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def custom_message(template: str, rng: random.Random) -> str:
    """An ``error-message`` knob with ``{ms}``, ``{id}``, ``{n}`` and ``{ip}`` filled in."""
    fields = _Fields(
        ms=str(rng.randint(800, 5200)),
        id=f"{rng.getrandbits(32):08x}",
        n=str(rng.randint(1, 9999)),
        ip=_ip(rng),
    )
    try:
        return template.format_map(fields)
    except (ValueError, IndexError):
        return template


def error_line(cause: Cause, rates: PodRates, rng: random.Random) -> str:
    rid = _rid(rng)
    b = rates.behaviour
    if cause.kind == APP:
        if b.error_message:
            return f"ERROR {custom_message(b.error_message, rng)} request_id={rid}"
        path = rng.choice(_PATHS)
        return (
            f"ERROR unhandled exception in handler path={path}/{rng.randint(1000, 99999)} "
            f'error="NullPointerException: Cannot invoke \\"Order.getTotal()\\" because \\"order\\" is null" '
            f"status={cause.code} request_id={rid}"
        )
    if cause.kind == DEPENDENCY:
        return (
            f"ERROR dial tcp {_ip(rng)}:{cause.port}: connect: "
            f"connection refused to {cause.detail}:{cause.port} attempt={rng.randint(1, 3)} request_id={rid}"
        )
    if cause.kind == DEPENDENCY_SLOW:
        return f"ERROR upstream {cause.detail} timeout after {rng.randint(3000, 3100)}ms request_id={rid}"
    if cause.kind == NODE:
        port = rng.randint(30000, 60999)
        return f"ERROR read tcp {_ip(rng)}:{port}: connection reset by peer request_id={rid}"
    if cause.kind == NODE_SLOWNESS:
        return f"ERROR request deadline exceeded after {rng.randint(2000, 2600)}ms (io wait) request_id={rid}"
    if cause.kind == CERT:
        return (
            f"ERROR tls: failed to verify certificate: x509: certificate has expired or is not yet valid: "
            f"current time {timestamp(1.7e9 + rng.randint(0, 10**7))} is after 2024-01-01T00:00:00Z "
            f"request_id={rid}"
        )
    if cause.kind == BAD_INPUT:
        return (
            f"ERROR failed to decode payload from client={cause.detail}: invalid character '\\x00' "
            f"at offset {rng.randint(1, 4096)} request_id={rid}"
        )
    if cause.kind == OVERLOAD:
        return (
            f"ERROR 503 Service Unavailable: worker pool exhausted (queue depth {rng.randint(200, 1024)}, "
            f"in-flight {rng.randint(64, 256)}) request_id={rid}"
        )
    return f"ERROR request failed status={cause.code} request_id={rid}"


def tick_lines(
    pod: PodView, rates: PodRates, codes: dict[int, int], rng: random.Random, now: float
) -> Iterator[str]:
    """Lines for one tick of a running pod, given how many requests ended with each code."""
    ts = timestamp(now)
    by_code: dict[int, list[Cause]] = {}
    for cause in rates.causes:
        by_code.setdefault(cause.code, []).append(cause)
    for code, count in sorted(codes.items()):
        if code < 500 or count <= 0:
            continue
        causes = by_code.get(code) or [Cause("other", 1.0, code)]
        weights = [c.ratio for c in causes]
        for _ in range(min(count, MAX_ERRORS_PER_CAUSE * len(causes))):
            cause = rng.choices(causes, weights)[0]
            yield f"{ts} {error_line(cause, rates, rng)}"
    ok = codes.get(200, 0)
    if ok and rng.random() < 0.5:
        ms = max(1, round(rates.latency_median_s * 1000 * rng.lognormvariate(0, rates.latency_sigma)))
        yield (
            f"{ts} INFO {rng.choice(('GET', 'GET', 'POST'))} {rng.choice(_PATHS)} 200 {ms}ms "
            f"client={rng.choice([c for c, _ in rates.clients] or ['web'])} request_id={_rid(rng)}"
        )
    if rates.memory_pressure and rng.random() < 0.3:
        yield f"{ts} WARN GC overhead limit approaching: {rng.randint(92, 99)}% of time in GC over last 10s"
        thread = f"http-nio-8080-exec-{rng.randint(1, 200)}"
        yield f'{ts} ERROR Exception in thread "{thread}" java.lang.OutOfMemoryError: Java heap space'
    if rates.cpu_hot and rng.random() < 0.2:
        blocked = rng.randint(250, 2500)
        yield f"{ts} WARN event loop blocked for {blocked}ms (worker busy in regex backtracking)"


def start_lines(pod: PodView, now: float) -> list[str]:
    ts = timestamp(now)
    return [
        f"{ts} INFO starting {pod.deployment} image={pod.image} revision={pod.revision or 'none'}",
        f"{ts} INFO listening on :8080",
    ]


def exit_lines(pod: PodView, reason: str, error_message: str, rng: random.Random, now: float) -> list[str]:
    """The last lines before a container died, for ``kubectl logs --previous``."""
    ts = timestamp(now)
    if reason == "OOMKilled":
        return [
            f'{ts} ERROR Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
            f"{ts} ERROR \tat java.util.Arrays.copyOf(Arrays.java:{rng.randint(3000, 3999)})",
        ]
    message = (
        custom_message(error_message, rng)
        if error_message
        else ("panic: runtime error: invalid memory address or nil pointer dereference")
    )
    return [f"{ts} FATAL {message}", f"{ts} FATAL goroutine {rng.randint(1, 500)} [running]: main.main()"]
