"""Automatic mitigation: turn an Incident's top hypothesis into a Mitigation when a policy says so.

Only the top hypothesis is considered: acting on the second-best guess while the best one is
unaddressed is how automation makes incidents worse. The candidate is run through :func:`evaluate`
first, so nothing is created that policy would reject (rate limits, cooldowns, freezes, one active
mitigation per target); what needs approval is still created and waits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stanch import GROUP, VERSION
from stanch.core.models.actions import ACTION_FIELDS
from stanch.core.models.common import TargetRef
from stanch.core.models.identity import UserIdentity
from stanch.core.models.incident import Incident, IncidentMitigation, MitigationMode
from stanch.core.models.mitigation import IncidentRef, MitigationSpec, PolicyDecision, PolicyDecisionKind
from stanch.core.policy.evaluation import (
    CREATED_BY_ANNOTATION,
    MitigationRequest,
    evaluate,
    matching_policies,
)
from stanch.core.policy.facts import TargetFacts
from stanch.core.policy.history import PastMitigation
from stanch.core.policy.loading import LoadedPolicy
from stanch.core.scope import target_scope_problem

INCIDENT_LABEL = "stanch.dev/incident"
CREATED_BY_LABEL = "stanch.dev/created-by"
"""Label value ``policy`` on auto-created Mitigations (label values cannot hold the full actor; the
``stanch.dev/created-by`` annotation does)."""
HYPOTHESIS_ANNOTATION = "stanch.dev/hypothesis"
MAX_NAME = 253


@dataclass(frozen=True)
class AutoMitigation:
    """A Mitigation to create (or, in Suggest mode, to list)."""

    name: str
    namespace: str
    spec: MitigationSpec
    created_by: str
    """``policy:<namespace>/<name>#autoMitigation[<i>]``."""
    hypothesis: str
    decision: PolicyDecision
    """What evaluation says about it right now (Allow or RequireApproval)."""

    def manifest(
        self, incident_name: str, incident_uid: str, requester: UserIdentity | None = None
    ) -> dict[str, Any]:
        """The Mitigation object, owned by the Incident (our own object: invariant 7 is about the
        user's workloads). ``requester`` is the operator's own user (its ServiceAccount): the admission
        policy accepts no other on a Mitigation the operator creates."""
        spec = self.spec.to_dict()
        if requester is not None:
            spec["requester"] = requester.to_dict()
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Mitigation",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {INCIDENT_LABEL: _label_value(incident_name), CREATED_BY_LABEL: "policy"},
                "annotations": {
                    CREATED_BY_ANNOTATION: self.created_by,
                    HYPOTHESIS_ANNOTATION: self.hypothesis,
                },
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Incident",
                        "name": incident_name,
                        "uid": incident_uid,
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "spec": spec,
        }

    def listing(self, *, suggested: bool) -> IncidentMitigation:
        """The entry in ``Incident.status.mitigations``."""
        return IncidentMitigation(
            name=self.name,
            action=self.spec.action,
            created_by=self.created_by,
            suggested=suggested,
            dry_run=self.spec.dry_run,
        )


@dataclass(frozen=True)
class AutoOutcome:
    """``mitigation`` is None when nothing should be created; ``create`` is False in Suggest mode."""

    mitigation: AutoMitigation | None
    create: bool
    reason: str


def auto_mitigation(
    incident: Incident,
    policies: Sequence[LoadedPolicy],
    existing: Sequence[PastMitigation],
    facts: TargetFacts,
    now: datetime,
) -> AutoOutcome:
    """The Mitigation the top hypothesis calls for, if a valid policy's auto-mitigation rule matches.

    ``facts`` describe the suggested mitigation's target; ``existing`` are the Mitigations in the
    Incident's and the target's namespaces.
    """
    status = incident.status
    namespace = incident.metadata.namespace or ""
    if incident.spec.resolved:
        return AutoOutcome(None, False, "incident is resolved")
    if status is None or not status.hypotheses:
        return AutoOutcome(None, False, "no hypotheses yet")
    top = status.hypotheses[0]
    suggestion = top.suggested_mitigation
    label = f"top hypothesis {top.category.value} {top.confidence}%"
    if suggestion is None:
        return AutoOutcome(None, False, f"{label} suggests no mitigation")
    action = suggestion.action
    for named in (incident.spec.target, suggestion.target):
        problem = target_scope_problem("Incident", namespace, named)
        if problem is not None:
            # The Mitigation would live in the Incident's namespace and act in another: refused.
            return AutoOutcome(None, False, f"no automatic mitigation: {problem}")
    # Left unset: the created Mitigation acts in its own namespace, the Incident's.
    target = TargetRef(kind=suggestion.target.kind, name=suggestion.target.name)
    target_ns = namespace

    candidates = [p for p in matching_policies(policies, target_ns, target.name, facts) if p.valid]
    chosen = None
    for policy in candidates:
        for i, rule in enumerate(policy.spec.auto_mitigation):
            if (
                rule.category is top.category
                and top.confidence >= rule.min_confidence
                and rule.action is action
            ):
                chosen = (policy, i, rule)
                break
        if chosen:
            break
    if chosen is None:
        return AutoOutcome(
            None, False, f"no valid policy has an auto-mitigation rule for {label} → {action.value}"
        )
    policy, index, rule = chosen
    created_by = f"{policy.actor_ref}#autoMitigation[{index}]"

    action_payload = {ACTION_FIELDS[action]: getattr(suggestion, ACTION_FIELDS[action])}
    spec = MitigationSpec(
        incident_ref=IncidentRef(name=incident.metadata.name or ""),
        target=target,
        dry_run=rule.dry_run,
        **action_payload,
    )
    name = mitigation_name(
        incident.metadata.name or "incident", incident.metadata.uid or "", created_by, spec
    )

    for other in existing:
        if other.namespace == namespace and other.name == name:
            return AutoOutcome(None, False, f"{name} already exists ({other.display()})")
        if other.active and other.on_target(target_ns, target.name):
            return AutoOutcome(
                None, False, f"{target.display()} already has an active Mitigation {other.display()}"
            )

    candidate = MitigationRequest(
        name=name, namespace=namespace, spec=spec, created_at=now, created_by=created_by
    )
    decision = evaluate(candidate, policies, existing, facts, now)
    if decision.decision is PolicyDecisionKind.DENY:
        return AutoOutcome(
            None, False, f"{created_by} matched, but policy would deny it: {decision.reasons[0]}"
        )
    auto = AutoMitigation(name, namespace, spec, created_by, top.statement[:256], decision)
    if incident.spec.mitigation.mode is not MitigationMode.AUTO:
        return AutoOutcome(auto, False, f"Suggest mode: would create {name} ({created_by})")
    return AutoOutcome(auto, True, f"create {name}: {label} matches {created_by} ({decision.decision.value})")


def mitigation_name(incident: str, incident_uid: str, created_by: str, spec: MitigationSpec) -> str:
    """``<incident>-auto-<action>-<hash>``: traceable to the Incident, stable for the same plan (so a
    retried create is idempotent) and different for a different plan."""
    digest = hashlib.sha256(
        json.dumps([incident_uid, created_by, spec.to_dict()], sort_keys=True).encode()
    ).hexdigest()[:6]
    suffix = f"-auto-{spec.action.value.lower()}-{digest}"
    return incident[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


def _label_value(value: str) -> str:
    """Label values stop at 63 characters; longer Incident names are shortened with a hash."""
    if len(value) <= 63:
        return value
    return value[:52].rstrip("-.") + "-" + hashlib.sha256(value.encode()).hexdigest()[:10]
