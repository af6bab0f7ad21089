"""Deploy rules: a revision that appeared just before the errors, whose pods fail or err more than
the older revision's pods."""

from __future__ import annotations

from stanch.core.investigation.analysis.context import FAILING_REASONS, RuleContext, clearly_above, pct
from stanch.core.investigation.analysis.correlation import describe_offset
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.models import (
    Hypothesis,
    HypothesisCategory,
    PodGroup,
    RolloutRevision,
    SuggestedMitigation,
    TimelineKind,
)

MIN_LOG_COUNT = 5
"""Log lines of one signature before "only the new pods log it" counts as evidence."""


def rollback_from(ctx: RuleContext, rev: RolloutRevision) -> SuggestedMitigation | None:
    """Roll back to the revision before ``rev``: the last one known to run before the suspect."""
    previous = ctx.previous_revision(rev.revision)
    if previous is None:
        return None
    images = f" ({', '.join(previous.images)})" if previous.images else ""
    return ctx.suggest(
        f"roll back {ctx.spec.target.name} to revision {previous.revision}{images}",
        rollback={"toRevision": previous.revision},
    )


def _no_rollback_line(ctx: RuleContext, rev: RolloutRevision) -> str:
    if ctx.previous_revision(rev.revision) is None:
        return f"no revision older than {rev.revision} is retained, so there is nothing to roll back to"
    return ""


def _describe(rev: RolloutRevision) -> str:
    detail = "; ".join(rev.changes) or rev.change_cause or ""
    return f"revision {rev.revision}" + (f" ({detail})" if detail else "")


def recent_deploy(ctx: RuleContext) -> Hypothesis | None:
    """Errors started shortly after a revision was rolled out: the closer, the stronger."""
    deploys = ctx.causal_changes(TimelineKind.DEPLOY)
    if not deploys:
        late = [c for c in ctx.correlated if c.change.kind is TimelineKind.DEPLOY and c.offset.days < 0]
        if not late or late[0].change.revision is None:
            return None
        late_rev = late[0].change.revision
        return hypothesis(
            HypothesisCategory.RECENT_DEPLOY,
            f"{_describe(late_rev)} is unlikely to be the cause: it came after the errors began",
            5,
            contradicting=[late[0].sentence()],
        )
    chosen = max(deploys, key=lambda c: (c.proximity, c.change.time))
    rev = chosen.change.revision
    assert rev is not None
    confidence = 30 + 30 * chosen.proximity
    supporting = [chosen.sentence()]
    contradicting = []
    key = str(rev.revision)
    if ctx.revisions.indistinguishable(key):
        confidence -= 40
        value = ctx.revisions.values[key].current
        contradicting.append(
            f"pods of revision {rev.revision} error at {pct(value)}, no worse than the other revisions "
            f"(best {pct(ctx.revisions.best)}): the new revision is not what fails"
        )
    elif key in ctx.revisions.bad:
        supporting.append(f"pods of revision {rev.revision} error more than older pods")
    elif not ctx.revisions.values:
        confidence -= 5
        contradicting.append("no per-revision metrics: cannot tell whether only the new pods fail")
    current = ctx.current_revision
    if current is not None and current.revision != rev.revision:
        confidence -= 10
        contradicting.append(f"revision {rev.revision} is no longer current (revision {current.revision} is)")
    suggestion = rollback_from(ctx, rev)
    contradicting.append(_no_rollback_line(ctx, rev))
    return hypothesis(
        HypothesisCategory.RECENT_DEPLOY,
        f"{_describe(rev)} is the likely cause: the errors began "
        f"{describe_offset(chosen.offset)} after it was deployed",
        confidence,
        supporting,
        contradicting,
        suggestion,
    )


def _worse_than_before(ctx: RuleContext, rev: RolloutRevision) -> tuple[list[str], float]:
    """The rollout completed, so no older pod serves to compare with: compare the new revision's
    error ratio now with the older revisions' while they served and with the overall error ratio
    before the onset. Only for a deploy right before the onset — an old revision erring now says
    nothing about its code."""
    key = str(rev.revision)
    value = ctx.revisions.values.get(key)
    deploy = ctx.deploy_of(rev.revision)
    if value is None or value.current is None or deploy is None or deploy.proximity < 1.0:
        return [], 0.0
    older = {
        k: v
        for k, v in ctx.revisions.retired.items()
        if k.isdigit() and int(k) < rev.revision and v.before is not None
    }
    references = [v.before for v in older.values() if v.before is not None]
    baseline = ctx.revisions.baseline
    if baseline is not None:
        references.append(baseline)
    if not references or not all(clearly_above(value.current, r) for r in references):
        return [], 0.0
    lines = []
    if older:
        old_key, old = min(older.items(), key=lambda kv: kv[1].before or 0.0)
        lines.append(
            f"pods of revision {key} error at {pct(value.current)}; pods of revision {old_key} erred at "
            f"{pct(old.before)} while they served (none is left to compare with now)"
        )
    if baseline is not None:
        lines.append(f"the error ratio was {pct(baseline)} before the onset, with the older revision serving")
    return lines, 80.0 if older else 70.0


def new_revision_worse(ctx: RuleContext) -> Hypothesis | None:
    """Only the new revision's pods are bad (per-revision error ratio, or errors only in its logs
    while older pods still run): the code or config in that revision."""
    rev = ctx.current_revision
    if rev is None or ctx.previous_revision(rev.revision) is None:
        return None
    key = str(rev.revision)
    supporting = []
    confidence = 0.0
    what = "only its pods are affected"
    if key in ctx.revisions.bad:
        others = {k: v for k, v in ctx.revisions.serving.items() if k != key and k not in ctx.revisions.bad}
        if others:
            other_key, other = min(others.items(), key=lambda kv: kv[1].current or 0.0)
            supporting.append(
                f"pods of revision {key} error at {pct(ctx.revisions.values[key].current)} while pods of "
                f"revision {other_key} error at {pct(other.current)}"
            )
            confidence = 80
    elif len(ctx.revisions.serving) < 2:
        lines, confidence = _worse_than_before(ctx, rev)
        supporting += lines
        if lines:
            what = "its pods err far more than the previous revision's did while they served"
    old_pods = sum(g.total for g in ctx.evidence.pod_health.by_revision if g.key != key)
    own_logs = [
        s for s in ctx.evidence.log_signatures if s.revision == rev.revision and s.count >= MIN_LOG_COUNT
    ]
    if own_logs and old_pods > 0:
        supporting.append(
            f"only revision {key}'s pods log '{own_logs[0].signature}' (x{own_logs[0].count}); "
            f"{old_pods} older pod(s) do not"
        )
        confidence = confidence + 10 if confidence else 60
    if not supporting:
        return None
    deploy = ctx.deploy_of(rev.revision)
    contradicting = []
    if deploy is not None and deploy.possible_cause:
        supporting.append(deploy.sentence())
    elif deploy is not None and deploy.offset.days < 0:
        contradicting.append(deploy.sentence())
        confidence -= 20
    return hypothesis(
        HypothesisCategory.RECENT_DEPLOY,
        f"{_describe(rev)} is failing: {what} (its code or configuration)",
        confidence,
        supporting,
        contradicting,
        rollback_from(ctx, rev),
    )


def _failing(group: PodGroup | None) -> list[str]:
    if group is None:
        return []
    return [f"{r.reason}x{r.count}" for r in group.reasons if r.reason in FAILING_REASONS and r.count > 0]


SCHEDULING_WORDS = ("nodeselector", "affinity", "toleration", "topologyspread", "requests")
"""Template changes that decide where (and whether) a pod can be scheduled."""


def _new_revision_unschedulable(ctx: RuleContext, rev: RolloutRevision, group: PodGroup) -> Hypothesis | None:
    """The new revision's pods stay Pending while older pods run, and the revision changed where its
    pods may go (a nodeSelector nobody has, an affinity, a larger request): the deploy, not the
    cluster's capacity."""
    pending = sum(r.count for r in group.reasons if r.reason == "Unschedulable")
    changes = [c for c in rev.changes if any(w in c.lower() for w in SCHEDULING_WORDS)]
    older_running = sum(g.ready for g in ctx.evidence.pod_health.by_revision if g.key != str(rev.revision))
    if not pending or not changes:
        return None
    supporting = [
        f"revision {rev.revision}: {pending} of {group.total} pod(s) cannot be scheduled",
        f"revision {rev.revision} changed where its pods may run: {'; '.join(changes)}",
    ]
    contradicting = []
    confidence = 85.0
    if older_running:
        supporting.append(f"{older_running} pod(s) of older revisions are scheduled and ready")
    else:
        confidence -= 15
        contradicting.append("no older pod is running to show the cluster has room for the old template")
    deploy = ctx.deploy_of(rev.revision)
    if deploy is not None:
        (supporting if deploy.possible_cause else contradicting).append(deploy.sentence())
    contradicting.append(_no_rollback_line(ctx, rev))
    return hypothesis(
        HypothesisCategory.RECENT_DEPLOY,
        f"{_describe(rev)} cannot be scheduled: no node satisfies its new placement constraints",
        confidence,
        supporting,
        contradicting,
        rollback_from(ctx, rev),
    )


def new_revision_failing(ctx: RuleContext) -> Hypothesis | None:
    """The new revision's pods crash-loop or cannot pull their image while older pods run."""
    rev = ctx.current_revision
    if rev is None:
        return None
    group = ctx.pod_group(rev.revision)
    failing = _failing(group)
    if group is not None and not failing:
        return _new_revision_unschedulable(ctx, rev, group)
    if group is None or not failing:
        return None
    image_problem = any(
        r.reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName") for r in group.reasons
    )
    confidence = 90 if image_problem else 85
    supporting = [
        f"revision {rev.revision}: {group.ready}/{group.total} pods ready, {group.restarts} restarts, "
        + ", ".join(failing)
    ]
    contradicting = []
    older_failing = [
        g.key for g in ctx.evidence.pod_health.by_revision if g.key != str(rev.revision) and _failing(g)
    ]
    if older_failing:
        confidence -= 35
        contradicting.append(
            f"pods of older revision(s) {', '.join(older_failing)} fail too: "
            "the cause may be outside this revision"
        )
    deploy = ctx.deploy_of(rev.revision)
    if deploy is not None:
        (supporting if deploy.possible_cause else contradicting).append(deploy.sentence())
    contradicting.append(_no_rollback_line(ctx, rev))
    what = "cannot pull its image" if image_problem else "crash-loops"
    return hypothesis(
        HypothesisCategory.RECENT_DEPLOY,
        f"{_describe(rev)} {what}: its pods fail to run",
        confidence,
        supporting,
        contradicting,
        rollback_from(ctx, rev),
    )
