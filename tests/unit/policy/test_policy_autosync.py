"""A policy asks for the GitOps controller's self-heal to be suspended (``gitops.suspendAutoSync``):
only a valid policy, only for a GitOps-managed target, only for a request it lets through."""

from __future__ import annotations

from stanch.core.models import AutoSyncRequest, PolicyDecisionKind
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

    app = {"metadata": {"annotations": {}}, "spec": {"syncPolicy": {"automated": {"selfHeal": True}}}}
    read = with_application(d, app).suspend_auto_sync
    assert read is not None
    assert (read.self_heal, read.has_annotations) == (True, True)
    manual = with_application(d, {"metadata": {}, "spec": {"syncPolicy": {}}}).suspend_auto_sync
    assert manual is not None
    assert (manual.self_heal, manual.has_annotations) == (False, False)
    gone = with_application(d, None).suspend_auto_sync
    assert gone is not None
    assert gone.self_heal is None
