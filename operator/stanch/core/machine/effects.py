"""The reducer's effects. Defined in :mod:`stanch.core.effects` so adapters may import them (adapters
may use core data, never core decisions); re-exported here for the machine's callers."""

from stanch.core.effects import (
    MUTATING,
    Create,
    Delete,
    Effect,
    EvaluatePolicy,
    Evict,
    Finish,
    JsonPatchOp,
    ObjectKey,
    ObserveTarget,
    Patch,
    PersistIntent,
    Precondition,
    QuerySignals,
    Reads,
    WakeAt,
    pointer,
)

__all__ = [
    "MUTATING",
    "Create",
    "Delete",
    "Effect",
    "EvaluatePolicy",
    "Evict",
    "Finish",
    "JsonPatchOp",
    "ObjectKey",
    "ObserveTarget",
    "Patch",
    "PersistIntent",
    "Precondition",
    "QuerySignals",
    "Reads",
    "WakeAt",
    "pointer",
]
