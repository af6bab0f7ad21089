"""Who asked for a Mitigation, as far as the stored object can tell.

Kubernetes does not store the requesting user on an object. ``spec.requester`` is the requester's
own statement, which the ``stanch-identity`` admission policy checked against the authenticated user
at creation (``stanch.core.identity``); that is the answer whenever it is there. Mitigations created
before it existed only have the field manager of the first write (``metadata.managedFields[0].manager``:
``kubectl-create``, ``argocd-controller``, a client's name) and whatever annotations the requester
set, recorded and labelled for what they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stanch.core.policy.evaluation import CREATED_BY_ANNOTATION

REQUESTED_BY_ANNOTATION = "stanch.dev/requested-by"
"""Optional, set by the requester (or their tooling); not verified by the API server."""
MAX_ACTOR = 256
OWN_MANAGER = "stanch"
OPERATOR_MANAGERS = frozenset({OWN_MANAGER, "kopf"})


def requested_by(metadata: Mapping[str, Any], requester: str | None = None) -> str:
    """``policy:<ns>/<name>#autoMitigation[0]`` for our own Mitigations; otherwise ``requester``
    (``spec.requester.username``, checked at admission); for older objects without one, the
    ``stanch.dev/requested-by`` annotation (marked unverified) and the first field manager."""
    annotations = metadata.get("annotations") or {}
    creator = annotations.get(CREATED_BY_ANNOTATION)
    managers = [str(m.get("manager")) for m in metadata.get("managedFields") or () if m.get("manager")]
    if isinstance(creator, str) and creator.startswith("policy:") and OWN_MANAGER in managers:
        # Only when our own client wrote the object; anyone can type the annotation.
        return creator[:MAX_ACTOR]
    if requester:
        return requester[:MAX_ACTOR]
    # Our own writes (Kopf's finalizer and status, our client) come after the creator's; skip them.
    foreign = [m for m in managers if m not in OPERATOR_MANAGERS]
    manager = foreign[0] if foreign else (managers[0] if managers else None)
    claimed = annotations.get(REQUESTED_BY_ANNOTATION)
    parts = []
    if isinstance(claimed, str) and claimed.strip():
        parts.append(f"{claimed.strip()} (unverified annotation)")
    parts.append(f"field manager {manager}" if manager else "field manager unknown")
    return "; ".join(parts)[:MAX_ACTOR]
