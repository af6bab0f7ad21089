"""GitOps-managed Deployments under a policy with ``gitops.suspendAutoSync``.

Flux: while the Mitigation runs the Deployment carries Flux's per-object switch
``kustomize.toolkit.fluxcd.io/reconcile: disabled`` (so kustomize-controller would not put Git's
replica count back), also across an operator crash; when it ends the switch is gone again and status
says what was suspended and restored. Argo CD: the owning Application's selfHeal is off for the
Mitigation's duration and back on afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import WorldInfo
from e2e.kube import Kube, deployment
from e2e.shared import GUARD
from e2e.tests.mitigation_world import (
    FAST_GUARD,
    deployment_state,
    fast_operator,
    mitigation,
    settle,
    shutdown,
    wait_phase,
)
from e2e.tests.test_workloads import rollout_complete
from stanch.core.models import FLUX_RECONCILE_ANNOTATION, LOCK_ANNOTATION

pytestmark = pytest.mark.local_world("ready-pods", "simulator")

FLUX_LABELS = {
    "kustomize.toolkit.fluxcd.io/name": "apps",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}


def _gitops_policy(name: str) -> dict[str, Any]:
    """Scale allowed automatically, managed workloads not held for approval, auto-sync suspended."""
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "MitigationPolicy",
        "metadata": {"name": name},
        "spec": {
            "actions": [{"action": "Scale", "tier": "Auto", "limits": {"maxReplicas": 10}}],
            "gitops": {"requireApprovalForManaged": False, "suspendAutoSync": True},
        },
    }


def _restore_record(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    def restored() -> dict[str, Any] | None:
        record: dict[str, Any] = kube.get("mitigation", name, namespace)["status"].get("autoSync") or {}
        return record if record.get("phase") == "Restored" else None

    result: dict[str, Any] = kube.wait_for(restored, 15, "the restore recorded")
    return result


def _annotations(kube: Kube, namespace: str) -> dict[str, str]:
    result: dict[str, str] = deployment_state(kube, namespace, "web")["metadata"].get("annotations") or {}
    return result


def test_flux_reconciliation_is_suspended_for_the_mitigation_and_restored(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    manifest = deployment("web", replicas=2)
    manifest["metadata"]["labels"].update(FLUX_LABELS)
    kube.apply(manifest, namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "web rolled out")
    kube.apply(_gitops_policy("flux-managed"), namespace=namespace)
    settle()
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "bakeTime": "24s"}
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}, guard), namespace=namespace)
        baking = wait_phase(kube, namespace, "grow", {"Baking"}, 60)
        during = _annotations(kube, namespace)
        # A crash mid-bake: the restarted operator finds the suspension in status and still ends it.
        operator.kill()
        operator.start()
        st = wait_phase(kube, namespace, "grow", {"Succeeded"}, 90)
        record = _restore_record(kube, namespace, "grow")
    finally:
        shutdown(operator, kube, namespace)

    assert baking["policy"]["decision"] == "Allow", baking["policy"]
    assert baking["policy"]["suspendAutoSync"] == {
        "tool": "Flux",
        "app": "Kustomization flux-system/apps",
        "policy": f"MitigationPolicy/{namespace}/flux-managed",
    }
    assert baking["autoSync"]["phase"] == "Suspended", baking["autoSync"]
    assert during[FLUX_RECONCILE_ANNOTATION] == "disabled", during
    assert during[LOCK_ANNOTATION] == f"{namespace}/grow"  # the lock names namespace and name

    assert st["verdict"]["result"] == "Healthy", st["verdict"]
    assert record["object"] == f"Deployment/{namespace}/web"
    assert "removed" in record["reason"], record
    after = _annotations(kube, namespace)
    assert FLUX_RECONCILE_ANNOTATION not in after, after
    assert LOCK_ANNOTATION not in after
    assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 3
    events = {e["reason"] for e in kube.events(namespace) if e["involvedObject"].get("name") == "grow"}
    assert "AutoSyncRestored" in events, events


# A minimal stand-in for Argo CD's Application CRD: the real schema is large and Argo CD's controller
# is not running here; what matters is the object Stanch reads and patches.
APPLICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "names": {"kind": "Application", "plural": "applications", "singular": "application"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def application_crd(kube: Kube) -> None:
    """The stand-in CRD, the same whichever worker applies it and read by no other test: a harness
    write (e2e.shared), so this test runs beside the others."""
    with GUARD.harness():
        kube.apply(APPLICATION_CRD)
    kube.run("wait", "--for", "condition=established", "crd/applications.argoproj.io", "--timeout=60s")


def _application(namespace: str, manages: str) -> dict[str, Any]:
    """The Application as Argo CD's controller leaves it: status.resources lists what it manages
    (the stand-in CRD has no status subresource, so the test writes it with the object)."""
    managed = {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
        "namespace": namespace,
        "name": manages,
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "annotations": {"team": "payments"}},
        "spec": {"project": "default", "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
        "status": {"resources": [managed]},
    }


def _self_heal(kube: Kube, namespace: str) -> tuple[Any, dict[str, str]]:
    app = kube.get("application.argoproj.io", "shop", namespace)
    annotations = {
        k: v
        for k, v in (app["metadata"].get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    return app["spec"]["syncPolicy"]["automated"].get("selfHeal"), annotations


@pytest.mark.usefixtures("application_crd")
def test_argo_cd_self_heal_is_suspended_for_the_mitigation_and_restored(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    manifest = deployment("web", replicas=2)
    # Applications in any namespace: the tracking id names <namespace>_<app>.
    tracking = f"{namespace}_shop:apps/Deployment:{namespace}/web"
    manifest["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": tracking}
    kube.apply(manifest, namespace=namespace)
    kube.apply(_application(namespace, manages="web"), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "web rolled out")
    kube.apply(_gitops_policy("argo-managed"), namespace=namespace)
    settle()
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        guard = {**FAST_GUARD, "bakeTime": "24s"}
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}, guard), namespace=namespace)
        baking = wait_phase(kube, namespace, "grow", {"Baking"}, 60)
        during = _self_heal(kube, namespace)
        wait_phase(kube, namespace, "grow", {"Succeeded"}, 90)
        record = _restore_record(kube, namespace, "grow")
    finally:
        shutdown(operator, kube, namespace)

    asked = baking["policy"]["suspendAutoSync"]
    assert asked["application"] == f"{namespace}/shop", asked
    assert asked["selfHeal"] is True
    assert baking["autoSync"]["phase"] == "Suspended", baking["autoSync"]
    assert during == (False, {"team": "payments", "stanch.dev/self-heal-suspended-by": f"{namespace}/grow"})
    assert record["object"] == f"Application/{namespace}/shop"
    assert _self_heal(kube, namespace) == (True, {"team": "payments"})
    assert deployment_state(kube, namespace, "web")["spec"]["replicas"] == 3


@pytest.mark.usefixtures("application_crd")
def test_an_application_that_does_not_manage_the_target_is_never_suspended(
    world: WorldInfo, kube: Kube, namespace: str, crds_installed: None, tmp_path: Path
) -> None:
    """The tracking annotation is written by whoever may edit the Deployment: naming an Application
    that does not list the Deployment (another team's, say) suspends nothing; the Mitigation runs
    with autoSync NotSuspended and the reason."""
    manifest = deployment("web", replicas=2)
    manifest["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": f"{namespace}_shop:apps/Deployment:{namespace}/web"
    }
    kube.apply(manifest, namespace=namespace)
    kube.apply(_application(namespace, manages="other"), namespace=namespace)
    kube.wait_for(lambda: rollout_complete(kube, namespace, "web"), 60, "web rolled out")
    kube.apply(_gitops_policy("argo-managed"), namespace=namespace)
    settle()  # a baseline's worth of samples, as for the Application that does manage it
    before = kube.get("application.argoproj.io", "shop", namespace)["metadata"]["resourceVersion"]
    operator = fast_operator(world, namespace, tmp_path / "operator")
    operator.start()
    try:
        kube.apply(mitigation("grow", "web", {"scale": {"replicas": 3}}), namespace=namespace)
        baking = wait_phase(kube, namespace, "grow", {"Baking", "Succeeded"}, 60)
    finally:
        shutdown(operator, kube, namespace)
    record = baking["autoSync"]
    assert record["phase"] == "NotSuspended", record
    assert f"Application {namespace}/shop does not list Deployment {namespace}/web" in record["reason"]
    assert kube.get("application.argoproj.io", "shop", namespace)["metadata"]["resourceVersion"] == before
    assert _self_heal(kube, namespace) == (True, {"team": "payments"})
