"""Write a custom resource's status exactly, conditionally on the version it was computed from.

A JSON patch on the status subresource replaces each changed top-level status field wholesale and
removes fields that are gone (a merge patch would keep stale nested keys, e.g. an old intent's
``expectedResourceVersion``), guarded by the object's resourceVersion: a status computed from a
stale read is refused (409) instead of overwriting a newer one. ``status.kopf`` belongs to Kopf and
is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stanch.adapters.kube import KubeClient
from stanch.core.effects import pointer

KOPF_FIELD = "kopf"


def status_ops(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], *, only: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """JSON-patch ops turning ``old`` status into ``new`` (top-level fields; ``only`` limits them)."""
    fields = set(only) if only is not None else None
    new = {k: v for k, v in new.items() if k != KOPF_FIELD and (fields is None or k in fields)}
    if old is None:
        return [{"op": "add", "path": "/status", "value": new}] if new else []
    ops: list[dict[str, Any]] = []
    for key, value in new.items():
        if old.get(key) != value:
            # "add" replaces an existing member and creates a missing one.
            ops.append({"op": "add", "path": pointer("status", key), "value": value})
    for key in old:
        if key != KOPF_FIELD and key not in new and (fields is None or key in fields):
            ops.append({"op": "remove", "path": pointer("status", key)})
    return ops


async def write_status(
    kube: KubeClient,
    kind_name: str,
    obj: Mapping[str, Any],
    new_status: Mapping[str, Any],
    *,
    only: Iterable[str] | None = None,
) -> dict[str, Any] | None:
    """Patch ``obj``'s status to ``new_status``, conditional on ``obj``'s resourceVersion.

    Returns the updated object, or None when nothing changed. Raises ``KubeError`` (``conflict``)
    when the object changed since ``obj`` was read."""
    meta = obj["metadata"]
    ops = status_ops(obj.get("status"), new_status, only=only)
    if not ops:
        return None
    return await kube.patch(
        kind_name,
        meta["name"],
        meta.get("namespace"),
        ops,
        "json",
        subresource="status",
        resource_version=meta["resourceVersion"],
    )
