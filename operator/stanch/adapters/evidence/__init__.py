"""Evidence collectors: everything an investigation reads from the cluster and Prometheus."""

from __future__ import annotations

from stanch.adapters.evidence.collector import (
    Collected,
    CollectorLimits,
    EvidenceRequest,
    MemoryEvidence,
    Partial,
    collect,
    label_selector,
)
from stanch.adapters.evidence.logs import LogLimits, SampledLine

__all__ = [
    "Collected",
    "CollectorLimits",
    "EvidenceRequest",
    "LogLimits",
    "MemoryEvidence",
    "Partial",
    "SampledLine",
    "collect",
    "label_selector",
]
