"""Dependency rule: the pods fail to reach something they depend on.

The evidence names the failing host resolved to the namespace's Service and the Deployment or
StatefulSet behind it (``Evidence.dependencies``, from every sampled error line), or says it is
external. The hypothesis is strong when the failures begin at the onset, every revision of the
target fails alike, and the dependency itself shows trouble (no ready endpoints, a change of its
own at the onset). Rolling the target back cannot help; the only automatic mitigation is the
dependency's own rollback when it changed at the onset and is a Deployment of the same namespace
(the policy still decides). Otherwise the hypothesis says "no automatic mitigation" and why.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.correlation import describe_offset
from stanch.core.investigation.analysis.rules.logs import only_revision, share_of
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.dependencies import candidate_hosts, failure_kinds
from stanch.core.models import (
    DependencyEvidence,
    Hypothesis,
    HypothesisCategory,
    LogSignature,
    SuggestedMitigation,
    TargetRef,
    TimelineKind,
)

FEW_LINES = 10
"""Fewer matching log lines than this are thin evidence of a failing dependency."""
AT_ONSET_BEFORE = timedelta(minutes=2)
AT_ONSET_AFTER = timedelta(minutes=5)
"""First seen this close to the onset counts as beginning with it (log and metric clocks differ,
and a ``rate()`` window delays the metric)."""
CHANGED_BEFORE = timedelta(minutes=15)
"""A change of the dependency this long before the onset (or up to a minute after) lines up with it."""
CHANGED_AFTER = timedelta(minutes=1)


def matching_signatures(ctx: RuleContext) -> list[LogSignature]:
    return [s for s in ctx.evidence.log_signatures if failure_kinds(f"{s.signature} {s.sample}")]


def _name_from_signatures(matching: list[LogSignature]) -> tuple[str | None, int]:
    names = Counter[str]()
    for s in matching:
        hosts = candidate_hosts(s.sample) or candidate_hosts(s.signature)
        if hosts:
            names[hosts[0]] += s.count
    if not names:
        return None, 0
    return names.most_common(1)[0][0], len(names)


def subject(dep: DependencyEvidence) -> str:
    """``Service payments (Deployment payments)``, else the host as logged."""
    if dep.service is not None:
        behind = f" ({dep.workload.kind} {dep.workload.name})" if dep.workload is not None else ""
        return f"Service {dep.service.name}{behind}"
    return f"{'external host' if dep.external else 'host'} {dep.host}"


def _health(dep: DependencyEvidence) -> tuple[list[str], list[str], float]:
    """The dependency's own state: lines for and against it failing, and a confidence step."""
    supporting: list[str] = []
    contradicting: list[str] = []
    step = 0.0
    if dep.service is not None and dep.endpoints_total is not None:
        ready, total = dep.endpoints_ready or 0, dep.endpoints_total
        if ready == 0:
            step += 10
            supporting.append(f"Service {dep.service.name} has no ready endpoint ({ready}/{total})")
        elif ready < total:
            step += 5
            supporting.append(f"Service {dep.service.name}: {ready}/{total} endpoints ready")
        else:
            contradicting.append(f"Service {dep.service.name} has all {total} endpoints ready")
    elif dep.service is not None:
        step += 5
        supporting.append(f"Service {dep.service.name} has no endpoints at all")
    if dep.workload is not None and dep.replicas is not None:
        ready = dep.ready_replicas or 0
        if dep.replicas == 0:
            step += 10
            supporting.append(f"{dep.workload.kind} {dep.workload.name} is scaled to 0")
        elif ready < dep.replicas:
            step += 5
            supporting.append(
                f"{dep.workload.kind} {dep.workload.name}: {ready}/{dep.replicas} replicas ready"
            )
    if dep.service is None and not dep.external and "no Service named" in dep.resolution:
        step += 5
        supporting.append(dep.resolution)
    return supporting, contradicting, step


def _changed_at_onset(ctx: RuleContext, dep: DependencyEvidence) -> str | None:
    if dep.workload is None or dep.changed_at is None:
        return None
    offset = ctx.onset.time - dep.changed_at
    if -CHANGED_AFTER <= offset <= CHANGED_BEFORE:
        when = f"{describe_offset(offset)} {'before' if offset.total_seconds() >= 0 else 'after'} the onset"
        return f"{dep.workload.kind} {dep.workload.name} changed {when}: {dep.change}"
    return None


def _mitigation(
    ctx: RuleContext, dep: DependencyEvidence | None, changed: str | None
) -> tuple[SuggestedMitigation | None, str]:
    """The dependency's own rollback where it fits, else None and why not."""
    if dep is None:
        return None, "the failing dependency is not named in the logs"
    if dep.external:
        return None, "the dependency is outside the cluster; its owner has to act"
    if dep.service is None:
        if "another namespace" in dep.resolution:
            return None, f"{dep.resolution}; Stanch acts only in the Incident's namespace"
        return None, "the host is no Service of this namespace"
    if dep.workload is None:
        return None, f"no Deployment or StatefulSet of this namespace is behind Service {dep.service.name}"
    if changed is None:
        return (
            None,
            f"{dep.workload.kind} {dep.workload.name} did not change at the onset; its owner has to act",
        )
    if dep.workload.kind != "Deployment" or dep.previous_revision is None:
        return (
            None,
            f"{dep.workload.kind} {dep.workload.name} changed but has no revision to roll back to",
        )
    if dep.workload.name == ctx.spec.target.name:
        return None, "the failing dependency is the target itself"
    namespace = ctx.spec.target.namespace
    suggestion = SuggestedMitigation.model_validate(
        {
            "target": TargetRef(name=dep.workload.name, namespace=namespace),
            "summary": f"roll back the dependency, Deployment {dep.workload.name}, to revision "
            f"{dep.previous_revision} (it changed at the onset)",
            "rollback": {"toRevision": dep.previous_revision},
        }
    )
    return suggestion, ""


def dependency_failure(ctx: RuleContext) -> Hypothesis | None:
    """Callers failing on one dependency. No rollback of the target is suggested: it would not help."""
    matching = matching_signatures(ctx)
    deps = list(ctx.evidence.dependencies)
    if not matching and not deps:
        return None
    dep = deps[0] if deps else None
    lines = max(sum(s.count for s in matching), dep.count if dep is not None else 0)
    # A dependency metric erring now is more than a handful of lines.
    measured = dep is not None and bool(dep.errors_per_second)
    share = share_of(matching, ctx) if matching else 1.0 if dep is not None else 0.0
    confidence = 45 + 25 * share
    supporting: list[str] = []
    contradicting: list[str] = []
    if dep is not None:
        name = subject(dep)
        first = f"; first line: {dep.sample}" if dep.sample else ""
        if dep.count:
            supporting.append(
                f"{dep.count} log line(s) from {dep.pods} pod(s) fail to reach {dep.host} "
                f"({', '.join(dep.failures)}){first}"
            )
        if dep.errors_per_second:
            since = f" since {dep.errors_since.isoformat()}" if dep.errors_since is not None else ""
            supporting.append(f"dependency_errors: {dep.errors_per_second:.3g}/s from {dep.host} now{since}")
        if dep.resolution:
            supporting.append(dep.resolution)
        if dep.service is not None:
            confidence += 5
        seen = [t for t in (dep.first_seen, dep.errors_since) if t is not None]
        first_seen = min(seen) if seen else None
        others = [d for d in deps[1:] if d.count * 4 >= dep.count]
        if others:
            contradicting.append(
                "errors name several dependencies: " + ", ".join(subject(d) for d in [dep, *others][:3])
            )
    else:
        host, distinct = _name_from_signatures(matching)
        name = f"dependency {host}" if host else "a dependency"
        top = max(matching, key=lambda s: s.count)
        supporting.append(f"'{top.signature}' x{top.count} from {top.pods} pod(s)")
        first_seen = top.first_seen
        if distinct > 1:
            contradicting.append(f"errors name {distinct} different hosts")
    if first_seen is not None:
        gap = first_seen - ctx.onset.time
        if -AT_ONSET_BEFORE <= gap <= AT_ONSET_AFTER:
            # A handful of lines that happen to start at the onset prove little.
            confidence += 10 if lines >= FEW_LINES or measured else 0
            supporting.append("these errors first appear at the onset")
    only = only_revision(ctx, matching) if matching else None
    if only is not None:
        confidence -= 25
        contradicting.append(
            f"only revision {only}'s pods report it: more likely that revision's code or config"
        )
    elif len(ctx.revisions.serving) >= 2 and not ctx.revisions.bad:
        confidence += 10
        supporting.append("every revision of the target fails alike: not one revision's code")
    health_for: list[str] = []
    health_against: list[str] = []
    changed = None
    if dep is not None:
        health_for, health_against, step = _health(dep)
        confidence += step
        supporting.extend(health_for)
        contradicting.extend(health_against)
        changed = _changed_at_onset(ctx, dep)
        if changed is not None:
            confidence += 5
            supporting.append(changed)
        elif dep.workload is not None and dep.changed_at is not None:
            offset = ctx.onset.time - dep.changed_at
            when = "before" if offset.total_seconds() >= 0 else "after"
            supporting.append(
                f"{dep.workload.kind} {dep.workload.name} last changed {describe_offset(offset)} {when} "
                f"the onset ({dep.change}): not at the onset"
            )
    deploys = ctx.causal_changes(TimelineKind.DEPLOY)
    if health_against and not health_for and changed is None and deploys and only is None:
        # The dependency looks fine and the target was just deployed: its new config may point at
        # the wrong place, or its new code may call it wrongly.
        confidence -= 20
        contradicting.append(
            f"the dependency looks healthy and {deploys[0].change.label} of {ctx.spec.target.name} "
            "came just before: it may call the dependency wrongly"
        )
    if lines < FEW_LINES and not measured:
        confidence -= 30
        contradicting.append(f"only {lines} log line(s) mention it")
    if matching and share < 0.3:
        contradicting.append(f"only {share * 100:.0f}% of the logged errors are about dependencies")
    suggestion, why_not = _mitigation(ctx, dep, changed)
    tail = "roll the dependency back" if suggestion is not None else f"no automatic mitigation: {why_not}"
    return hypothesis(
        HypothesisCategory.DEPENDENCY,
        f"{name} is failing; rolling back {ctx.spec.target.name} would not help — {tail}",
        confidence,
        supporting,
        contradicting,
        suggestion,
    )
