"""A small RFC 6902 applier, used to compute the state our own patches produce (for "is it
applied?" and drift) from the snapshot. It follows the API server's JSON-patch library where the
RFC leaves room: a ``test`` against ``null`` passes when the member is missing."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


class PatchError(ValueError):
    """The patch does not apply (a failed test, a missing path)."""


def parse_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def get_path(doc: Any, path: str) -> Any:
    """The value at ``path``, or None when any part is missing."""
    node = doc
    for part in parse_pointer(path):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def apply_ops(doc: Mapping[str, Any], ops: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``doc`` with ``ops`` applied (a deep copy; ``doc`` is untouched)."""
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    for op in ops:
        parts = parse_pointer(op["path"])
        if not parts:
            raise PatchError("whole-document operations are not used")
        parent: Any = out
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
            if parent is None:
                raise PatchError(f"{op['op']} {op['path']}: parent missing")
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent.get(last) if isinstance(parent, dict) else parent[int(last)]
            if current != op["value"]:
                raise PatchError(f"test {op['path']}: {current!r} != {op['value']!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and isinstance(parent, dict) and last not in parent:
                raise PatchError(f"replace {op['path']}: missing")
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, copy.deepcopy(op["value"]))
                else:
                    parent[idx] = copy.deepcopy(op["value"])
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            elif last in parent:
                del parent[last]
            else:
                raise PatchError(f"remove {op['path']}: missing")
        else:
            raise PatchError(f"unsupported op {kind!r}")
    return out


def prune_empty(value: Any) -> Any:
    """Drop nulls, empty maps and empty lists recursively: Kubernetes' semantic equality treats a
    nil and an empty map or slice as equal, and omits them on the wire."""
    if isinstance(value, Mapping):
        pruned = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value
