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
from typing import Any

from stanch.core.investigation.attribution import DATA_ROOTS, config_writer
from stanch.core.investigation.gathering import template_references
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


def _latest_writer(obj: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """Data keys the newest writer of the data owns, if it wrote after the creation (a manager that
    only annotated the ConfigMap is not its writer: see ``attribution``)."""
    writer = config_writer(obj, DATA_ROOTS)
    if writer is None:
        return (), None
    return writer.fields, writer.manager


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
        touched, manager = _latest_writer(obj)
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


# --- HorizontalPodAutoscalers -------------------------------------------------------------------

HPAS_MAX = 500
_HPA_FIELD = re.compile(r"\b(?P<field>minReplicas|maxReplicas) (?P<old>\d+) → (?P<new>\d+)")
_HPA_TARGET = re.compile(r"\b(?P<resource>[a-z][-a-z0-9]*) utilization (?P<old>\d+)% → (?P<new>\d+)%")
HPA_CHANGED = "spec changed:"
"""Marks a summary written from a remembered previous version: what follows lists the fields."""


@dataclass(frozen=True)
class HpaSpec:
    """What an HPA's change can be undone by (``autoscaler`` action): bounds and Utilization targets."""

    min_replicas: int | None
    max_replicas: int | None
    targets: tuple[tuple[str, int], ...]
    """(resource, averageUtilization) of each ``Resource`` metric with a Utilization target."""
    other: str
    """Everything else of the spec (other metrics, behavior), as canonical JSON: a change there is
    seen, never undone by Stanch."""


def hpa_spec(obj: Mapping[str, Any]) -> HpaSpec:
    spec = obj.get("spec") or {}
    targets: list[tuple[str, int]] = []
    rest = []
    for metric in spec.get("metrics") or ():
        resource = (metric or {}).get("resource") or {}
        target = resource.get("target") or {}
        value = target.get("averageUtilization")
        if (
            metric.get("type") == "Resource"
            and target.get("type") == "Utilization"
            and isinstance(value, int)
        ):
            targets.append((str(resource.get("name")), value))
        else:
            rest.append(metric)
    other = {k: v for k, v in spec.items() if k not in ("minReplicas", "maxReplicas", "metrics")}
    other["metrics"] = rest
    min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas")
    return HpaSpec(
        min_replicas=int(min_replicas) if min_replicas is not None else None,
        max_replicas=int(max_replicas) if max_replicas is not None else None,
        targets=tuple(targets),
        other=json.dumps(other, sort_keys=True, default=str)[:4096],
    )


@dataclass(frozen=True)
class HpaChange:
    """An HPA's spec between the version before and the latest, field by field."""

    bounds: tuple[tuple[str, int, int], ...]
    """(``minReplicas``/``maxReplicas``, old, new) for each bound that changed."""
    targets: tuple[tuple[str, int, int], ...]
    """(resource, old %, new %) for each Utilization target that changed."""
    unrestorable: tuple[str, ...]
    """What changed that the autoscaler action cannot set back (a metric added or removed, another
    metric kind, ``behavior``, the scale target)."""

    def describe(self) -> str:
        parts = [f"{field} {old} → {new}" for field, old, new in self.bounds]
        parts += [f"{resource} utilization {old}% → {new}%" for resource, old, new in self.targets]
        parts += list(self.unrestorable)
        return ", ".join(parts)


def hpa_change(before: HpaSpec, after: HpaSpec) -> HpaChange | None:
    """What changed between two versions of an HPA's spec; None when nothing did."""
    bounds = tuple(
        (name, old if old is not None else 1, new if new is not None else 1)
        for name, old, new in (
            ("minReplicas", before.min_replicas, after.min_replicas),
            ("maxReplicas", before.max_replicas, after.max_replicas),
        )
        if old != new and new is not None
    )
    was, now = dict(before.targets), dict(after.targets)
    targets = tuple((r, was[r], now[r]) for r in sorted(was.keys() & now.keys()) if was[r] != now[r])
    unrestorable = []
    if was.keys() != now.keys():
        unrestorable.append("utilization metrics " + ",".join(sorted(was)) + " → " + ",".join(sorted(now)))
    if before.other != after.other:
        unrestorable.append("other spec fields (metrics, behavior or scale target) changed")
    if not bounds and not targets and not unrestorable:
        return None
    return HpaChange(bounds, targets, tuple(unrestorable))


@dataclass(frozen=True)
class SeenHpa:
    resource_version: str
    spec: HpaSpec
    previous: HpaSpec | None


class HpaMemory:
    """The specs of HorizontalPodAutoscalers as last seen, and the version before (Kubernetes keeps
    no history of them either): an autoscaler change can then be undone to what it was. Bounded
    like :class:`ConfigMapMemory`; a status-only update (every sync) keeps the previous version."""

    def __init__(self, limit: int = HPAS_MAX) -> None:
        self._limit = limit
        self._seen: OrderedDict[tuple[str, str], SeenHpa] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        version = str(meta.get("resourceVersion") or "")
        spec = hpa_spec(obj)
        old = self._seen.get(key)
        if old is not None and old.resource_version == version:
            return
        previous = old.previous if old is not None else None
        if old is not None and old.spec != spec:
            previous = old.spec
        self._seen[key] = SeenHpa(version, spec, previous)
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def change(self, namespace: str, name: str) -> HpaChange | None:
        """The last spec change seen, or None (never seen changing)."""
        seen = self._seen.get((namespace, name))
        if seen is None or seen.previous is None:
            return None
        return hpa_change(seen.previous, seen.spec)


def describe_hpa_changes(
    changes: Sequence[ConfigChange], namespace: str, memory: HpaMemory
) -> list[ConfigChange]:
    """The collector's HPA changes with the fields that changed and their old values put first in
    the summary (``HPA api spec changed: maxReplicas 10 → 3; …``), where the memory saw the change
    and the summary is a spec change (not a rescale)."""
    out = []
    for change in changes:
        if change.object.kind == "HorizontalPodAutoscaler" and "last scaled" not in change.summary:
            found = memory.change(change.object.namespace or namespace, change.object.name)
            if found is not None:
                rest = change.summary.split(": ", 1)[-1]
                text = f"HPA {change.object.name} {HPA_CHANGED} {found.describe()}; now {rest}"
                change = change.model_copy(update={"summary": text[:SUMMARY_MAX]})
        out.append(change)
    return out


def parse_hpa_change(summary: str) -> HpaChange | None:
    """The change :func:`describe_hpa_changes` wrote into a summary; None for any other summary."""
    if HPA_CHANGED not in summary:
        return None
    listed = summary.split(HPA_CHANGED, 1)[1].split(";", 1)[0]
    bounds = tuple((m["field"], int(m["old"]), int(m["new"])) for m in _HPA_FIELD.finditer(listed))
    targets = tuple((m["resource"], int(m["old"]), int(m["new"])) for m in _HPA_TARGET.finditer(listed))
    unrestorable = tuple(
        part.strip() for part in listed.split(", ") if "metrics" in part or "other spec fields" in part
    )
    if not bounds and not targets and not unrestorable:
        return None
    return HpaChange(bounds, targets, unrestorable)
