"""Test-only fault injection: the operator kills itself at one precise point of a mitigation step.

The real-cluster crash tests must kill the operator *between* two writes of one step (a config
toggle's ConfigMap patch and the Deployment restart sent milliseconds after it); no signal sent from
outside lands there reliably. With ``STANCH_TEST_CRASH_AFTER=<Step>:<Kind>`` (e.g.
``Apply:ConfigMap``) in its environment, the operator SIGKILLs itself right after the API server
accepted that write and its ``mitigation effect`` log line was written: a real crash, no cleanup,
exactly what ``kill -9`` would do a moment later.

Production never sets it: neither the CLI nor the manifests know the variable, it is read only here,
and an operator started with it says so in a warning first. Whoever could set it on the operator's
Deployment could stop the operator anyway; all it can do is crash the process, and every crash
point is one the machine resumes from (the crash matrix).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

CRASH_AFTER_ENV = "STANCH_TEST_CRASH_AFTER"


@dataclass(frozen=True)
class CrashPoint:
    """Crash right after a write of ``step`` to an object of ``kind`` is accepted."""

    step: str
    kind: str

    def matches(self, step: str, kind: str) -> bool:
        return (self.step, self.kind) == (step, kind)

    @property
    def text(self) -> str:
        return f"{self.step}:{self.kind}"


def crash_point(env: Mapping[str, str]) -> CrashPoint | None:
    """The crash point ``env`` asks for, if any. A malformed value is refused at start rather than
    ignored: a test that thinks it crashes the operator and does not would pass for the wrong reason."""
    raw = env.get(CRASH_AFTER_ENV, "").strip()
    if not raw:
        return None
    step, sep, kind = raw.partition(":")
    if not (sep and step and kind):
        raise ValueError(f"{CRASH_AFTER_ENV}={raw!r}: write it as <Step>:<Kind>, e.g. Apply:ConfigMap")
    return CrashPoint(step, kind)


def crash_now() -> None:
    """SIGKILL this process: no finally blocks, no graceful shutdown, no further write."""
    os.kill(os.getpid(), signal.SIGKILL)
