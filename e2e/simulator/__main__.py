"""``python -m e2e.simulator --kubeconfig PATH --listen 127.0.0.1:PORT --logs-dir DIR --seed N``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from e2e.simulator.knobs import parse_duration
from e2e.simulator.kube import Kube, NotLoopbackError
from e2e.simulator.runner import Runner
from e2e.simulator.server import make_app, parse_listen

log = logging.getLogger("stanch.simulator")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.simulator", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, type=Path, help="kubeconfig of a loopback API server")
    parser.add_argument("--listen", default="127.0.0.1:9464", help="loopback HOST:PORT (default %(default)s)")
    parser.add_argument("--logs-dir", required=True, type=Path, help="where pod log files are written")
    parser.add_argument("--seed", type=int, default=0, help="seed of every pod's noise (default %(default)s)")
    parser.add_argument(
        "--tick", default="1s", help="simulation step, e.g. 1s or 500ms (default %(default)s)"
    )
    parser.add_argument(
        "--no-kwok-logs",
        action="store_true",
        help="write log files but create no kwok Logs objects (when another simulator serves them)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, host: str, port: int, tick: float) -> None:
    kube = Kube(args.kubeconfig)
    runner = Runner(
        seed=args.seed, tick=tick, logs_dir=args.logs_dir, kube=kube, kwok_logs=not args.no_kwok_logs
    )
    app_runner = web.AppRunner(make_app(runner), access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, host, port, reuse_address=True)
    await site.start()
    log.info("serving on http://%s:%d (seed %d, tick %ss)", host, port, args.seed, tick)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def ensure_world() -> None:
        while True:
            try:
                await kube.ensure_world()
                return
            except Exception as exc:  # the API server may still be starting
                log.warning("cannot create the world ConfigMap yet: %s", exc)
                await asyncio.sleep(1.0)

    tasks = [
        asyncio.create_task(ensure_world()),
        asyncio.create_task(kube.run()),
        asyncio.create_task(runner.run()),
    ]
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *tasks[1:]], return_when=asyncio.FIRST_COMPLETED)
    for task in [*tasks, waiter]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await app_runner.cleanup()
    await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per API request would drown the warnings that matter.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        host, port = parse_listen(args.listen)
        tick = parse_duration(args.tick)
        if tick <= 0:
            raise ValueError("--tick must be positive")
        args.logs_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(_serve(args, host, port, tick))
    except (ValueError, NotLoopbackError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
