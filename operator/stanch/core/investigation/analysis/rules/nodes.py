"""Node rule: the errors, the slowness or the failing pods are on one node while the same pods
elsewhere are fine."""

from __future__ import annotations

from stanch.core.investigation.analysis.context import FAILING_REASONS, RuleContext, pct
from stanch.core.investigation.analysis.onset import floor_for
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.analysis.rules.outliers import THRESHOLDS, standing_out
from stanch.core.investigation.analysis.series import CPU, ERROR_RATIO, LATENCY, MEMORY, by_scope
from stanch.core.investigation.gathering import UNSCHEDULED
from stanch.core.models import Hypothesis, HypothesisCategory, PodGroup


def _unhealthy(group: PodGroup) -> bool:
    return group.ready < group.total or any(r.reason in FAILING_REASONS for r in group.reasons)


def _resource_outlier_on(ctx: RuleContext, node: str) -> str | None:
    """A pod on ``node`` that stands out from its siblings on CPU or memory against its limit."""
    for spread in ctx.evidence.pod_spreads:
        if spread.signal not in (CPU, MEMORY):
            continue
        for pod in standing_out(spread, THRESHOLDS[spread.signal]):
            if pod.node == node:
                return pod.pod
    return None


def node_problem(ctx: RuleContext) -> Hypothesis | None:
    """One node stands out — by its pods' error ratio, their readiness, or its own conditions."""
    supporting: list[str] = []
    contradicting: list[str] = []
    confidence = 0.0
    suspect: str | None = None
    per_node = {
        k: v.current for k, v in by_scope(ctx.evidence, ERROR_RATIO, "node").items() if v.current is not None
    }
    if len(per_node) >= 2:
        ordered = sorted(per_node.items(), key=lambda kv: kv[1])
        best = ordered[0][1]
        margin = floor_for(ERROR_RATIO).of(best)
        bad = [k for k, v in per_node.items() if v - best >= margin]
        if len(bad) == 1:
            suspect = bad[0]
            confidence = 75
            supporting.append(
                f"pods on node {suspect} error at {pct(per_node[suspect])}; on other nodes at most "
                f"{pct(max(v for k, v in per_node.items() if k != suspect))}"
            )
    if suspect is None:
        # The same pods on one node answering far slower than on the others, at the same time.
        slow = ctx.by_node.signals.get(LATENCY)
        worse = sorted(slow.worse) if slow is not None else []
        if slow is not None and len(worse) == 1 and len(slow.serving) >= 2:
            suspect = worse[0]
            confidence = 70
            supporting.append(slow.line(suspect))
    by_metrics = suspect is not None
    # Pending pods are grouped under a placeholder, not a node: nothing to evacuate there.
    groups = [g for g in ctx.evidence.pod_health.by_node if g.key != UNSCHEDULED]
    unhealthy = [g for g in groups if g.total and _unhealthy(g)]
    if len(groups) >= 2 and len(unhealthy) == 1 and (suspect is None or unhealthy[0].key == suspect):
        group = unhealthy[0]
        suspect = group.key
        confidence = confidence + 10 if confidence else 60
        supporting.append(
            f"node {suspect}: {group.ready}/{group.total} of its pods ready; pods elsewhere are"
        )
    bad_nodes = [n for n in ctx.evidence.nodes if n.pods and (n.ready is False or n.problems)]
    node = next((n for n in bad_nodes if n.name == suspect), None) or (
        bad_nodes[0] if len(bad_nodes) == 1 and suspect is None else None
    )
    if node is not None:
        suspect = node.name
        problems = (["NotReady"] if node.ready is False else []) + list(node.problems)
        supporting.append(f"node {node.name}: {', '.join(problems)}")
        confidence = confidence + 10 if confidence else 50
    if suspect is None:
        return None
    node_fine = node is None and any(n.name == suspect and n.ready is True for n in ctx.evidence.nodes)
    failing = [g for g in ctx.evidence.pod_health.by_revision if g.total and _unhealthy(g)]
    if node_fine and not by_metrics and len(failing) == 1 and len(ctx.evidence.pod_health.by_revision) >= 2:
        # The not-ready pods are the ones of a revision that fails wherever it runs (a crash-looping
        # or unpullable rollout lands on whichever node the scheduler picked).
        confidence -= 30
        contradicting.append(
            f"node {suspect} is Ready with no pressure; the unhealthy pods belong to revision "
            f"{failing[0].key}, whose pods fail whatever node they run on"
        )
    hot = _resource_outlier_on(ctx, suspect)
    if node is None and hot is not None:
        # One pod pinned at its own CPU or memory limit is slow and errs on any node; the node's
        # numbers are that pod's, and the node reports nothing wrong.
        confidence -= 20
        contradicting.append(
            f"pod {hot} on node {suspect} stands out from its siblings on its own resource limit: "
            "a pod problem (restart it), not the node's"
        )
    hosting = [n for n in ctx.evidence.nodes if n.pods] or groups
    if len(hosting) < 2:
        confidence -= 15
        contradicting.append("all pods run on this one node: nothing to compare it with")
    return hypothesis(
        HypothesisCategory.NODE_INFRASTRUCTURE,
        f"node {suspect} is unhealthy: the failures are concentrated on it",
        confidence,
        supporting,
        contradicting,
        ctx.suggest(f"move {ctx.spec.target.name}'s pods off node {suspect}", evacuate={"node": suspect}),
    )
