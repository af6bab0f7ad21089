"""The tick loop: read the caches, advance the simulation, write logs, render /metrics.

The clock is injected so tests can drive ticks without waiting, and the loop never needs a cluster:
with no `Kube`, pods and world come from whoever calls `set_pods` / `set_world`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from e2e.simulator import exposition, loglines
from e2e.simulator.kube import Kube
from e2e.simulator.logfiles import LogFiles
from e2e.simulator.pods import PodKey, PodView, ServiceView
from e2e.simulator.simulation import Simulation, StepResult
from e2e.simulator.world import World, parse_world

log = logging.getLogger("stanch.simulator")

MAX_DT_FACTOR = 5.0  # after a stall, catch up at most a few ticks' worth instead of a burst


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Runner:
    def __init__(
        self,
        *,
        seed: int,
        tick: float = 1.0,
        logs_dir: Path | None = None,
        kube: Kube | None = None,
        clock: Clock | None = None,
        kwok_logs: bool = True,
    ) -> None:
        self.sim = Simulation(seed)
        self.tick = tick
        self.clock: Clock = clock or SystemClock()
        self.kube = kube
        self.kwok_logs = kwok_logs and kube is not None
        self.logs = LogFiles(logs_dir) if logs_dir else None
        self.world_data: dict[str, str] = {}
        self.world: World = parse_world({})
        self.metrics: bytes = exposition.render(self.sim)
        self.ticks = 0
        self._pods: dict[PodKey, PodView] = {}
        self._last: float | None = None
        self._reported: set[str] = set()
        self._logs_pending: set[PodKey] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._syncing_logs = False
        if kube is not None:
            kube.on_world_change = self.set_world

    # -- inputs ----------------------------------------------------------------------------

    def set_world(self, data: Mapping[str, str]) -> None:
        self.world_data = dict(data)
        self.world = parse_world(self.world_data)

    def set_pods(self, pods: Sequence[PodView]) -> None:
        self._pods = {p.key: p for p in pods}

    async def put_world(self, data: Mapping[str, str]) -> None:
        """Replace the world; through the ConfigMap when there is a cluster, so both agree."""
        if self.kube is not None:
            await self.kube.write_world(data)
        self.set_world(data)

    @property
    def healthy(self) -> bool:
        return self.ticks > 0 and (self.kube is None or self.kube.ready)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                self.tick_once()
            except Exception:  # one bad tick must not end the simulator; the next one may be fine
                log.exception("tick failed")
            await self.clock.sleep(max(0.0, self.tick - (time.perf_counter() - started)))

    def tick_once(self) -> StepResult:
        now = self.clock.now()
        dt = self.tick if self._last is None else min(max(0.0, now - self._last), self.tick * MAX_DT_FACTOR)
        self._last = now
        started = time.perf_counter()
        if self.kube is not None:
            pods: Sequence[PodView] = list(self.kube.pods.values())
            unready = frozenset(self.kube.unready_nodes)
            config_maps: Mapping[tuple[str, str], Mapping[str, str]] = self.kube.config_maps
            namespaces: frozenset[str] | None = (
                frozenset(self.kube.namespaces) if self.kube.synced["namespaces"] else None
            )
            services: Mapping[tuple[str, str], ServiceView] = self.kube.services
        else:
            pods, unready, config_maps, namespaces = list(self._pods.values()), frozenset(), {}, None
            services = {}
        result = self.sim.step(
            pods,
            self.world,
            now,
            dt,
            unready_nodes=unready,
            config_maps=config_maps,
            namespaces=namespaces,
            services=services,
        )
        for problem in result.plan.problems:
            if problem not in self._reported:
                self._reported.add(problem)
                log.warning("%s", problem)
        self._write_logs(result, now)
        self.ticks += 1
        self.metrics = exposition.render(self.sim, tick_seconds=time.perf_counter() - started)
        return result

    # -- logs ------------------------------------------------------------------------------

    def _write_logs(self, result: StepResult, now: float) -> None:
        files = self.logs
        if files is None:
            return
        for key in result.gone_pods:
            files.remove(key)
            self._logs_pending.discard(key)
            if self.kube is not None and self.kwok_logs:
                self._spawn(self.kube.delete_logs(key))
        for key in result.restarted:
            series = self.sim.pods[key]
            view = series.view
            b = series.rates.behaviour if series.rates else None
            lines = loglines.exit_lines(
                view, view.main.last_terminated_reason, b.error_message if b else "", series.log_rng, now
            )
            files.append(key, view.main.name, lines, now)
            files.rotate(key, view.main.name)
            files.append(key, view.main.name, loglines.start_lines(view, now), now)
        for key in result.new_pods:
            view = self.sim.pods[key].view
            for c in view.containers:
                files.touch(key, c.name)
            files.append(key, view.main.name, loglines.start_lines(view, now), now)
            if self.kwok_logs:
                self._logs_pending.add(key)
        for key, series in self.sim.pods.items():
            rates = series.rates
            if rates is None or not rates.serving:
                continue
            lines = list(loglines.tick_lines(series.view, rates, series.tick_codes, series.log_rng, now))
            files.append(key, series.view.main.name, lines, now)
        if self.kube is not None and self._logs_pending and not self._syncing_logs:
            self._syncing_logs = True
            self._spawn(self._sync_logs())

    async def _sync_logs(self) -> None:
        """Create kwok Logs objects for new pods, one batch at a time (never two batches at once)."""
        try:
            if self.kube is None or self.logs is None or not await self.kube.logs_supported():
                return
            batch = list(self._logs_pending)
            self._logs_pending.difference_update(batch)
            results = await asyncio.gather(*(self._ensure_logs(key) for key in batch))
            self._logs_pending.update(
                k for k, ok in zip(batch, results, strict=True) if not ok and k in self.sim.pods
            )
        finally:
            self._syncing_logs = False

    async def _ensure_logs(self, key: PodKey) -> bool:
        series = self.sim.pods.get(key)
        if series is None or self.kube is None or self.logs is None:
            return True
        view = series.view
        files = {c.name: self.logs.paths(key, c.name) for c in view.containers}
        return await self.kube.ensure_logs(view, files)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
