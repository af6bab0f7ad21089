"""Which policies apply to a target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from stanch.core.models.policy import NodeSelection, PolicySelector


def name_matches(name: str, patterns: Sequence[str]) -> bool:
    """Empty means every name; otherwise any exact name or ``*`` glob."""
    return not patterns or any(fnmatchcase(name, pattern) for pattern in patterns)


def labels_match(labels: Mapping[str, str], required: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in required.items())


def selects(
    selector: PolicySelector,
    *,
    cluster_scoped: bool,
    policy_namespace: str | None,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
) -> bool:
    """A namespaced policy only ever speaks for its own namespace (its ``namespaces`` list is ignored,
    and flagged by validation); a cluster policy for the listed namespaces, or all when none."""
    if cluster_scoped:
        if selector.namespaces and namespace not in selector.namespaces:
            return False
    elif policy_namespace != namespace:
        return False
    return name_matches(name, selector.workload_names) and labels_match(labels, selector.match_labels)


def node_allowed(selection: NodeSelection, node: str, node_labels: Mapping[str, str] | None) -> str | None:
    """None when ``node`` may be evacuated, else why not."""
    if not name_matches(node, selection.names):
        return f"node {node} is not in evacuateNodes.names ({', '.join(selection.names)})"
    if selection.match_labels:
        if node_labels is None:
            return f"node {node}: its labels could not be read to check evacuateNodes.matchLabels"
        if not labels_match(node_labels, selection.match_labels):
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(selection.match_labels.items()))
            return f"node {node} does not carry evacuateNodes.matchLabels {wanted}"
    return None
