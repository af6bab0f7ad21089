"""Suspending a GitOps controller's self-heal for the duration of a Mitigation (``suspendAutoSync``):
the policy asks, the reducer records what it suspends before doing it, sets Flux's per-object switch
with the lock, keeps it through the change and the revert, and puts it back at the end — whatever
the outcome, and also after a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from stanch.core.effects import Patch
from stanch.core.machine.observations import Tick
from stanch.core.machine.state import MachineState
from stanch.core.models import (
    FLUX_RECONCILE_ANNOTATION,
    LOCK_ANNOTATION,
    AutoSyncPhase,
    AutoSyncRequest,
    MitigationSpec,
    MitigationStatus,
    PolicyDecision,
    PolicyDecisionKind,
)
from stanch.core.plans import plan, revert_effects
from stanch.core.plans.autosync import HELD, plan_auto_sync, resume_patch

from .crashing import CrashingCluster, last_transition_before_the_crash
from .fixtures import deployment, replica_set
from .test_machine import T0, Cluster, bake, state, step

P_ = "MitigationPolicy/shop/p"
FLUX_LABELS = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux"}
FLUX_REQUEST = AutoSyncRequest(tool="Flux", app="Kustomization flux/apps", policy=P_)


def decided(st: MachineState, request_: AutoSyncRequest | None = FLUX_REQUEST) -> MachineState:
    """A Mitigation whose policy decision allowed it (and asked for the suspension)."""
    decision = PolicyDecision(
        decision=PolicyDecisionKind.ALLOW,
        policy=P_,
        rule="actions[Scale]",
        gitops_managed="Flux",
        suspend_auto_sync=request_,
    )
    return replace(st, status=MitigationStatus(phase="Baseline", policy=decision))


def annots(cluster: Cluster) -> dict[str, str]:
    result: dict[str, str] = cluster.objects[("Deployment", "web")]["metadata"]["annotations"]
    return result


def flux_cluster(**annotations_: str) -> Cluster:
    dep = deployment(replicas=3)
    dep["metadata"]["labels"] = dict(FLUX_LABELS)
    dep["metadata"]["annotations"].update(annotations_)
    return Cluster({("Deployment", "web"): dep})


# --- the machine --------------------------------------------------------------------------------------


def test_flux_switch_is_recorded_first_set_with_the_lock_and_removed_after_success() -> None:
    cluster = flux_cluster()
    st, log = step(decided(state({"scale": {"replicas": 4}})), Tick(), cluster, T0)
    planned = next(t for t in log if t.audit and t.audit[0].event == "Planned")
    record = planned.state.status.auto_sync
    assert record is not None
    assert record.phase is AutoSyncPhase.SUSPENDING, "recorded before the lock (write-ahead)"
    assert (record.tool, record.object, record.previous) == ("Flux", "Deployment/shop/web", None)
    assert planned.state.status.snapshot is not None
    assert planned.state.status.snapshot[HELD] == {FLUX_RECONCILE_ANNOTATION: "disabled"}
    assert cluster.mutations == ["Lock:Deployment", "Apply:Deployment"], "one write for lock and switch"
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "disabled"
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.SUSPENDED

    st = bake(st, cluster, T0)
    assert st.status.phase == "Succeeded"
    assert FLUX_RECONCILE_ANNOTATION not in annots(cluster)
    assert LOCK_ANNOTATION not in annots(cluster)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.RESTORED, st.status.auto_sync
    assert "removed" in st.status.auto_sync.reason
    assert cluster.mutations[-2:] == ["Unlock:Deployment", "Resume:Deployment"]
    # A later undo of a temporary mitigation is conditional on both writes after the change.
    assert st.status.applied is not None
    assert st.status.applied.generation == cluster.objects[("Deployment", "web")]["metadata"]["generation"]


def test_switch_is_put_back_after_a_revert_and_a_previous_value_is_restored() -> None:
    cluster = flux_cluster(**{FLUX_RECONCILE_ANNOTATION: "enabled"})
    st, _ = step(decided(state({"scale": {"replicas": 1}})), Tick(), cluster, T0)
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "disabled"
    cluster.error_ratio = 0.3
    st = bake(st, cluster, T0)
    assert st.status.phase == "Reverted"
    assert cluster.objects[("Deployment", "web")]["spec"]["replicas"] == 3
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "enabled"
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.RESTORED


def test_a_switch_someone_else_set_is_left_alone() -> None:
    cluster = flux_cluster(**{FLUX_RECONCILE_ANNOTATION: "disabled"})
    st, _ = step(decided(state({"scale": {"replicas": 4}})), Tick(), cluster, T0)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.NOT_SUSPENDED
    st = bake(st, cluster, T0)
    assert st.status.phase == "Succeeded"
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "disabled", "not ours to remove"
    assert "Resume:Deployment" not in cluster.mutations


def test_a_restarted_operator_finishes_the_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = CrashingCluster(flux_cluster().objects, crash_on=("Unlock", "Resume"))
    st, _ = step(decided(state({"scale": {"replicas": 4}})), Tick(), cluster, T0)
    ending = last_transition_before_the_crash(monkeypatch, lambda: bake(st, cluster, T0))
    assert ending.state.status.phase == "Succeeded"
    assert ending.state.status.auto_sync is not None
    assert ending.state.status.auto_sync.phase is AutoSyncPhase.RESTORING, "persisted before the restore"
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "disabled", "the crash lost the effects"

    restarted = Cluster(cluster.objects)
    later = T0 + timedelta(minutes=10)
    st, _ = step(ending.state, Tick(), restarted, later)
    assert FLUX_RECONCILE_ANNOTATION not in annots(restarted)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.RESTORED
    again, log = step(st, Tick(), restarted, later + timedelta(seconds=5))
    assert again.status == st.status
    assert not [e for t in log for e in t.effects], "nothing left to do"


def test_a_switch_changed_by_someone_else_is_not_overwritten() -> None:
    cluster = flux_cluster()
    st, _ = step(decided(state({"scale": {"replicas": 4}})), Tick(), cluster, T0)
    # Someone sets the switch to a value of their own mid-bake: the end leaves it alone.
    annots(cluster)[FLUX_RECONCILE_ANNOTATION] = "enabled"
    st = bake(st, cluster, T0)
    assert st.status.phase == "Succeeded"
    assert annots(cluster)[FLUX_RECONCILE_ANNOTATION] == "enabled"
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.NOT_RESTORED
    assert "left as it is" in st.status.auto_sync.reason


def test_helm_release_and_unknown_argo_applications_are_recorded_not_suspended() -> None:
    target = deployment()
    missing = AutoSyncRequest(tool="ArgoCD", app="shop", policy=P_, application="argocd/shop")
    for req, words in (
        (AutoSyncRequest(tool="Flux", app="HelmRelease shop/web", policy=P_), "helm-controller"),
        (AutoSyncRequest(tool="ArgoCD", app="shop", policy=P_), "names no Application"),
        (missing, "Application argocd/shop was not found or not readable"),
    ):
        record = plan_auto_sync(req, target, T0, "shop/m1")
        assert record is not None
        assert record.phase is AutoSyncPhase.NOT_SUSPENDED
        assert words in record.reason
    cluster = Cluster({("Deployment", "web"): deployment(replicas=3)})
    step(decided(state({"scale": {"replicas": 4}}), missing), Tick(), cluster, T0)
    assert cluster.mutations == ["Lock:Deployment", "Apply:Deployment"]
    assert FLUX_RECONCILE_ANNOTATION not in annots(cluster)


def test_rollback_keeps_the_switch_and_the_revert_leaves_it_for_the_end() -> None:
    target = deployment("web:v3")
    target["metadata"]["annotations"][LOCK_ANNOTATION] = "m1"
    target["metadata"]["annotations"][FLUX_RECONCILE_ANNOTATION] = "disabled"
    chosen = replica_set("1", "web:v1", **{"kubernetes.io/change-cause": "deploy v1"})
    snapshot: dict[str, Any] = {
        "target": target,
        "takenAt": "2025-03-01T12:00:00Z",
        "rollback": {
            "revision": 1,
            "replicaSet": "web-h1",
            "template": chosen["spec"]["template"],
            "annotations": chosen["metadata"]["annotations"],
        },
        HELD: {FLUX_RECONCILE_ANNOTATION: "disabled"},
    }
    spec = MitigationSpec.model_validate({"target": {"name": "web"}, "rollback": {}})
    p = plan(spec, snapshot, mitigation="m1", mitigation_uid="u")
    (patch,) = p.apply
    assert isinstance(patch, Patch)
    new = next(op["value"] for op in patch.ops if op["path"] == "/metadata/annotations")
    assert new[FLUX_RECONCILE_ANNOTATION] == "disabled"
    assert new["kubernetes.io/change-cause"] == "deploy v1"
    reverts = revert_effects(p, snapshot, applied_generation=9, at=T0)
    paths = [op["path"] for e in reverts if isinstance(e, Patch) for op in e.ops]
    assert not [x for x in paths if "fluxcd" in x], paths


# --- Argo CD ------------------------------------------------------------------------------------------

ARGO_REQUEST = AutoSyncRequest(
    tool="ArgoCD", app="shop", policy=P_, application="argocd/shop", self_heal=True, has_annotations=True
)


def application(self_heal: bool = True, **annotations_: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "argocd", "annotations": dict(annotations_)},
        "spec": {"syncPolicy": {"automated": {"prune": True, "selfHeal": self_heal}}},
    }


def argo_cluster(app: dict[str, Any]) -> Cluster:
    return Cluster({("Deployment", "web"): deployment(replicas=3), ("Application", "shop"): app})


def app_of(cluster: Cluster) -> dict[str, Any]:
    result: dict[str, Any] = cluster.objects[("Application", "shop")]
    return result


def test_argo_self_heal_is_turned_off_after_the_lock_and_back_on_at_the_end() -> None:
    cluster = argo_cluster(application())
    st, _ = step(decided(state({"scale": {"replicas": 4}}), ARGO_REQUEST), Tick(), cluster, T0)
    assert cluster.mutations == ["Lock:Deployment", "Suspend:Application", "Apply:Deployment"]
    assert app_of(cluster)["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": False}
    assert app_of(cluster)["metadata"]["annotations"]["stanch.dev/self-heal-suspended-by"] == "shop/m1"
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.SUSPENDED
    assert st.status.auto_sync.object == "Application/argocd/shop"
    st = bake(st, cluster, T0)
    assert st.status.phase == "Succeeded"
    assert app_of(cluster)["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app_of(cluster)["metadata"]["annotations"] == {}
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.RESTORED, st.status.auto_sync
    # Only the Deployment's own writes count for a later undo's precondition.
    assert st.status.applied is not None
    assert st.status.applied.generation == cluster.objects[("Deployment", "web")]["metadata"]["generation"]


def test_argo_application_without_annotations_gets_the_marker_map() -> None:
    app = application()
    del app["metadata"]["annotations"]
    cluster = argo_cluster(app)
    request = ARGO_REQUEST.model_copy(update={"has_annotations": False})
    st, _ = step(decided(state({"scale": {"replicas": 4}}), request), Tick(), cluster, T0)
    assert app_of(cluster)["metadata"]["annotations"] == {"stanch.dev/self-heal-suspended-by": "shop/m1"}
    st = bake(st, cluster, T0)
    assert app_of(cluster)["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


def test_argo_without_self_heal_is_left_alone() -> None:
    cluster = argo_cluster(application(self_heal=False))
    request = ARGO_REQUEST.model_copy(update={"self_heal": False})
    st, _ = step(decided(state({"scale": {"replicas": 4}}), request), Tick(), cluster, T0)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.NOT_SUSPENDED
    assert "nothing to suspend" in st.status.auto_sync.reason
    st = bake(st, cluster, T0)
    assert "Suspend:Application" not in cluster.mutations
    assert "Resume:Application" not in cluster.mutations
    assert app_of(cluster) == application(self_heal=False)


def test_argo_suspension_that_landed_before_a_crash_is_still_undone() -> None:
    # The Suspend patch landed, the operator died before recording it: the re-issued patch is
    # refused (selfHeal is already off), yet the marker proves it is ours and the end restores it.
    cluster = argo_cluster(application(False, **{"stanch.dev/self-heal-suspended-by": "shop/m1"}))
    st, _ = step(decided(state({"scale": {"replicas": 4}}), ARGO_REQUEST), Tick(), cluster, T0)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.NOT_SUSPENDED
    st = bake(st, cluster, T0)
    assert app_of(cluster)["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.RESTORED


def test_argo_self_heal_someone_else_changed_is_not_overwritten() -> None:
    cluster = argo_cluster(application())
    st, _ = step(decided(state({"scale": {"replicas": 4}}), ARGO_REQUEST), Tick(), cluster, T0)
    # An app-of-apps sync re-applies the Application from Git mid-bake: marker gone, selfHeal on.
    cluster.objects[("Application", "shop")] = application(self_heal=True)
    st = bake(st, cluster, T0)
    assert st.status.auto_sync is not None
    assert st.status.auto_sync.phase is AutoSyncPhase.NOT_RESTORED
    assert "Resume:Application" not in cluster.mutations
    assert app_of(cluster) == application(self_heal=True)


def test_argo_restore_of_an_application_someone_else_suspended_is_refused() -> None:
    record = plan_auto_sync(ARGO_REQUEST, deployment(), T0, "shop/m1")
    assert record is not None
    patch = resume_patch(record, deployment())
    assert patch.key.kind == "Application"
    assert patch.precondition.tests == (
        ("/metadata/annotations/stanch.dev~1self-heal-suspended-by", "shop/m1"),
    )
