"""Who changed an object's configuration, from ``metadata.managedFields``.

The newest managedFields entry is usually not the change a human made: a controller writing the
status (an HPA's ``kube-controller-manager`` every sync, a ResourceQuota's usage) updates its entry
after every write, and so does a manager that touched only labels or annotations. The writer of a
configuration change is the newest entry that owns fields under the object's configuration roots
(``spec`` for a Deployment, an HPA, a Service, a quota; ``data``/``binaryData`` for a ConfigMap),
written through the main resource or the ``scale`` subresource, never through ``status``.

Limits, stated rather than guessed: an entry's ``time`` moves whenever its manager changes any field
it owns, so a manager that owns spec fields and later changed only its labels is still named, at
the later time; an Apply and an Update by the same manager are separate entries, each with its own
time. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SPEC_ROOTS = ("f:spec",)
DATA_ROOTS = ("f:data", "f:binaryData")
ROOTS_BY_KIND: Mapping[str, tuple[str, ...]] = {"ConfigMap": DATA_ROOTS, "Secret": DATA_ROOTS}
"""Where a kind keeps its configuration; any other kind: ``spec``."""


def roots_of(kind: str | None) -> tuple[str, ...]:
    return ROOTS_BY_KIND.get(kind or "", SPEC_ROOTS)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Writer:
    """The manager that last wrote an object's configuration."""

    manager: str
    operation: str | None
    """``Update`` (kubectl patch/edit/replace, a client-side apply, a controller) or ``Apply``
    (server-side apply)."""
    time: datetime | None
    fields: tuple[str, ...]
    """The top-level configuration fields it owns (``maxReplicas``, ``metrics``; a ConfigMap's keys)."""
    root: str
    """``spec``, ``data`` or ``binaryData``: the first root it owns fields under."""
    subresource: str | None = None

    def describe(self) -> str:
        """``spec updated by kubectl-patch (Update)``: the words the collector's summaries use."""
        how = f" ({self.operation})" if self.operation else ""
        via = f" via /{self.subresource}" if self.subresource else ""
        return f"{self.root} updated by {self.manager}{how}{via}"


def _owned(fields_v1: Mapping[str, Any], roots: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """The first root the entry owns fields under, and the top-level field names it owns there."""
    first: str | None = None
    names: list[str] = []
    for root in roots:
        under = fields_v1.get(root)
        if not isinstance(under, Mapping):
            continue
        first = first or root[2:]
        names.extend(sorted(k[2:] for k in under if isinstance(k, str) and k.startswith("f:")))
    return first, tuple(names)


def config_writers(
    obj: Mapping[str, Any], roots: Sequence[str] | None = None, *, fields: Sequence[str] | None = None
) -> list[Writer]:
    """Every managedFields entry that owns configuration fields, newest first (status writes and
    metadata-only managers left out); with ``fields``, only entries owning one of those top-level
    fields (``template``: who wrote a Deployment's pod template, not the HPA's ``replicas``)."""
    meta = obj.get("metadata") or {}
    wanted = tuple(roots) if roots is not None else roots_of(obj.get("kind"))
    out: list[tuple[int, Writer]] = []
    for index, entry in enumerate(meta.get("managedFields") or ()):
        if not isinstance(entry, Mapping) or entry.get("subresource") == "status":
            continue
        root, owned = _owned(entry.get("fieldsV1") or {}, wanted)
        if root is None or (fields is not None and not set(fields) & set(owned)):
            continue
        writer = Writer(
            manager=str(entry.get("manager") or "unknown"),
            operation=entry.get("operation"),
            time=_time(entry.get("time")),
            fields=owned,
            root=root,
            subresource=entry.get("subresource") or None,
        )
        out.append((index, writer))
    epoch = datetime.min.replace(tzinfo=UTC)
    # Newest first; on equal times the later entry (the API server appends) wins.
    out.sort(key=lambda iw: (iw[1].time or epoch, iw[0]), reverse=True)
    return [w for _, w in out]


def config_writer(
    obj: Mapping[str, Any], roots: Sequence[str] | None = None, *, fields: Sequence[str] | None = None
) -> Writer | None:
    """The newest writer of the object's configuration after its creation; None when nothing but
    the creation wrote it (or managedFields are missing)."""
    created = _time((obj.get("metadata") or {}).get("creationTimestamp"))
    for writer in config_writers(obj, roots, fields=fields):
        if writer.time is None:
            continue
        if created is not None and writer.time <= created:
            return None
        return writer
    return None
