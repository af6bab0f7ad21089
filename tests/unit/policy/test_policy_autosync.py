"""A policy asks for the GitOps controller's self-heal to be suspended (``gitops.suspendAutoSync``):
only a valid policy, only for a GitOps-managed target, only for a request it lets through."""

from __future__ import annotations

import pytest

from stanch.core.models import AutoSyncPhase, AutoSyncRequest, PolicyDecisionKind
from stanch.core.plans.autosync import plan_auto_sync
from stanch.core.policy import TargetFacts, evaluate, with_application

from .policy_builders import NOW, policy, request, rule

FLUX_LABELS = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux"}


def test_policy_asks_for_the_suspension_only_for_managed_targets_it_allows() -> None:
    asking = policy(
        actions=[rule("Rollback")], gitops={"requireApprovalForManaged": False, "suspendAutoSync": True}
    )
    managed = TargetFacts(labels=FLUX_LABELS, replicas=2)
    d = evaluate(request(), [asking], [], managed, NOW)
    assert d.decision is PolicyDecisionKind.ALLOW
    assert d.suspend_auto_sync == AutoSyncRequest(
        tool="Flux", app="Kustomization flux/apps", policy="MitigationPolicy/payments/default"
    )
    assert any("self-heal is suspended while the Mitigation runs" in r for r in d.reasons), d.reasons
    # Off by default, never for unmanaged targets, denied requests or dry runs.
    off = policy(actions=[rule("Rollback")], gitops={"requireApprovalForManaged": False})
    assert evaluate(request(), [off], [], managed, NOW).suspend_auto_sync is None
    assert evaluate(request(), [asking], [], TargetFacts(replicas=2), NOW).suspend_auto_sync is None
    assert evaluate(request({"scale": {"replicas": 3}}), [asking], [], managed, NOW).suspend_auto_sync is None
    assert evaluate(request(dryRun=True), [asking], [], managed, NOW).suspend_auto_sync is None


def test_an_invalid_policy_cannot_ask_for_the_suspension() -> None:
    broken = policy(
        actions=[rule("Rollback")],
        gitops={"requireApprovalForManaged": False, "suspendAutoSync": True},
        signals=[{"name": "e", "kind": "ErrorRatio", "query": "x{a='{{nope}}'}"}],
    )
    assert not broken.valid
    valid = policy("other", actions=[rule("Rollback")], gitops={"requireApprovalForManaged": False})
    d = evaluate(request(), [broken, valid], [], TargetFacts(labels=FLUX_LABELS, replicas=2), NOW)
    assert d.decision is PolicyDecisionKind.ALLOW
    assert d.suspend_auto_sync is None


def test_argo_application_is_named_and_read_into_the_decision() -> None:
    asking = policy(
        actions=[rule("Rollback")],
        gitops={"requireApprovalForManaged": False, "suspendAutoSync": True, "argoCDNamespace": "gitops"},
    )
    tracked = TargetFacts(annotations={"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:payments/c"})
    d = evaluate(request(), [asking], [], tracked, NOW)
    assert d.suspend_auto_sync is not None
    assert d.suspend_auto_sync.application == "gitops/shop"
    assert d.suspend_auto_sync.self_heal is None, "not read yet"
    # Applications in any namespace: the tracking id says <namespace>_<name>.
    elsewhere = TargetFacts(annotations={"argocd.argoproj.io/tracking-id": "team-a_shop:apps/Deployment:p/c"})
    d2 = evaluate(request(), [asking], [], elsewhere, NOW)
    assert d2.suspend_auto_sync is not None
    assert d2.suspend_auto_sync.application == "team-a/shop"

    app = {
        "metadata": {"annotations": {}},
        "spec": {"syncPolicy": {"automated": {"selfHeal": True}}},
        "status": {"resources": [MANAGED]},
    }
    read = with_application(d, app, "payments", "c").suspend_auto_sync
    assert read is not None
    assert (read.self_heal, read.has_annotations, read.not_managing) == (True, True, None)
    manual = with_application(
        d, {"metadata": {}, "spec": {"syncPolicy": {}}, "status": {"resources": [MANAGED]}}, "payments", "c"
    ).suspend_auto_sync
    assert manual is not None
    assert (manual.self_heal, manual.has_annotations) == (False, False)
    gone = with_application(d, None, "payments", "c").suspend_auto_sync
    assert gone is not None
    assert gone.self_heal is None


MANAGED = {"group": "apps", "kind": "Deployment", "namespace": "payments", "name": "c", "version": "v1"}


@pytest.mark.parametrize(
    "resources",
    [
        [],  # manages nothing (yet), or someone else's Application named by a forged annotation
        [{**MANAGED, "namespace": "other"}],  # the same name in another namespace
        [{**MANAGED, "name": "c2"}],
        [{**MANAGED, "kind": "StatefulSet"}],
        [{**MANAGED, "group": "example.com"}],
        "not a list",
    ],
)
def test_an_application_that_does_not_list_the_target_is_never_suspended(resources: object) -> None:
    asking = policy(
        actions=[rule("Rollback")],
        gitops={"requireApprovalForManaged": False, "suspendAutoSync": True, "argoCDNamespace": "argocd"},
    )
    # The tenant wrote a tracking annotation naming a platform Application in Argo CD's namespace.
    tracking = {"argocd.argoproj.io/tracking-id": "platform:apps/Deployment:payments/c"}
    forged = TargetFacts(annotations=tracking)
    d = evaluate(request(), [asking], [], forged, NOW)
    app = {
        "metadata": {"name": "platform", "namespace": "argocd", "annotations": {}},
        "spec": {"syncPolicy": {"automated": {"selfHeal": True}}},
        "status": {"resources": resources},
    }
    read = with_application(d, app, "payments", "c").suspend_auto_sync
    assert read is not None
    assert read.not_managing is not None
    assert "Application argocd/platform does not list Deployment payments/c" in read.not_managing
    record = plan_auto_sync(read, {"metadata": {"name": "c", "namespace": "payments"}}, NOW, "payments/m")
    assert record is not None
    assert record.phase is AutoSyncPhase.NOT_SUSPENDED, "nothing of the Application is touched"
    assert read.not_managing in record.reason
