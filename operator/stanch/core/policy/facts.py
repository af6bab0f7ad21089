"""What evaluation needs to know about the target besides the Mitigation: its labels, annotations,
replica count, node labels (for Evacuate), and whether a GitOps controller owns it.

Built from plain Kubernetes JSON so the adapters stay dumb and the detection rules stay testable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE_LABEL = "argocd.argoproj.io/instance"
APP_INSTANCE_LABEL = "app.kubernetes.io/instance"
FLUX_KUSTOMIZE_LABEL = "kustomize.toolkit.fluxcd.io/name"
FLUX_KUSTOMIZE_NS_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_HELM_LABEL = "helm.toolkit.fluxcd.io/name"
FLUX_HELM_NS_LABEL = "helm.toolkit.fluxcd.io/namespace"
# Field managers Argo CD uses when it applies server-side.
ARGO_MANAGERS = frozenset({"argocd-controller", "argocd-application-controller"})


class GitOpsTool(StrEnum):
    ARGO_CD = "ArgoCD"
    FLUX = "Flux"


@dataclass(frozen=True)
class GitOpsOwner:
    """The GitOps tool reconciling the target, the application that owns it, and how we know."""

    tool: GitOpsTool
    app: str
    evidence: str

    def describe(self) -> str:
        return f"{self.tool.value} ({self.app}, from {self.evidence})"


def gitops_owner(
    labels: Mapping[str, str], annotations: Mapping[str, str], managers: tuple[str, ...] = ()
) -> GitOpsOwner | None:
    """Argo CD or Flux, from their tracking labels and annotations.

    ``app.kubernetes.io/instance`` alone is not enough: Helm charts set it too, so it counts for
    Argo CD (label tracking, the default before Argo CD 3) only when an Argo CD field manager has
    written the object as well.
    """
    tracking = annotations.get(ARGO_TRACKING_ANNOTATION)
    if tracking:
        # <app>:<group>/<kind>:<namespace>/<name>; the application may carry a namespace prefix.
        return GitOpsOwner(GitOpsTool.ARGO_CD, tracking.split(":", 1)[0], ARGO_TRACKING_ANNOTATION)
    if labels.get(ARGO_INSTANCE_LABEL):
        return GitOpsOwner(GitOpsTool.ARGO_CD, labels[ARGO_INSTANCE_LABEL], ARGO_INSTANCE_LABEL)
    if labels.get(APP_INSTANCE_LABEL) and ARGO_MANAGERS.intersection(managers):
        return GitOpsOwner(GitOpsTool.ARGO_CD, labels[APP_INSTANCE_LABEL], APP_INSTANCE_LABEL)
    for name_label, ns_label, kind in (
        (FLUX_KUSTOMIZE_LABEL, FLUX_KUSTOMIZE_NS_LABEL, "Kustomization"),
        (FLUX_HELM_LABEL, FLUX_HELM_NS_LABEL, "HelmRelease"),
    ):
        if labels.get(name_label):
            ns = labels.get(ns_label)
            app = f"{kind} {ns}/{labels[name_label]}" if ns else f"{kind} {labels[name_label]}"
            return GitOpsOwner(GitOpsTool.FLUX, app, name_label)
    return None


@dataclass(frozen=True)
class TargetFacts:
    """The target as it is now. ``exists=False`` when it could not be found."""

    exists: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    replicas: int | None = None
    field_managers: tuple[str, ...] = ()
    node_labels: Mapping[str, str] | None = None
    """Labels of the node an Evacuate names; None when not read or not found."""

    @property
    def gitops(self) -> GitOpsOwner | None:
        return gitops_owner(self.labels, self.annotations, self.field_managers)


def target_facts(workload: Mapping[str, Any] | None, node: Mapping[str, Any] | None = None) -> TargetFacts:
    """Facts from the workload's JSON (and the node's, for Evacuate)."""
    node_labels = dict((node or {}).get("metadata", {}).get("labels") or {}) if node is not None else None
    if workload is None:
        return TargetFacts(exists=False, node_labels=node_labels)
    meta = workload.get("metadata") or {}
    replicas = (workload.get("spec") or {}).get("replicas")
    managers = tuple(str(m.get("manager", "")) for m in meta.get("managedFields") or () if m.get("manager"))
    return TargetFacts(
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        # An absent spec.replicas means 1 (the API server defaults it), not "unknown".
        replicas=int(replicas) if isinstance(replicas, int) else 1,
        field_managers=managers,
        node_labels=node_labels,
    )
