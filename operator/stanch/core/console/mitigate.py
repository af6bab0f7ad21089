"""``kubectl stanch mitigate INCIDENT``: the Mitigation a hypothesis suggests, as the manifest a
person would otherwise write by hand."""

from __future__ import annotations

import hashlib
from typing import Any

from stanch import GROUP, VERSION
from stanch.core.models import Hypothesis, Incident, UserIdentity
from stanch.core.policy.auto import HYPOTHESIS_ANNOTATION, INCIDENT_LABEL

MAX_NAME = 63
"""Short enough for a label value and a terminal column; Mitigation names may be longer."""


class MitigateError(ValueError):
    """The Incident cannot give what was asked; the message says why and what to do."""


def pick_hypothesis(incident: Incident, number: int | None) -> tuple[int, Hypothesis]:
    """The ``number``-th hypothesis (1-based, as the Incident view numbers them), or the first one
    with a suggested mitigation."""
    name = incident.metadata.name
    hypotheses = incident.status.hypotheses if incident.status else []
    if not hypotheses:
        raise MitigateError(f"Incident {name} has no hypotheses yet; wait for the investigation")
    if number is None:
        for i, h in enumerate(hypotheses, 1):
            if h.suggested_mitigation is not None:
                return i, h
        raise MitigateError(
            f"no hypothesis of Incident {name} suggests a mitigation Stanch can apply; write a Mitigation"
            " by hand (manifests/examples/)"
        )
    if not 1 <= number <= len(hypotheses):
        raise MitigateError(f"--hypothesis {number}: Incident {name} has hypotheses 1..{len(hypotheses)}")
    chosen = hypotheses[number - 1]
    if chosen.suggested_mitigation is None:
        raise MitigateError(
            f"--hypothesis {number} ({chosen.category.value}) suggests no mitigation Stanch can apply"
        )
    return number, chosen


def default_name(incident: Incident, hypothesis: Hypothesis) -> str:
    """Stable for one suggestion of one Incident: running the command twice finds the first
    Mitigation (AlreadyExists) instead of making a second one for the same target."""
    suggestion = hypothesis.suggested_mitigation
    assert suggestion is not None
    seed = f"{incident.metadata.uid or incident.metadata.name}\n{suggestion.model_dump_json(by_alias=True)}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:5]
    action = suggestion.action.value.lower()
    base = f"{incident.metadata.name}"[: MAX_NAME - len(action) - 7].rstrip("-.")
    return f"{base}-{action}-{digest}"


def mitigation_manifest(
    incident: Incident,
    hypothesis: Hypothesis,
    requester: UserIdentity,
    *,
    name: str | None = None,
    plan_only: bool = False,
    temporary: bool = False,
) -> dict[str, Any]:
    """A Mitigation of the suggestion: its action and target, linked to the Incident, requested by
    ``requester`` (the admission policy refuses any other name than the requesting user's)."""
    suggestion = hypothesis.suggested_mitigation
    if suggestion is None:
        raise MitigateError(f"hypothesis {hypothesis.category.value} suggests no mitigation")
    namespace = incident.metadata.namespace
    action = suggestion.to_dict()
    action.pop("summary", None)
    target = dict(action.pop("target"))
    if target.get("namespace") in (None, namespace):
        # The Mitigation's own namespace is the target's (invariant 11): no need to repeat it.
        target.pop("namespace", None)
    else:
        raise MitigateError(
            f"the suggestion acts in namespace {target['namespace']}, not the Incident's {namespace};"
            " a Mitigation acts only in its own namespace"
        )
    spec: dict[str, Any] = {
        "incidentRef": {"name": incident.metadata.name},
        "target": target,
        **action,
        # Only the name: the admission policy checks it is yours; groups are for approvals.
        "requester": {"username": requester.username},
    }
    if plan_only:
        spec["dryRun"] = True
    if temporary:
        spec["temporary"] = True
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Mitigation",
        "metadata": {
            "name": name or default_name(incident, hypothesis),
            "namespace": namespace,
            "labels": {INCIDENT_LABEL: str(incident.metadata.name)[:63].rstrip("-._")},
            "annotations": {
                HYPOTHESIS_ANNOTATION: f"{hypothesis.category.value}: {hypothesis.statement}"[:1024]
            },
        },
        "spec": spec,
    }
