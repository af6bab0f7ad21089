"""`python -m e2e.cluster up|down|status|env` — lifecycle of the local world."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from e2e.cluster.world import LocalWorld, WorldError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster")
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    world = LocalWorld()
    try:
        if args.command == "up":
            info = world.up()
            print(json.dumps(asdict(info), indent=2))
        elif args.command == "down":
            world.down()
        elif args.command == "status":
            healthy = world.healthy()
            if healthy is None:
                print("down (or unhealthy)")
                return 1
            print(json.dumps(asdict(healthy), indent=2))
        else:
            loaded = world.healthy()
            if loaded is None:
                print("the local world is not up: run `make cluster-up`", file=sys.stderr)
                return 1
            for key, value in loaded.env().items():
                print(f"export {key}={value}")
    except WorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
