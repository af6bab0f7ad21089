"""Guard verdicts: baseline comparison (Mann-Whitney U), SLO gate, success criteria."""

from stanch.core.guard.ranks import RankTest, mann_whitney_greater, midranks
from stanch.core.guard.settling import SETTLING_KINDS, pods_started, read_rollout, settling_reason
from stanch.core.guard.verdict import (
    DEFAULT_ALPHA,
    EFFECT_FLOORS,
    CheckResult,
    GuardAction,
    Judgement,
    SignalCheck,
    SignalSpec,
    check_signal,
    judge,
    run_check,
    trade_off,
)

__all__ = [
    "DEFAULT_ALPHA",
    "EFFECT_FLOORS",
    "SETTLING_KINDS",
    "CheckResult",
    "GuardAction",
    "Judgement",
    "RankTest",
    "SignalCheck",
    "SignalSpec",
    "check_signal",
    "judge",
    "mann_whitney_greater",
    "midranks",
    "pods_started",
    "read_rollout",
    "run_check",
    "settling_reason",
    "trade_off",
]
