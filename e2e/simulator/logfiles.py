"""Per-container log files under ``--logs-dir/<namespace>/<pod>/<container>.log``.

kwok serves these through the real pods/log API, parsing them the way the kubelet does, so lines
are framed in the CRI log format (``<RFC3339 time> <stream> F <line>``); a bare line is rejected
with "unsupported log format". ``<container>.previous.log`` holds the output of the container's
last run, which is what ``kubectl logs --previous`` shows after a restart.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from e2e.simulator.loglines import timestamp
from e2e.simulator.pods import PodKey


def cri_line(now: float, line: str) -> str:
    # Crashes go to stderr like a runtime panic would; everything else is the app's stdout.
    stream = "stderr" if " FATAL " in line[:40] else "stdout"
    return f"{timestamp(now)} {stream} F {line}\n"


class LogFiles:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def paths(self, key: PodKey, container: str) -> tuple[Path, Path]:
        directory = self.root / key[0] / key[1]
        return directory / f"{container}.log", directory / f"{container}.previous.log"

    def append(self, key: PodKey, container: str, lines: Iterable[str], now: float) -> None:
        text = "".join(cri_line(now, line) for line in lines)
        if not text:
            return
        current, _ = self.paths(key, container)
        current.parent.mkdir(parents=True, exist_ok=True)
        with current.open("a", encoding="utf-8") as f:
            f.write(text)

    def touch(self, key: PodKey, container: str) -> tuple[Path, Path]:
        current, previous = self.paths(key, container)
        current.parent.mkdir(parents=True, exist_ok=True)
        current.touch()
        previous.touch()
        return current, previous

    def rotate(self, key: PodKey, container: str) -> None:
        """A container restarted: its output so far becomes the previous run's."""
        current, previous = self.paths(key, container)
        if current.exists():
            current.replace(previous)
        current.touch()

    def remove(self, key: PodKey) -> None:
        shutil.rmtree(self.root / key[0] / key[1], ignore_errors=True)
