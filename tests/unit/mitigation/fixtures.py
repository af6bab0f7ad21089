"""Hand-made Kubernetes objects as the API returns them."""

from __future__ import annotations

import copy
from typing import Any

UID = "dep-uid"


def template(image: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": {"app": "web"}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "image": image, "env": [{"name": "A", "value": "1"}]}]},
    }


def deployment(
    image: str = "web:v2", *, replicas: int = 4, generation: int = 7, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": UID,
            "generation": generation,
            "resourceVersion": "1000",
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubernetes.io/change-cause": "deploy v2",
                "team": "payments",
            },
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(image),
            **extra,
        },
        "status": {"replicas": replicas},
    }


def replica_set(
    revision: str | None, image: str, *, name: str | None = None, owner: str = UID, **ann: str
) -> dict[str, Any]:
    tmpl = template(image)
    tmpl["metadata"]["labels"]["pod-template-hash"] = f"h{revision}"
    annotations = dict(ann)
    if revision is not None:
        annotations["deployment.kubernetes.io/revision"] = revision
    return {
        "metadata": {
            "name": name or f"web-h{revision}",
            "namespace": "shop",
            "annotations": annotations,
            "ownerReferences": [{"uid": owner, "controller": True, "kind": "Deployment", "name": "web"}],
        },
        "spec": {"template": tmpl},
    }


def with_(obj: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return out
