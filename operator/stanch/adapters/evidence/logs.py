"""Log sampling: a few pods' recent lines, never the whole namespace.

Logs are the only per-pod requests an investigation makes, so they are capped on every axis:
pods per revision, revisions, lines, bytes per request, bytes in total, and time per request.
Unhealthy pods are read first, and the previous container too when it restarted (the crash is in
the previous instance's last lines).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.adapters.kube import KubeClient
from stanch.core.investigation.gathering import is_terminating, parse_time, pod_revision, unhealthy_score


@dataclass(frozen=True)
class LogLimits:
    pods_per_revision: int = 2
    revisions: int = 3
    tail_lines: int = 200
    previous_tail_lines: int = 50
    bytes_per_request: int = 64 * 1024
    total_bytes: int = 1024 * 1024
    seconds_per_request: float = 3.0


@dataclass(frozen=True)
class SampledLine:
    """One log line as read, before any normalisation (that belongs to the analysis core)."""

    time: datetime | None
    pod: str
    revision: int | None
    message: str
    previous: bool = False


@dataclass(frozen=True)
class LogRequest:
    pod: str
    container: str
    revision: int | None
    previous: bool


def choose(
    pods: Sequence[Mapping[str, Any]], by_hash: Mapping[str, int], limits: LogLimits
) -> list[LogRequest]:
    """Which logs to read: the newest revisions first, the unhealthiest pods of each first."""
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for pod in pods:
        if is_terminating(pod) or not (pod.get("spec") or {}).get("nodeName"):
            continue  # an unscheduled pod has no log to read
        grouped[pod_revision(pod, by_hash)].append(pod)

    def newest(key: str) -> tuple[int, int]:
        return (0, -int(key)) if key.isdigit() else (1, 0)

    requests: list[LogRequest] = []
    for key in sorted(grouped, key=newest)[: limits.revisions]:
        members = sorted(
            grouped[key], key=lambda p: (-unhealthy_score(p), (p.get("metadata") or {}).get("name", ""))
        )
        for pod in members[: limits.pods_per_revision]:
            name = pod["metadata"]["name"]
            revision = int(key) if key.isdigit() else None
            containers = (pod.get("spec") or {}).get("containers") or []
            if not containers:
                continue
            statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or ()}
            first = containers[0]["name"]
            requests.append(LogRequest(name, first, revision, previous=False))
            for container in containers:
                restarted = int((statuses.get(container["name"]) or {}).get("restartCount") or 0) > 0
                if restarted:
                    requests.append(LogRequest(name, container["name"], revision, previous=True))
    return requests


def parse_lines(text: str, request: LogRequest) -> list[SampledLine]:
    """Lines of a ``timestamps=true`` log: ``<RFC3339> <message>``."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        stamp, _, message = raw.partition(" ")
        moment = parse_time(stamp)
        if moment is None:
            moment, message = None, raw
        out.append(SampledLine(moment, request.pod, request.revision, message, request.previous))
    return out


async def read_logs(
    kube: KubeClient,
    namespace: str,
    requests: Sequence[LogRequest],
    limits: LogLimits,
    semaphore: asyncio.Semaphore,
) -> tuple[list[SampledLine], list[str]]:
    """Read the chosen logs concurrently; returns the lines and one problem per failed request."""
    budget = [limits.total_bytes]

    async def one(req: LogRequest) -> tuple[list[SampledLine], str | None]:
        async with semaphore:
            if budget[0] <= 0:
                return [], None
            try:
                text = await asyncio.wait_for(
                    kube.logs(
                        req.pod,
                        namespace,
                        container=req.container,
                        previous=req.previous,
                        tail_lines=limits.previous_tail_lines if req.previous else limits.tail_lines,
                        limit_bytes=min(limits.bytes_per_request, budget[0]),
                        timestamps=True,
                    ),
                    limits.seconds_per_request,
                )
            except TimeoutError:
                return [], f"{req.pod}/{req.container}: no answer within {limits.seconds_per_request:g}s"
            except Exception as exc:  # any failure is recorded as missing evidence
                which = "previous " if req.previous else ""
                return [], f"{req.pod}/{req.container} {which}log: {str(exc)[:200]}"
            budget[0] -= len(text.encode())
            return parse_lines(text, req), None

    results = await asyncio.gather(*(one(r) for r in requests))
    lines = [line for got, _ in results for line in got]
    problems = [p for _, p in results if p]
    return lines, problems
