"""Every Kubernetes API permission the operator uses, with the feature that needs it.

One table, three uses: ``KubeClient`` refuses any request it does not list (so the operator never
leans on a permission it does not declare, even where an admin granted more), the unit tests
require ``manifests/rbac.yaml`` to grant exactly this table (nothing missing, nothing extra), and
docs/security.md explains it. Kopf's own requests do not go through ``KubeClient``: they are listed
here too (``by_kopf``), and a unit test derives them from the handler registry.

Entries are RBAC triples: API group (``""`` for core), resource (``plural`` or
``plural/subresource``) and verb, optionally limited to ``resource_names``.
"""

from __future__ import annotations

from dataclasses import dataclass

from stanch import GROUP
from stanch.adapters.resources import Kind
from stanch.core.identity import ADMISSION_POLICY

PEERING_NAME = "stanch"
"""The peering object the shipped Deployment names with ``--peering``; patches are limited to it."""


@dataclass(frozen=True)
class Access:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()
    by_kopf: bool = False
    """Kopf makes these requests itself (watching, its progress records, Events, peering)."""
    built_in: str = ""
    """The Kubernetes built-in role that already grants it to every authenticated user (then
    manifests/rbac.yaml does not repeat it)."""


ACCESS: tuple[Access, ...] = (
    # --- Kopf itself ------------------------------------------------------------------------------
    Access(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "Kopf notices Stanch's CRDs installed or removed while it runs",
        by_kopf=True,
    ),
    Access(
        "",
        "namespaces",
        ("list", "watch"),
        "Kopf follows namespaces matching --namespace patterns",
        by_kopf=True,
    ),
    Access(
        "", "events", ("create",), "the audit trail: Events about Incidents and Mitigations", by_kopf=True
    ),
    Access(
        "kopf.dev",
        "clusterkopfpeerings",
        ("list", "watch"),
        "two replicas: each sees the others' peering records",
        by_kopf=True,
    ),
    Access("kopf.dev", "kopfpeerings", ("list", "watch"), "peering in namespaced mode", by_kopf=True),
    Access(
        "kopf.dev",
        "clusterkopfpeerings",
        ("patch",),
        "each replica refreshes its own peering record and drops expired ones",
        resource_names=(PEERING_NAME,),
        by_kopf=True,
    ),
    Access(
        "kopf.dev",
        "kopfpeerings",
        ("patch",),
        "peering records in namespaced mode",
        resource_names=(PEERING_NAME,),
        by_kopf=True,
    ),
    # --- Kopf watching Stanch's resources, with its finalizers and progress in status ----------------
    *(
        Access(GROUP, plural, ("list", "watch", "patch"), "Kopf watches them; finalizers", by_kopf=True)
        for plural in ("incidents", "mitigations", "mitigationpolicies", "clustermitigationpolicies")
    ),
    *(
        Access(GROUP, f"{plural}/status", ("patch",), "results, phases, Kopf's progress", by_kopf=True)
        for plural in ("incidents", "mitigations", "mitigationpolicies", "clustermitigationpolicies")
    ),
    # --- Kopf event handlers and indexes that wake investigations -----------------------------------
    Access("apps", "deployments", ("list", "watch"), "re-investigate on a rollout", by_kopf=True),
    Access("apps", "replicasets", ("list", "watch"), "re-investigate on a new revision", by_kopf=True),
    Access("", "configmaps", ("list", "watch"), "remember ConfigMap values to show flag flips", by_kopf=True),
    Access(
        "autoscaling",
        "horizontalpodautoscalers",
        ("list", "watch"),
        "remember HPA specs: the way back from a bad autoscaler change",
        by_kopf=True,
    ),
    Access("", "pods", ("list", "watch"), "re-investigate when a target's pods change", by_kopf=True),
    # --- Stanch's own reads and writes of its resources -------------------------------------------
    Access(GROUP, "incidents", ("get",), "a Mitigation reads its Incident"),
    Access(GROUP, "mitigations", ("get", "list"), "the lock holder, rate limits, cooldowns, one at a time"),
    Access(GROUP, "mitigations", ("create",), "automatic mitigation: a policy rule creates the Mitigation"),
    Access(GROUP, "mitigations/status", ("patch",), "the Mitigation's write-ahead status"),
    Access(
        GROUP,
        "mitigations/finalizers",
        ("update",),
        "canaries are owned by their Mitigation with blockOwnerDeletion"
        " (OwnerReferencesPermissionEnforcement checks this)",
    ),
    Access(GROUP, "incidents/status", ("patch",), "investigation results; the Incident's mitigations"),
    Access(
        GROUP,
        "incidents",
        ("list", "create", "patch"),
        "the Alertmanager receiver: finds its alert group's Incident, files it, records later alerts",
    ),
    Access(GROUP, "mitigationpolicies", ("get", "list"), "policy decisions"),
    Access(GROUP, "clustermitigationpolicies", ("get", "list"), "policy decisions"),
    Access(
        "kopf.dev",
        "clusterkopfpeerings",
        ("create",),
        "the operator creates its missing peering object at start (create cannot be limited by name)",
    ),
    Access("kopf.dev", "kopfpeerings", ("create",), "the same, in namespaced mode"),
    # --- Identity: approvals, and the admission policy that vouches for them ------------------------
    Access(GROUP, "mitigationapprovals", ("list",), "the approvals naming a Mitigation awaiting approval"),
    *(
        Access(
            "admissionregistration.k8s.io",
            plural,
            ("get",),
            "approvals count only while the stanch-identity admission policy is in force",
            resource_names=(ADMISSION_POLICY,),
        )
        for plural in ("validatingadmissionpolicies", "validatingadmissionpolicybindings")
    ),
    Access(
        "authentication.k8s.io",
        "selfsubjectreviews",
        ("create",),
        "the operator's own user name: the requester of the Mitigations it creates",
        built_in="system:basic-user",
    ),
    # --- Investigation: read-only evidence -------------------------------------------------------
    Access("", "pods", ("list", "watch"), "pod health, kept current by the evidence cache"),
    Access("", "pods/log", ("get",), "log signatures: bounded reads of recent lines"),
    Access("", "events", ("list", "watch"), "the timeline, kept current by the evidence cache"),
    Access("", "configmaps", ("list",), "config changes in the timeline"),
    Access("", "services", ("list",), "Services in front of the target"),
    Access("discovery.k8s.io", "endpointslices", ("list",), "ready endpoints of those Services"),
    Access("", "resourcequotas", ("list",), "capacity hypotheses"),
    Access("", "limitranges", ("list",), "capacity hypotheses"),
    Access("", "nodes", ("list",), "node conditions and taints"),
    Access("apps", "deployments", ("get",), "the target"),
    Access("apps", "replicasets", ("list",), "rollout history: each ReplicaSet is a revision"),
    Access("apps", "statefulsets", ("list",), "the workload behind a failing dependency's Service"),
    Access("autoscaling", "horizontalpodautoscalers", ("list",), "autoscaler limits and scaling"),
    # --- Mitigation: guarded writes, each under a policy decision ----------------------------------
    Access("apps", "deployments", ("patch",), "rollback, scale, pause, restart, the lock annotation"),
    Access("apps", "deployments", ("create", "delete"), "canary: a Deployment owned by its Mitigation"),
    Access("autoscaling", "horizontalpodautoscalers", ("patch",), "scale an HPA-managed target; autoscaler"),
    Access("", "configmaps", ("get", "patch"), "configToggle"),
    Access("", "pods", ("get", "delete"), "restart of named pods"),
    Access("", "pods/eviction", ("create",), "evacuate: evictions honour PodDisruptionBudgets"),
    Access("", "nodes", ("get", "patch"), "evacuate: cordon the node"),
    Access("argoproj.io", "applications", ("get", "patch"), "gitops.suspendAutoSync with Argo CD"),
)


def granted(accesses: tuple[Access, ...] = ACCESS) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """What manifests/rbac.yaml must grant, as (group, resource, verb, resourceNames) tuples: the
    table without what built-in roles grant everyone."""
    return {(a.group, a.resource, v, a.resource_names) for a in accesses for v in a.verbs if not a.built_in}


_DECLARED = {(a.group, a.resource, v) for a in ACCESS for v in a.verbs if not a.resource_names}
_NAMED = {(a.group, a.resource, v, n) for a in ACCESS for v in a.verbs for n in a.resource_names}


def resource_of(k: Kind, subresource: str | None = None) -> str:
    return f"{k.plural}/{subresource}" if subresource else k.plural


def undeclared(k: Kind, verb: str, subresource: str | None = None, name: str | None = None) -> str | None:
    """Why a request is not declared (a message naming the fix), or None when it is. A rule limited
    to resource names covers requests for those names only (as RBAC does)."""
    resource = resource_of(k, subresource)
    if (k.group, resource, verb) in _DECLARED or (k.group, resource, verb, name) in _NAMED:
        return None
    if name is not None and any(e[:3] == (k.group, resource, verb) for e in _NAMED):
        return (
            f"stanch declares {verb} on {resource} only for the names in ACCESS"
            f" (stanch/adapters/permissions.py), not {name!r}"
        )
    group = k.group or "core"
    return (
        f"stanch does not declare {verb} on {resource} ({group}): add it to ACCESS in"
        " stanch/adapters/permissions.py with the feature that needs it, and to manifests/rbac.yaml"
    )
