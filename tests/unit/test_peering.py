"""Kopf peering for two replicas: distinct priorities, oldest highest, and the peering object."""

from __future__ import annotations

from typing import Any

import pytest

from stanch.adapters.kube import KubeError
from stanch.core.settings import Settings, resolve
from stanch.wiring.handlers.peering import (
    TIE_BREAK,
    derived_priority,
    ensure_peering_objects,
    peering_objects,
    process_priority,
)

URL = "http://p:9090"


def config(**flags: Any) -> Settings:
    return resolve({"prometheus_url": URL, **flags}, {}, in_cluster=False, is_tty=False)


def test_an_earlier_start_is_a_higher_priority_and_ties_break() -> None:
    started = 1_760_000_000_000
    older = derived_priority(started, TIE_BREAK - 1)
    assert older > derived_priority(started + 1, 0)
    assert derived_priority(started, 0) != derived_priority(started, 1)
    # Below Kopf's default 0, so any explicit --priority N >= 0 outranks every replica; JSON-safe.
    assert -(2**53) < derived_priority(8_000_000_000_000, TIE_BREAK - 1) < older < 0
    with pytest.raises(ValueError, match="tie_break"):
        derived_priority(started, TIE_BREAK)


def test_process_priority_explicit_derived_or_none() -> None:
    assert process_priority(config(all_namespaces=True)) is None  # standalone
    assert process_priority(config(all_namespaces=True, peering_name="s", priority="5")) == 5
    first = process_priority(config(all_namespaces=True, peering_name="s"))
    second = process_priority(config(all_namespaces=True, peering_name="s"))
    assert first is not None
    assert second is not None
    assert max(first, second) < 0
    assert first != second  # two processes never freeze each other with equal priorities


def test_peering_objects_cluster_wide_namespaced_or_none() -> None:
    assert peering_objects(config(all_namespaces=True, peering_name="stanch")) == [
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "stanch", "labels": {"app.kubernetes.io/part-of": "stanch"}},
        }
    ]
    namespaced = peering_objects(config(namespaces=["a", "b"], peering_name="stanch"))
    assert [(o["kind"], o["metadata"]["namespace"]) for o in namespaced] == [
        ("KopfPeering", "a"),
        ("KopfPeering", "b"),
    ]
    assert peering_objects(config(all_namespaces=True)) == []
    # Kopf's auto-detect mode: a missing object means standalone there, so nothing is created.
    assert peering_objects(config(all_namespaces=True, standalone=False)) == []


class FakeKube:
    def __init__(self, errors: dict[str, KubeError]) -> None:
        self.errors = errors
        self.created: list[str] = []

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        namespace = obj["metadata"]["namespace"]
        if namespace in self.errors:
            raise self.errors[namespace]
        self.created.append(namespace)
        return obj


async def test_ensure_creates_missing_objects_and_tolerates_existing_or_forbidden() -> None:
    kube = FakeKube(
        {
            "there": KubeError(409, "AlreadyExists", "exists"),
            "locked": KubeError(403, "Forbidden", "cannot create"),
        }
    )
    cfg = config(namespaces=["new", "there", "locked"], peering_name="stanch")
    created = await ensure_peering_objects(kube, cfg)  # type: ignore[arg-type]
    assert created == ["KopfPeering new/stanch"]
    assert kube.created == ["new"]


async def test_ensure_raises_other_errors() -> None:
    kube = FakeKube({"bad": KubeError(422, "Invalid", "no")})
    with pytest.raises(KubeError):
        await ensure_peering_objects(kube, config(namespaces=["bad"], peering_name="s"))  # type: ignore[arg-type]
