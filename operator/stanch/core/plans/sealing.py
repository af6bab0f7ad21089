"""``status.snapshot`` without secret values, and an exact revert all the same.

The snapshot is what a revert restores, so it needs the target's pod template exactly, including
literal env values such as ``DB_PASSWORD``. But status is read by far more people than the
Deployment (anyone who may list Mitigations, dashboards, backups of the CRs), and a copy there
outlives the value's rotation. So:

- **Persisted sealed.** Every value the redaction rule drops (:func:`stanch.core.redaction.map_secrets`)
  is written to status as :data:`SEALED`. Nothing derived from it is kept either (no hash: a hash
  of a short password is a dictionary lookup away).
- **Restored from the cluster, by identity, never by guessing.** Each pass, before the machine
  runs, the values are taken back from objects that hold exactly the snapshot's template and that
  whoever can read the Deployment can read already: the live target while its ``generation`` is the
  one the snapshot recorded (its spec has not changed since), else the ReplicaSet that held the
  template when the snapshot was taken (``target.templateReplicaSet``, by uid), and, for a rollback,
  the ReplicaSet rolled back to (``rollback.replicaSet``). A source is used only when its template,
  sealed, equals the snapshot's, sealed: everything but the secret values matches.
- **Never written when missing.** A value that no source holds any longer (the ReplicaSet was
  garbage-collected under ``revisionHistoryLimit: 0``) stays :data:`SEALED`; a write carrying it is
  refused before it is sent (:func:`sealed_in`), so the step ends visibly naming the variable, and
  a revert never writes a placeholder into someone's Deployment.

The machine itself keeps working "from the snapshot alone": it receives the restored snapshot, so a
re-run computes byte-identical effects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stanch.core.effects import Create, Patch
from stanch.core.plans.common import MutatingEffect, meta
from stanch.core.redaction import SEALED, map_secrets, secret_values

__all__ = ["SEALED", "Unsealed", "live_unchanged", "seal", "sealed_in", "sealed_paths", "unseal"]

HASH_LABEL = "pod-template-hash"


def seal(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """``status.snapshot`` as persisted: every secret-looking value replaced by :data:`SEALED`."""
    sealed: dict[str, Any] = map_secrets(dict(snapshot), lambda _path, _v: SEALED)
    return sealed


def sealed_paths(snapshot: Mapping[str, Any]) -> list[str]:
    """Where the snapshot holds :data:`SEALED` (what a pass must restore)."""
    return sorted(path for path, v in secret_values(dict(snapshot)).items() if v == SEALED)


@dataclass(frozen=True)
class Unsealed:
    """The snapshot with every value that could be restored, and the paths that could not."""

    snapshot: dict[str, Any]
    missing: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    """Where values came from, e.g. ``live Deployment``, ``ReplicaSet web-7d9f``: for the log."""


def _without_hash(template: Any) -> dict[str, Any]:
    out = copy.deepcopy(dict(template or {}))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _same_sealed(a: Any, b: Any) -> bool:
    return bool(seal({"x": a}) == seal({"x": b}))


def _by_uid(replica_sets: Sequence[Mapping[str, Any]], ref: Any) -> Mapping[str, Any] | None:
    if not isinstance(ref, Mapping):
        return None
    return next(
        (
            rs
            for rs in replica_sets
            if meta(rs).get("name") == ref.get("name") and (ref.get("uid") in (None, meta(rs).get("uid")))
        ),
        None,
    )


def live_unchanged(snapshot: Mapping[str, Any], target: Mapping[str, Any] | None) -> bool:
    """The live target is the snapshot's object at the snapshot's (or our lock's) generation: its
    spec has not changed since, so its values are the snapshot's."""
    snap_target = snapshot.get("target") or {}
    if target is None or meta(target).get("uid") != snap_target.get("uid"):
        return False
    unchanged = {snap_target.get("generation"), snapshot.get("lockedGeneration")} - {None}
    return meta(target).get("generation") in unchanged


def unseal(
    snapshot: Mapping[str, Any],
    *,
    target: Mapping[str, Any] | None,
    replica_sets: Sequence[Mapping[str, Any]],
) -> Unsealed:
    """Restore :data:`SEALED` values from the sources the module docstring lists."""
    wanted = sealed_paths(snapshot)
    if not wanted:
        return Unsealed(dict(snapshot))
    snap_target = snapshot.get("target") or {}
    snap_spec = snap_target.get("spec") or {}
    candidates: list[tuple[str, dict[str, Any]]] = []
    if live_unchanged(snapshot, target) and _same_sealed((target or {}).get("spec"), snap_spec):
        candidates.append(("live Deployment", {"target": {"spec": (target or {}).get("spec") or {}}}))
    rs = _by_uid(replica_sets, snap_target.get("templateReplicaSet"))
    if rs is not None:
        template = _without_hash((rs.get("spec") or {}).get("template"))
        if _same_sealed(template, _without_hash(snap_spec.get("template"))):
            candidates.append(
                (f"ReplicaSet {meta(rs).get('name')}", {"target": {"spec": {"template": template}}})
            )
    if live_unchanged(snapshot, target):
        assert target is not None
        # Before our change: the Deployment's own annotations are what a rollback keeps (kubectl's
        # skip-listed ones, such as last-applied-configuration) and what its revert restores.
        annotations = dict(meta(target).get("annotations") or {})
        candidates.append(
            ("live Deployment", {"rollback": {"annotations": annotations, "restore": annotations}})
        )
    rollback = snapshot.get("rollback")
    if isinstance(rollback, Mapping):
        chosen = _by_uid(replica_sets, {"name": rollback.get("replicaSet")})
        if chosen is not None:
            chosen_template = dict((chosen.get("spec") or {}).get("template") or {})
            if _same_sealed(chosen_template, rollback.get("template")):
                label = f"ReplicaSet {meta(chosen).get('name')}"
                candidates.append((label, {"rollback": {"template": chosen_template}}))
                candidates.append(
                    (label, {"rollback": {"annotations": dict(meta(chosen).get("annotations") or {})}})
                )
    if rs is not None:
        # After our change the Deployment's former annotations survive on the ReplicaSet that was
        # current then (the Deployment controller copies them onto it).
        former = dict(meta(rs).get("annotations") or {})
        candidates.append((f"ReplicaSet {meta(rs).get('name')}", {"rollback": {"restore": former}}))
    found: dict[str, Any] = {}
    used: list[str] = []
    for label, wrapped in candidates:
        values = secret_values(wrapped)
        hits = {p: values[p] for p in wanted if p not in found and p in values and values[p] != SEALED}
        if hits:
            found.update(hits)
            used.append(label)
    restored: dict[str, Any] = map_secrets(
        dict(snapshot), lambda path, v: found.get(path, v) if v == SEALED else v
    )
    return Unsealed(restored, tuple(p for p in wanted if p not in found), tuple(used))


def _carries(value: Any) -> bool:
    if isinstance(value, str):
        return value == SEALED
    if isinstance(value, Mapping):
        return any(_carries(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_carries(v) for v in value)
    return False


def sealed_in(effect: MutatingEffect) -> bool:
    """Whether a write would carry a placeholder instead of a value (never to be sent)."""
    if isinstance(effect, Patch):
        return _carries(list(effect.ops)) or _carries([v for _, v in effect.precondition.tests])
    if isinstance(effect, Create):
        return _carries(effect.manifest)
    return False
