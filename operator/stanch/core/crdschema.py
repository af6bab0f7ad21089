"""Turn a pydantic model's JSON Schema into a Kubernetes *structural* OpenAPI v3 schema.

Pydantic emits JSON Schema 2020-12 with ``$ref``/``$defs``, ``anyOf [X, null]`` for optional fields,
``title``s, ``const`` and ``propertyNames``. A CRD needs a structural schema: every node typed, no
references, no unions, no ``additionalProperties`` next to ``properties``. This module converts, and
refuses (``CrdSchemaError``) anything it cannot express faithfully instead of guessing:

* ``$ref`` is inlined; a description next to the reference (the field's doc) wins over the referenced
  class's doc; CEL rules on both are concatenated.
* ``anyOf [X, {type: null}]`` becomes ``X``: optional fields are simply omitted on the wire (models dump
  with ``exclude_none``), so ``nullable`` is never needed.
* ``const`` becomes a one-value ``enum``; ``propertyNames`` constraints become a CEL rule on the map.
* An untyped object (``dict[str, Any]``) must carry ``x-kubernetes-preserve-unknown-fields`` explicitly
  (see :func:`stanch.core.models.common.preserve_unknown`).
* Scalar defaults are kept in spec (the API server applies them); status never carries defaults.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from stanch.core.models.base import CEL_KEY, PRESERVE_KEY

Schema = dict[str, Any]

ALLOWED_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "maximum",
        "minimum",
        "maxProperties",
        "minProperties",
        "default",
        CEL_KEY,
        PRESERVE_KEY,
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }
)
"""Keys a generated schema node may contain; anything else is an error, not silently passed on."""

_DROPPED = frozenset({"title"})


class CrdSchemaError(ValueError):
    """The model uses a construct that has no faithful structural-schema equivalent."""


def clean_description(text: str) -> str:
    """Docstring → one-paragraph-per-line description with single backticks (for ``kubectl explain``)."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p).replace("``", "`")


def structural_schema(model: type[BaseModel], *, keep_defaults: bool) -> Schema:
    """The structural OpenAPI v3 schema of ``model`` (camelCase field names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Schema] = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__, keep_defaults=keep_defaults)


def _resolve(node: Schema, defs: dict[str, Schema]) -> tuple[Schema, Schema]:
    """Split a node into (referenced schema or {}, sibling keys)."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is None and "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1 or "$ref" not in parts[0]:
            raise CrdSchemaError(f"allOf with {len(parts)} parts is not supported")
        ref = parts[0]["$ref"]
    if ref is None:
        return {}, node
    return dict(defs[ref.rsplit("/", 1)[-1]]), node


def _merge(base: Schema, over: Schema) -> Schema:
    out = dict(base)
    for key, value in over.items():
        if key == CEL_KEY:
            out[CEL_KEY] = [*out.get(CEL_KEY, []), *value]
        else:
            out[key] = value
    return out


def _convert(node: Schema, defs: dict[str, Schema], *, path: str, keep_defaults: bool) -> Schema:
    referenced, siblings = _resolve(node, defs)
    if referenced:
        inner = _convert(referenced, defs, path=path, keep_defaults=keep_defaults)
        rest = _convert_siblings(siblings, path=path, keep_defaults=keep_defaults)
        return _merge(inner, rest)
    node = siblings
    if node.get(PRESERVE_KEY):
        # Free-form by explicit choice: whatever pydantic says about the inside is irrelevant.
        out: Schema = {"type": "object", PRESERVE_KEY: True}
        if "description" in node:
            out["description"] = clean_description(node["description"])
        return out
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise CrdSchemaError(f"{path}: a union of {len(options)} types is not structural; use one type")
        if node.get("default", 0) is None:
            node.pop("default")
        inner = _convert(options[0], defs, path=path, keep_defaults=keep_defaults)
        return _merge(inner, _convert_siblings(node, path=path, keep_defaults=keep_defaults))
    out = _convert_siblings(node, path=path, keep_defaults=keep_defaults)
    kind = out.get("type")
    if kind == "object":
        _convert_object(node, out, defs, path=path, keep_defaults=keep_defaults)
    elif kind == "array":
        out["items"] = _convert(node["items"], defs, path=f"{path}[]", keep_defaults=keep_defaults)
    elif kind == "number":
        out.setdefault("format", "double")
    elif kind is None and not out.get(PRESERVE_KEY):
        raise CrdSchemaError(f"{path}: every node needs a type")
    _check_keys(out, path)
    return out


def _convert_siblings(node: Schema, *, path: str, keep_defaults: bool) -> Schema:
    """Scalar keywords of a node (everything but properties/items/additionalProperties)."""
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED or key in ("properties", "items", "additionalProperties", "propertyNames"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "description":
            out["description"] = clean_description(value)
        elif key == "default":
            if keep_defaults and isinstance(value, str | int | float | bool) and value is not None:
                out["default"] = value
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            raise CrdSchemaError(f"{path}: use ge/le, not gt/lt (OpenAPI v3.0 exclusive bounds differ)")
        else:
            out[key] = value
    return out


def _convert_object(
    node: Schema, out: Schema, defs: dict[str, Schema], *, path: str, keep_defaults: bool
) -> None:
    if out.get(PRESERVE_KEY):
        if node.get("properties"):
            raise CrdSchemaError(
                f"{path}: preserve-unknown-fields objects are free-form; drop the properties"
            )
        return
    props = node.get("properties")
    additional = node.get("additionalProperties")
    if props:
        out["properties"] = {}
        for name, sub in props.items():
            prop = _convert(sub, defs, path=f"{path}.{name}", keep_defaults=keep_defaults)
            if not prop.get("description"):
                raise CrdSchemaError(
                    f"{path}.{name}: missing description; document the field with a docstring"
                )
            out["properties"][name] = prop
        if additional not in (None, False):
            raise CrdSchemaError(f"{path}: properties and additionalProperties together are not structural")
    elif isinstance(additional, dict) and additional:
        out["additionalProperties"] = _convert(
            additional, defs, path=f"{path}{{}}", keep_defaults=keep_defaults
        )
        names = node.get("propertyNames")
        if names:
            out[CEL_KEY] = [*out.get(CEL_KEY, []), _key_rule(names, path)]
    else:
        raise CrdSchemaError(
            f"{path}: untyped object; type it, or mark it with x-kubernetes-preserve-unknown-fields "
            "(only for Kopf state and snapshots of arbitrary objects)"
        )


def _key_rule(names: Schema, path: str) -> dict[str, str]:
    checks = []
    if "minLength" in names:
        checks.append(f"size(k) >= {names['minLength']}")
    if "maxLength" in names:
        checks.append(f"size(k) <= {names['maxLength']}")
    if "pattern" in names:
        checks.append(f"k.matches({json.dumps(names['pattern'])})")
    if set(names) - {"minLength", "maxLength", "pattern"} or not checks:
        raise CrdSchemaError(f"{path}: unsupported key constraint {names}")
    return {"rule": f"self.all(k, {' && '.join(checks)})", "message": "invalid key"}


def _check_keys(out: Schema, path: str) -> None:
    unknown = set(out) - ALLOWED_KEYS
    if unknown:
        raise CrdSchemaError(f"{path}: schema keywords {sorted(unknown)} are not allowed in a CRD")
