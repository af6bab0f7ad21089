"""Two or more replicas: Kopf peering, its priorities and its peering object.

Kopf peering is not leader election. Every replica records itself (priority, lifetime, last seen)
in one peering object; a replica that sees a live peer of higher priority pauses (its watches and
daemons stop), and replicas of *equal* priority all pause, leaving the cluster unserved. A dead
replica's record expires after its lifetime, and the next-highest replica resumes.

So each replica needs its own priority. Derived at start, the longest-running replica is the
highest: a replica that starts later (a rollout's new Pod, a rescheduled one) never preempts the
one acting — it reads the peering object before it acts and stays paused — so the only handover
is the active replica going away (a graceful exit removes its record at once; a crash, after its
lifetime). Preemption would be safe (the machine's steps are write-ahead and conditional) but it
opens a moment in which both replicas run a pass before the lower one sees the higher.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import kopf
import structlog

from stanch.adapters.kube import KubeClient, KubeError, transient
from stanch.core.settings import Settings
from stanch.wiring.handlers.startup import MEMO_SETTINGS

KOPF_PEERING_API = "kopf.dev/v1"
TIE_BREAK = 1000
"""Random tie-break values per start millisecond: two replicas started in the same millisecond
still differ, unless they also draw the same one of these (1 in 1,000)."""

log = structlog.get_logger("stanch.peering")


def derived_priority(started_ms: int, tie_break: int) -> int:
    """Higher for an earlier start; always negative, so Kopf's default (0) and any explicit
    ``--priority N >= 0`` outrank every replica. Below 2**53 in magnitude (JSON-safe) until 2255."""
    if not 0 <= tie_break < TIE_BREAK:
        raise ValueError(f"tie_break {tie_break} not in [0, {TIE_BREAK})")
    return -(started_ms * TIE_BREAK + tie_break) - 1


def process_priority(config: Settings) -> int | None:
    """This process's peering priority: the explicit one, else derived now; None when standalone."""
    if config.standalone:
        return None
    if config.priority is not None:
        return config.priority
    return derived_priority(time.time_ns() // 1_000_000, secrets.randbelow(TIE_BREAK))


def peering_objects(config: Settings) -> list[dict[str, Any]]:
    """The peering objects Kopf will read and refresh: one ClusterKopfPeering for a cluster-wide
    operator, one KopfPeering per watched namespace otherwise. None in standalone mode, nor in
    Kopf's auto-detect mode (no --peering name), where a missing object means "run standalone"."""
    name = config.peering_name
    if config.standalone or name is None:
        return []
    labels = {"app.kubernetes.io/part-of": "stanch"}
    if config.all_namespaces:
        return [
            {
                "apiVersion": KOPF_PEERING_API,
                "kind": "ClusterKopfPeering",
                "metadata": {"name": name, "labels": labels},
            }
        ]
    return [
        {
            "apiVersion": KOPF_PEERING_API,
            "kind": "KopfPeering",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
        }
        for ns in config.namespaces
    ]


async def ensure_peering_objects(kube: KubeClient, config: Settings) -> list[str]:
    """Create the missing peering objects; returns what it created (``Kind ns/name``).

    With mandatory peering Kopf pauses the whole operator while a peering object is missing, and
    an install cannot ship the object next to its CRD (kubectl maps every object before the CRD
    exists), so the operator creates its own, before Kopf's peering starts. Already there: fine.
    Forbidden: logged, and left to the admin; Kopf stays paused and says so."""
    created = []
    for obj in peering_objects(config):
        meta = obj["metadata"]
        path = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
        where = f"{obj['kind']} {path}"
        try:
            await kube.create(obj)
        except KubeError as exc:
            if exc.status == 409:
                continue
            if exc.forbidden:
                log.error(
                    "cannot create the peering object; the operator stays paused until it exists",
                    peering=where,
                    error=exc.message,
                    fix="grant create on kopf.dev kopfpeerings/clusterkopfpeerings, or create it by hand",
                )
                continue
            raise
        log.info("peering object created", peering=where)
        created.append(where)
    return created


async def ensure(memo: kopf.Memo, **_: Any) -> None:
    config = memo[MEMO_SETTINGS]
    assert isinstance(config, Settings)
    if not peering_objects(config):
        return
    kube = KubeClient.from_env()
    try:
        await ensure_peering_objects(kube, config)
    except Exception as exc:
        if transient(exc):
            raise kopf.TemporaryError(f"peering object: {exc}", delay=5) from exc
        raise
    finally:
        await kube.close()


def register(registry: kopf.OperatorRegistry) -> None:
    # A startup activity: Kopf starts its peering watch and keep-alives only after these finish.
    kopf.on.startup(id="stanch-peering-object", registry=registry)(ensure)
