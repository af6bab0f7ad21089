"""A policy asks for the GitOps controller's self-heal to be suspended (``gitops.suspendAutoSync``):
only a valid policy, only for a GitOps-managed target, only for a request it lets through."""

from __future__ import annotations

from stanch.core.models import AutoSyncRequest, PolicyDecisionKind
from stanch.core.policy import TargetFacts, evaluate

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
