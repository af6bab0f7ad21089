"""What changed between two pod templates, as the short lines an on-call engineer would write down.

Pure: two pod templates (plain dicts, as the API server returns them) in, lines out. Used for the
rollout history ("revision 7: image api:1.4.2 → api:1.5.0"). Values follow the one redaction rule
(:mod:`stanch.core.redaction`): a secret-looking env variable is named with its value left out
(``env app: DB_PASSWORD changed (value not shown)``), other values and args pass the text
redaction; Secret references are named, never resolved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from stanch.core.redaction import is_sensitive_key, redact_text

HASH_LABEL = "pod-template-hash"
MAX_VALUE = 80
MAX_LINES = 20


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = redact_text(text)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for item in items or ():
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            out[item["name"]] = item
    return out


def _env_value(var: Mapping[str, Any]) -> str:
    source = var.get("valueFrom")
    if isinstance(source, Mapping):
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"] or {}
            return f"<secret {ref.get('name')}/{ref.get('key')}>"
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"] or {}
            return f"<configmap {ref.get('name')}/{ref.get('key')}>"
        return f"<{_short(source)}>"
    return _short(var.get("value", ""))


def _map_diff(prefix: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            lines.append(f"{prefix} +{key}={_short(new[key])}")
        elif key not in new:
            lines.append(f"{prefix} -{key}")
        elif old[key] != new[key]:
            lines.append(f"{prefix} {key}: {_short(old[key])} → {_short(new[key])}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"limits": {"memory": "1Gi"}}`` → ``{"limits.memory": "1Gi"}``."""
    if not isinstance(value, Mapping):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _container_diff(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if old.get("image") != new.get("image"):
        lines.append(f"image {name}: {old.get('image')} → {new.get('image')}")
    old_vars, new_vars = _by_name(old.get("env")), _by_name(new.get("env"))
    # A reference (<secret db/password>) is shown; a literal value under a secret-looking name is not.
    hidden = {
        k
        for k in set(old_vars) | set(new_vars)
        if is_sensitive_key(k)
        and any("valueFrom" not in (v.get(k) or {"valueFrom": 1}) for v in (old_vars, new_vars))
    }
    old_env = {k: _env_value(v) for k, v in old_vars.items() if k not in hidden}
    new_env = {k: _env_value(v) for k, v in new_vars.items() if k not in hidden}
    lines += _map_diff(f"env {name}:", old_env, new_env)
    for key in sorted(hidden):
        before, after = old_vars.get(key), new_vars.get(key)
        if before is None and after is not None:
            lines.append(f"env {name}: +{key} (value not shown)")
        elif after is None and before is not None:
            lines.append(f"env {name}: -{key}")
        elif before != after:
            lines.append(f"env {name}: {key} changed (value not shown)")
    if (old.get("envFrom") or []) != (new.get("envFrom") or []):
        lines.append(
            f"envFrom {name}: {_short(old.get('envFrom') or [])} → {_short(new.get('envFrom') or [])}"
        )
    for field in ("command", "args"):
        if (old.get(field) or []) != (new.get(field) or []):
            lines.append(f"{field} {name}: {_short(old.get(field) or [])} → {_short(new.get(field) or [])}")
    lines += _map_diff(
        f"resources {name}:", _flatten(old.get("resources") or {}), _flatten(new.get("resources") or {})
    )
    for probe in _PROBES:
        before, after = old.get(probe), new.get(probe)
        if before != after:
            if before is None:
                lines.append(f"{probe} {name}: added {_short(after)}")
            elif after is None:
                lines.append(f"{probe} {name}: removed")
            else:
                lines += _map_diff(f"{probe} {name}:", _flatten(before), _flatten(after))
    old_mounts = {m.get("mountPath"): m.get("name") for m in old.get("volumeMounts") or ()}
    new_mounts = {m.get("mountPath"): m.get("name") for m in new.get("volumeMounts") or ()}
    lines += _map_diff(f"volumeMounts {name}:", old_mounts, new_mounts)
    return lines


def _volume_source(volume: Mapping[str, Any]) -> str:
    for key, value in volume.items():
        if key == "name":
            continue
        if isinstance(value, Mapping):
            ref = value.get("name") or value.get("secretName") or value.get("claimName")
            return f"{key}:{ref}" if ref else key
        return key
    return "unknown"


def template_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences from ``old`` to ``new`` pod template (``None``: first revision).

    Covers images, env, args/command, resources, probes, volumes and mounts, scheduling
    (nodeSelector, affinity, tolerations), service account, and template labels/annotations
    (``pod-template-hash`` ignored: it differs by construction).
    """
    if old is None:
        return []
    lines: list[str] = []
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for kind in ("containers", "initContainers"):
        before, after = _by_name(old_spec.get(kind)), _by_name(new_spec.get(kind))
        for name in sorted(set(before) | set(after)):
            label = name if kind == "containers" else f"init:{name}"
            if name not in before:
                lines.append(f"container {label} added (image {after[name].get('image')})")
            elif name not in after:
                lines.append(f"container {label} removed")
            else:
                lines += _container_diff(label, before[name], after[name])
    old_vols = {k: _volume_source(v) for k, v in _by_name(old_spec.get("volumes")).items()}
    new_vols = {k: _volume_source(v) for k, v in _by_name(new_spec.get("volumes")).items()}
    lines += _map_diff("volume", old_vols, new_vols)
    lines += _map_diff("nodeSelector", old_spec.get("nodeSelector") or {}, new_spec.get("nodeSelector") or {})
    for field in ("affinity", "tolerations", "topologySpreadConstraints", "serviceAccountName"):
        if old_spec.get(field) != new_spec.get(field):
            lines.append(f"{field}: {_short(old_spec.get(field))} → {_short(new_spec.get(field))}")
    old_labels = {k: v for k, v in (old_meta.get("labels") or {}).items() if k != HASH_LABEL}
    new_labels = {k: v for k, v in (new_meta.get("labels") or {}).items() if k != HASH_LABEL}
    lines += _map_diff("label", old_labels, new_labels)
    lines += _map_diff("annotation", old_meta.get("annotations") or {}, new_meta.get("annotations") or {})
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"… and {len(lines) - MAX_LINES + 1} more changes"]
    return lines


def images_of(template: Mapping[str, Any]) -> list[str]:
    """Images of the template's containers, in order."""
    containers: Sequence[Mapping[str, Any]] = (template.get("spec") or {}).get("containers") or []
    return [str(c.get("image")) for c in containers if c.get("image")]
