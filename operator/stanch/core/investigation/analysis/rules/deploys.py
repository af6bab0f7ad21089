"""Deploy rules: a revision that appeared just before the symptom, whose pods fail, err or answer
slower than the older revision's pods at the same time."""

from __future__ import annotations

from datetime import timedelta

from stanch.core.investigation.analysis.comparison import NAMES, SIGNALS, clearly_worse, fmt
from stanch.core.investigation.analysis.context import FAILING_REASONS, RuleContext
from stanch.core.investigation.analysis.correlation import describe_offset
from stanch.core.investigation.analysis.onset import floor_for
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.analysis.scope import signal_impact
from stanch.core.investigation.analysis.series import ERROR_RATIO, LATENCY, median, points_of
from stanch.core.models import (
    Hypothesis,
    HypothesisCategory,
    PodGroup,
    RolloutRevision,
    SliState,
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


HEALTHY_SERVICE = timedelta(seconds=30)
"""A rollout that completed this long before the onset, the signal at its baseline meanwhile (at
least :data:`HEALTHY_SAMPLES` samples), served healthily: the symptom began later, on its own
account. A bad revision's change point starts with its first pods, before the rollout completes."""
HEALTHY_SAMPLES = 3


def _anomalous_signals(ctx: RuleContext) -> list[str]:
    """The metric SLIs that show the symptom: what a revision must be compared on to be cleared."""
    return [s for s in SIGNALS if ctx.symptom.state_of(s) is SliState.ANOMALOUS]


def served_healthily(ctx: RuleContext, rev: RolloutRevision) -> str | None:
    """The sentence saying ``rev``'s rollout completed and then served at the baseline before the
    onset, or None when that is not known to be so."""
    done = rev.completed_at
    if done is None or not rev.current:
        return None
    served = ctx.onset.time - done
    if served < HEALTHY_SERVICE:
        return None
    levels = []
    for signal in (ERROR_RATIO, LATENCY):
        points = points_of(ctx.evidence, signal)
        before = [p.value for p in points if p.time < ctx.onset.time]
        between = [p.value for p in points if done <= p.time < ctx.onset.time]
        if len(between) < HEALTHY_SAMPLES or not before:
            continue
        baseline = median(before)
        if max(between) - baseline >= floor_for(signal).of(baseline):
            return None  # it was not at the baseline all along
        levels.append(f"{NAMES[signal]} {fmt(signal, median(between))}")
    if not levels:
        return None
    return (
        f"revision {rev.revision}'s rollout completed at {done.isoformat()}, {describe_offset(served)} "
        f"before the onset, and served at the baseline meanwhile ({', '.join(levels)}): the symptom began "
        "later"
    )


def recent_deploy(ctx: RuleContext) -> Hypothesis | None:
    """A revision rolled out shortly before the symptom: the closer, the stronger; stronger still
    when its pods are worse than the other revision's at the same time, weaker when they are no
    worse, or when it completed and served healthily before the onset."""
    deploys = ctx.causal_changes(TimelineKind.DEPLOY)
    if not deploys:
        late = [c for c in ctx.correlated if c.change.kind is TimelineKind.DEPLOY and c.offset.days < 0]
        if not late or late[0].change.revision is None:
            return None
        late_rev = late[0].change.revision
        return hypothesis(
            HypothesisCategory.RECENT_DEPLOY,
            f"{_describe(late_rev)} is unlikely to be the cause: it came after the "
            f"{ctx.symptom.noun()} began",
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
    worse = ctx.by_revision.worse(key)
    alike = ctx.by_revision.no_worse(key, _anomalous_signals(ctx) or None)
    if worse:
        supporting += worse
    elif alike:
        confidence -= 40
        contradicting += alike
        contradicting.append(
            f"pods of revision {rev.revision} do no worse than the other revisions at the same time: "
            "the new revision is not what fails"
        )
    elif not ctx.by_revision.signals:
        confidence -= 5
        contradicting.append("no per-revision metrics: cannot tell whether only the new pods fail")
    healthy = served_healthily(ctx, rev) if not worse else None
    if healthy is not None:
        confidence -= 35
        contradicting.append(healthy)
    current = ctx.current_revision
    if current is not None and current.revision != rev.revision:
        confidence -= 10
        contradicting.append(f"revision {rev.revision} is no longer current (revision {current.revision} is)")
    cleared = healthy is not None or (bool(alike) and not worse)
    # Evidence that clears the revision leaves nothing a rollback would fix.
    suggestion = None if cleared else rollback_from(ctx, rev)
    if not cleared:
        contradicting.append(_no_rollback_line(ctx, rev))
    noun = ctx.symptom.noun() if ctx.symptom.anomalous else chosen.symptom
    if noun not in ("error spike", "latency rise") and not ctx.symptom.anomalous:
        noun = "reported problem"
    verdict = "is unlikely to be the cause" if cleared else "is the likely cause"
    return hypothesis(
        HypothesisCategory.RECENT_DEPLOY,
        f"{_describe(rev)} {verdict}: the {noun} began {describe_offset(chosen.offset)} after it was "
        "deployed",
        confidence,
        supporting,
        contradicting,
        suggestion,
    )


def _worse_than_before(ctx: RuleContext, rev: RolloutRevision) -> tuple[list[str], float]:
    """The rollout completed, so no older pod serves to compare with at the same time: compare the
    new revision now with the older revisions while they served and with the whole before the onset,
    on errors and latency. A before/after comparison, so only for a deploy right before the onset
    that did not serve healthily first — an old revision doing badly now says nothing about its code,
    and anything else that changed meanwhile would be read as the revision."""
    key = str(rev.revision)
    deploy = ctx.deploy_of(rev.revision)
    if deploy is None or deploy.proximity < 1.0 or served_healthily(ctx, rev) is not None:
        return [], 0.0
    for signal in (ERROR_RATIO, LATENCY):
        compared = ctx.by_revision.signals.get(signal)
        value = compared.values.get(key) if compared is not None else None
        if compared is None or value is None or value.current is None:
            continue
        older = {
            k: v
            for k, v in compared.values.items()
            if k.isdigit() and int(k) < rev.revision and v.current is None and v.before is not None
        }
        references = [v.before for v in older.values() if v.before is not None]
        baseline = signal_impact(ctx.evidence, signal, ctx.onset.time).before
        if baseline is not None:
            references.append(baseline)
        if not references or not all(clearly_worse(signal, value.current, r) for r in references):
            continue
        name = NAMES[signal]
        lines = []
        if older:
            old_key, old = min(older.items(), key=lambda kv: kv[1].before or 0.0)
            lines.append(
                f"pods of revision {key}: {name} {fmt(signal, value.current)}; pods of revision {old_key}: "
                f"{fmt(signal, old.before)} while they served (none is left to compare with now)"
            )
        if baseline is not None:
            lines.append(
                f"the {name} was {fmt(signal, baseline)} before the onset, with the older revision serving"
            )
        return lines, 80.0 if older else 70.0
    return [], 0.0


def new_revision_worse(ctx: RuleContext) -> Hypothesis | None:
    """Only the new revision's pods are bad — on any SLI against the older revision's pods at the
    same time, or by errors only in its logs while older pods still run: the code or config in that
    revision. With the rollout complete, a before/after comparison right at the onset stands in."""
    rev = ctx.current_revision
    if rev is None or ctx.previous_revision(rev.revision) is None:
        return None
    key = str(rev.revision)
    supporting = []
    confidence = 0.0
    what = "only its pods are affected"
    worse = ctx.by_revision.worse(key)
    others_serving = ctx.by_revision.serving() - {key}
    if worse and others_serving:
        supporting += worse
        confidence = 80
        if ctx.by_revision.worse_groups() & others_serving:
            confidence -= 20  # another revision is worse on some SLI too
    elif not others_serving:
        lines, confidence = _worse_than_before(ctx, rev)
        supporting += lines
        if lines:
            what = "its pods do far worse than the previous revision's did while they served"
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
