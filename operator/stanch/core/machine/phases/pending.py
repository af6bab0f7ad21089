"""Pending (ask the policy) and AwaitingApproval (wait for a human)."""

from __future__ import annotations

from datetime import datetime

from stanch.core.effects import EvaluatePolicy, Finish
from stanch.core.machine.observations import Approved, Observation, PolicyDecided
from stanch.core.machine.reading import observe
from stanch.core.machine.state import MachineState, Transition
from stanch.core.machine.transitions import P, quiet, transition
from stanch.core.models import PolicyDecisionKind


def _approved(state: MachineState) -> str | None:
    approval = state.spec.approval
    if approval is not None and approval.approved:
        return approval.approved_by or "spec.approval"
    return state.approved_by_annotation


def on_pending(state: MachineState, obs: Observation, now: datetime) -> Transition:
    if not isinstance(obs, PolicyDecided):
        return quiet(state, EvaluatePolicy()) if state.status.policy is None else quiet(state)
    decision = obs.decision
    reasons = "; ".join(decision.reasons) or decision.decision.value
    source = f"{decision.policy or 'no policy (default deny)'}{f' {decision.rule}' if decision.rule else ''}"
    actor = f"policy:{decision.policy}#{decision.rule}" if decision.policy else "stanch"
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
            policy=decision,
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
            policy=decision,
        )
    if decision.decision == PolicyDecisionKind.REQUIRE_APPROVAL and _approved(state) is None:
        return transition(
            state,
            now=now,
            to=P.AWAITING_APPROVAL,
            event="ApprovalRequired",
            actor=actor,
            reason=f"manual approval required by {source}: {reasons}",
            policy=decision,
        )
    return transition(
        state,
        now=now,
        to=P.BASELINE,
        event="PolicyAllowed",
        actor=actor,
        reason=f"allowed by {source}: {reasons}",
        effects=(observe(state),),
        policy=decision,
    )


def on_awaiting_approval(state: MachineState, obs: Observation, now: datetime) -> Transition:
    by = obs.by if isinstance(obs, Approved) else _approved(state)
    if by is None:
        return quiet(state)
    reason = obs.reason if isinstance(obs, Approved) and obs.reason else "approved"
    return transition(
        state,
        now=now,
        to=P.BASELINE,
        event="Approved",
        actor=by,
        reason=f"approved by {by}: {reason}",
        effects=(observe(state),),
    )
