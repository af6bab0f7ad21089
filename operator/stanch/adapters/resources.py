"""The Kubernetes kinds Stanch reads or writes, and where they live in the REST API.

A table instead of a client library's class per kind: adapters work with plain JSON dicts so that
snapshots, patches and preconditions are byte-for-byte what the API server sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from stanch import GROUP, VERSION


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("Pod", "", "v1", "pods"),
        Kind("Event", "", "v1", "events"),
        Kind("ConfigMap", "", "v1", "configmaps"),
        Kind("Secret", "", "v1", "secrets"),
        Kind("Service", "", "v1", "services"),
        Kind("ResourceQuota", "", "v1", "resourcequotas"),
        Kind("LimitRange", "", "v1", "limitranges"),
        Kind("Node", "", "v1", "nodes", namespaced=False),
        Kind("Namespace", "", "v1", "namespaces", namespaced=False),
        Kind("Deployment", "apps", "v1", "deployments"),
        Kind("ReplicaSet", "apps", "v1", "replicasets"),
        Kind("StatefulSet", "apps", "v1", "statefulsets"),
        Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices"),
        Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
        Kind("Incident", GROUP, VERSION, "incidents"),
        Kind("Mitigation", GROUP, VERSION, "mitigations"),
        Kind("MitigationPolicy", GROUP, VERSION, "mitigationpolicies"),
        Kind("MitigationApproval", GROUP, VERSION, "mitigationapprovals"),
        # The stanch-identity admission policy: approvals are trusted only while it is in force.
        Kind(
            "ValidatingAdmissionPolicy",
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            namespaced=False,
        ),
        Kind(
            "ValidatingAdmissionPolicyBinding",
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            namespaced=False,
        ),
        # The operator's own user name, for the requester of the Mitigations it creates.
        Kind("SelfSubjectReview", "authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False),
        Kind("ClusterMitigationPolicy", GROUP, VERSION, "clustermitigationpolicies", namespaced=False),
        # Argo CD's Application: its selfHeal is suspended while a Mitigation runs (suspendAutoSync).
        Kind("Application", "argoproj.io", "v1alpha1", "applications"),
        # Kopf's peering records (kopf.dev, Kopf's group): with two replicas, the operator creates
        # its own peering object at start if it is missing (see wiring/handlers/peering.py).
        Kind("KopfPeering", "kopf.dev", "v1", "kopfpeerings"),
        Kind("ClusterKopfPeering", "kopf.dev", "v1", "clusterkopfpeerings", namespaced=False),
    )
}


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unsupported kind {name!r}; known: {', '.join(sorted(KINDS))}") from None
