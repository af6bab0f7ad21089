"""A small memory of ConfigMap values, so a flag flip can be described as ``key NAME: OLD → NEW``.

Kubernetes keeps no history of ConfigMap data: after ``kubectl patch`` the old value is gone. The
operator remembers what it saw instead — only ConfigMaps that a watched workload's pod template
references (the wiring decides which), never Secrets — and two versions of each: the latest and the
one before it. Bounded: at most :data:`CONFIGMAPS_MAX` ConfigMaps (least recently changed dropped
first), :data:`KEYS_MAX` keys each, values longer than :data:`VALUE_MAX` characters are not kept
(a value too long to remember is treated as unknown, never compared).

Without a remembered previous version, ``metadata.managedFields`` still tells which data keys the
last writer touched: when that is a single key, the change is described as ``key NAME changed to
NEW`` (the old value unknown). Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch.core.investigation.gathering import parse_time, template_references
from stanch.core.models import ConfigChange

CONFIGMAPS_MAX = 500
KEYS_MAX = 64
VALUE_MAX = 256
SUMMARY_MAX = 512
_PLAIN = re.compile(r"^[^\s\"':;→]+$")

Data = dict[str, str | None]
"""Key → value; ``None`` for a value too long to remember."""


@dataclass(frozen=True)
class Seen:
    """What the memory holds about one ConfigMap."""

    resource_version: str
    data: Data
    previous: Data | None
    """The data of the version seen before ``data``, if any was seen."""
    touched: tuple[str, ...]
    """Data keys the latest writer touched, from managedFields (only for an update)."""
    manager: str | None


def _data(obj: Mapping[str, Any]) -> Data:
    raw = obj.get("data") or {}
    out: Data = {}
    for key in sorted(raw)[:KEYS_MAX]:
        value = raw[key]
        out[str(key)] = value if isinstance(value, str) and len(value) <= VALUE_MAX else None
    return out


def _latest_writer(meta: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """Data keys the newest managedFields entry owns, if it came after the creation."""
    created = parse_time(meta.get("creationTimestamp"))
    best: tuple[datetime, Mapping[str, Any]] | None = None
    for entry in meta.get("managedFields") or ():
        moment = parse_time(entry.get("time"))
        if moment is None or (created is not None and moment <= created):
            continue
        if best is None or moment > best[0]:
            best = (moment, entry)
    if best is None:
        return (), None
    fields = (best[1].get("fieldsV1") or {}).get("f:data") or {}
    keys = tuple(sorted(k[2:] for k in fields if isinstance(k, str) and k.startswith("f:")))
    return keys, best[1].get("manager")


def show(value: str) -> str:
    """A value as it appears in a summary: bare when unambiguous, else JSON-quoted."""
    return value if _PLAIN.match(value) else json.dumps(value, ensure_ascii=False)


class ConfigMapMemory:
    """The values of referenced ConfigMaps as last seen, and the version before."""

    def __init__(self, limit: int = CONFIGMAPS_MAX) -> None:
        self._limit = limit
        self._seen: OrderedDict[tuple[str, str], Seen] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, obj: Mapping[str, Any]) -> None:
        """Remember a ConfigMap as the API server returned it (a watch event or a list item)."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        version = str(meta.get("resourceVersion") or "")
        data = _data(obj)
        touched, manager = _latest_writer(meta)
        old = self._seen.get(key)
        if old is not None and old.resource_version == version:
            return
        previous = old.previous if old is not None else None
        if old is not None and old.data != data:
            previous = old.data
        self._seen[key] = Seen(version, data, previous, touched, manager)
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> Seen | None:
        return self._seen.get((namespace, name))

    def describe(self, namespace: str, name: str) -> str | None:
        """``key NAME: OLD → NEW`` for a single remembered key change, ``key NAME changed to NEW``
        when only managedFields name the key; ``None`` when neither tells one key."""
        seen = self.get(namespace, name)
        if seen is None:
            return None
        by = f" (updated by {seen.manager})" if seen.manager else ""
        if seen.previous is not None:
            changed = [
                k for k in sorted({*seen.previous, *seen.data}) if seen.previous.get(k) != seen.data.get(k)
            ]
            if len(changed) != 1:
                return None
            key = changed[0]
            old, new = seen.previous.get(key), seen.data.get(key)
            if new is None:
                return None  # removed, or too long to remember
            if old is None:
                return f"key {key} changed to {show(new)}{by}"
            return f"key {key}: {show(old)} → {show(new)}{by}"
        if len(seen.touched) == 1 and seen.data.get(seen.touched[0]) is not None:
            key = seen.touched[0]
            return f"key {key} changed to {show(seen.data[key] or '')}{by}"
        return None


def describe_key_changes(
    changes: Sequence[ConfigChange], namespace: str, memory: ConfigMapMemory
) -> list[ConfigChange]:
    """The collector's ConfigMap changes with their summary replaced by the single key that
    changed, where the memory can tell."""
    out = []
    for change in changes:
        text = None
        if change.object.kind == "ConfigMap" and change.changed_at is not None:
            text = memory.describe(change.object.namespace or namespace, change.object.name)
        if text is not None and len(text) <= SUMMARY_MAX:
            change = change.model_copy(update={"summary": text})
        out.append(change)
    return out


def referenced_config_maps(templates: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Names of the ConfigMaps any of the pod templates reference."""
    names: set[str] = set()
    for template in templates:
        names |= template_references(template).config_maps
    return frozenset(names)
