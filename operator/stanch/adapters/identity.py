"""Reads behind the identity rules: the approvals in a namespace, the ``stanch-identity`` admission
policy and its binding, and who the operator itself is. Plain JSON out; the rules are in
``stanch.core.identity``."""

from __future__ import annotations

from typing import Any

from stanch.adapters.kube import KubeClient


async def read_approvals(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """Every MitigationApproval in ``namespace``."""
    return await kube.list("MitigationApproval", namespace)


async def read_admission(kube: KubeClient, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The ValidatingAdmissionPolicy and the ValidatingAdmissionPolicyBinding called ``name`` (None
    when missing). Errors propagate: the caller treats an unreadable policy as not in force."""
    policy = await kube.get("ValidatingAdmissionPolicy", name)
    binding = await kube.get("ValidatingAdmissionPolicyBinding", name)
    return policy, binding


async def whoami(kube: KubeClient) -> dict[str, Any]:
    """``status.userInfo`` of a SelfSubjectReview: the user the API server authenticates us as
    (``kubectl auth whoami``). Every authenticated user may create one (``system:basic-user``)."""
    review = await kube.create(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}
    )
    info: dict[str, Any] = (review.get("status") or {}).get("userInfo") or {}
    return info
