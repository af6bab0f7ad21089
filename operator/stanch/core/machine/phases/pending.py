"""Pending (ask the policy) and AwaitingApproval (wait for a human).

The decision is also when the guard is frozen: the wiring resolves ``state.guard`` under the
deciding policy's ``guardDefaults`` before it feeds ``PolicyDecided``, and every transition out of
Pending writes it to ``status.guard``, which every later pass runs under. A policy edited mid-bake
(a longer interval, a looser tolerance, ``noData: Hold`` instead of ``Revert``) would otherwise
change how a change already made is watched, without anyone having decided that for it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from stanch.core.effects import EvaluatePolicy, Finish
from stanch.core.identity import approval_refusal
from stanch.core.machine.observations import Approved, LegacyApprovalSeen, Observation, PolicyDecided
from stanch.core.machine.phases.stopped import on_guard_problem
from stanch.core.machine.reading import observe
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, announce_once, quiet, transition
from stanch.core.models import ApprovalRecord, PolicyDecisionKind


def on_pending(state: MachineState, obs: Observation, now: datetime) -> Transition:
    if not isinstance(obs, PolicyDecided):
        return quiet(state, EvaluatePolicy()) if state.status.policy is None else quiet(state)
    decision = obs.decision
    reasons = "; ".join(decision.reasons) or decision.decision.value
    source = f"{decision.policy or 'no policy (default deny)'}{f' {decision.rule}' if decision.rule else ''}"
    actor = f"policy:{decision.policy}#{decision.rule}" if decision.policy else "stanch"
    if state.guard_problem is not None and decision.decision != PolicyDecisionKind.DENY:
        # Nothing could ever be checked under this guard: end here, visibly, with the decision on
        # record, rather than ask a human to approve (or take a lock for) a Mitigation that cannot run.
        decided = replace(state, status=state.status.model_copy(update={"policy": decision}))
        return on_guard_problem(decided, now)
    # The guard every later pass runs under (the wiring reads it back from status.guard), and the
    # requester the admission policy checked, for status.
    frozen: dict[str, Any] = {"policy": decision, "guard": state.guard, "requester": state.spec.requester}
    if state.spec.dry_run:
        return transition(
            state,
            now=now,
            to=P.BASELINE,
            event="DryRun",
            actor=actor,
            reason=(
                f"dry run (always allowed); policy would say {decision.decision.value} by {source}: {reasons}"
            ),
            effects=(observe(state),),
            **frozen,
        )
    if decision.decision == PolicyDecisionKind.DENY:
        return transition(
            state,
            now=now,
            to=P.REJECTED,
            event="PolicyDenied",
            actor=actor,
            reason=f"denied by {source}: {reasons}",
            effects=(Finish(P.REJECTED.value),),
            policy=decision,  # nothing will run: no guard to freeze (it may be the stand-in)
            requester=state.spec.requester,
        )
    # Nothing in the Mitigation itself approves it (design invariant 12): approval comes only from a
    # MitigationApproval, judged in AwaitingApproval.
    if decision.decision == PolicyDecisionKind.REQUIRE_APPROVAL:
        return transition(
            state,
            now=now,
            to=P.AWAITING_APPROVAL,
            event="ApprovalRequired",
            actor=actor,
            reason=(
                f"manual approval required by {source}: {reasons}; to approve, an approver creates a"
                f" MitigationApproval with mitigationRef {{name: {state.identity.name}, uid:"
                f" {state.identity.uid}}}"
            ),
            **frozen,
        )
    return transition(
        state,
        now=now,
        to=P.BASELINE,
        event="PolicyAllowed",
        actor=actor,
        reason=f"allowed by {source}: {reasons}",
        effects=(observe(state),),
        **frozen,
    )


def on_awaiting_approval(state: MachineState, obs: Observation, now: datetime) -> Transition:
    if isinstance(obs, LegacyApprovalSeen) and state.legacy_approval:
        reason = (
            f"{state.legacy_approval} approves nothing: anyone who can edit the Mitigation could set"
            " it; an approver creates a MitigationApproval naming this Mitigation (docs/policy-guide.md,"
            " Approval)"
        )
        seen = any(a.event == "ApprovalIgnored" for a in state.status.audit)
        return announce_once(
            state, now=now, event="ApprovalIgnored", reason=reason, effects=(), repeated=seen
        )
    if not isinstance(obs, Approved):
        return quiet(state)
    offered = obs.approval
    decision = state.status.policy
    refusal = approval_refusal(
        state.spec.requester, offered, decision.approval if decision else None, obs.admission
    )
    if refusal is not None:
        # Each refusal is audited and announced once; it is looked at again every pass (the admission
        # policy may be restored), silently while the answer stays the same.
        seen = any(a.event == "ApprovalRefused" and a.reason == refusal for a in state.status.audit)
        return announce_once(
            state, now=now, event="ApprovalRefused", reason=refusal, effects=(), repeated=seen
        )
    approver = offered.approver
    groups = f" (groups {', '.join(approver.groups)})" if approver.groups else ""
    return transition(
        state,
        now=now,
        to=P.BASELINE,
        event="Approved",
        actor=approver.username,
        reason=(
            f"approved by {approver.username}{groups} with MitigationApproval {offered.name}:"
            f" {offered.reason or 'no reason given'}"
        ),
        effects=(observe(state),),
        approval=ApprovalRecord(
            approver=approver, approval=offered.name, reason=offered.reason, approved_at=now
        ),
    )
