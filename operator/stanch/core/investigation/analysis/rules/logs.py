"""Log rules: what the error messages themselves say — a certificate or credential that expired, a
revision whose pods alone log an error. Failing dependencies have their own module
(``rules/dependencies.py``)."""

from __future__ import annotations

import re

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.models import Hypothesis, HypothesisCategory, LogSignature

CREDENTIAL_PATTERN = re.compile(
    r"x509|certificate (?:has )?expired|certificate signed by unknown authority|tls: (?:bad certificate|"
    r"handshake failure|expired)|\b401\b|\b403\b|unauthori[sz]ed|forbidden|invalid (?:token|credentials?|"
    r"api key)|token (?:is )?expired|authentication failed|permission denied|access denied",
    re.IGNORECASE,
)
_CERTIFICATE = re.compile(r"x509|certificate|tls:", re.IGNORECASE)


def share_of(matching: list[LogSignature], ctx: RuleContext) -> float:
    total = sum(s.count for s in ctx.evidence.log_signatures)
    return sum(s.count for s in matching) / total if total else 0.0


def only_revision(ctx: RuleContext, matching: list[LogSignature]) -> int | None:
    """The revision that alone logs these errors while pods of other revisions exist and do not."""
    revisions = {s.revision for s in matching}
    if len(revisions) != 1:
        return None
    (revision,) = revisions
    if revision is None:
        return None
    others = sum(g.total for g in ctx.evidence.pod_health.by_revision if g.key != str(revision))
    return revision if others > 0 else None


def credential_expiry(ctx: RuleContext) -> Hypothesis | None:
    """TLS certificate or credential errors: something expired or was rotated."""
    matching = [
        s for s in ctx.evidence.log_signatures if CREDENTIAL_PATTERN.search(f"{s.signature} {s.sample}")
    ]
    if not matching:
        return None
    certificate = any(_CERTIFICATE.search(f"{s.signature} {s.sample}") for s in matching)
    confidence = (70 if certificate else 55) + 10 * share_of(matching, ctx)
    top = max(matching, key=lambda s: s.count)
    supporting = [f"'{top.signature}' x{top.count} from {top.pods} pod(s)"]
    contradicting = []
    secrets = [
        c
        for c in ctx.causal_changes()
        if c.change.config is not None and c.change.config.object.kind == "Secret"
    ]
    if secrets:
        confidence += 10
        supporting.append(secrets[0].sentence())
    only = only_revision(ctx, matching)
    if only is not None:
        confidence -= 20
        contradicting.append(f"only revision {only}'s pods report it: it may use a wrong credential")
    what = "a TLS certificate" if certificate else "a credential (token, key or password)"
    return hypothesis(
        HypothesisCategory.CREDENTIAL_EXPIRY,
        f"{what} expired or was rotated: renew or roll back the credential; no workload change will fix it",
        confidence,
        supporting,
        contradicting,
    )
