"""Log rules: what the error messages themselves say — a dependency that refuses or times out, a
certificate or credential that expired, a revision whose pods alone log an error."""

from __future__ import annotations

import re
from collections import Counter

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.models import Hypothesis, HypothesisCategory, LogSignature

DEPENDENCY_PATTERN = re.compile(
    r"connection refused|no such host|i/o timeout|connection reset|dial tcp|deadline exceeded|"
    r"upstream|could not connect|unable to connect|failed to connect|timed? ?out (?:calling|connecting)|"
    r"timeout (?:calling|connecting|to|from)|unavailable|no healthy upstream|broken pipe",
    re.IGNORECASE,
)
_TARGET = re.compile(
    r"(?:dial tcp|connect(?:ing)? to|connection to|calling|upstream|host|to|from)\s+"
    r"(?P<name>\[?[A-Za-z0-9][A-Za-z0-9.:\-\]]*[A-Za-z0-9\]])",
    re.IGNORECASE,
)
SATURATION_PATTERN = re.compile(
    r"pool exhausted|queue (?:is )?full|overloaded|too many requests|rate limit|server busy|"
    r"capacity exceeded|no free workers?",
    re.IGNORECASE,
)
"""The workload refusing work itself (its own pool or queue is full): not a dependency failing,
even when it answers "503 Service Unavailable"."""
FEW_LINES = 10
"""Fewer matching log lines than this are thin evidence of a failing dependency."""
_NOT_A_NAME = frozenset({"connect", "the", "a", "an", "server", "service", "host", "upstream", "timeout"})

CREDENTIAL_PATTERN = re.compile(
    r"x509|certificate (?:has )?expired|certificate signed by unknown authority|tls: (?:bad certificate|"
    r"handshake failure|expired)|\b401\b|\b403\b|unauthori[sz]ed|forbidden|invalid (?:token|credentials?|"
    r"api key)|token (?:is )?expired|authentication failed|permission denied|access denied",
    re.IGNORECASE,
)
_CERTIFICATE = re.compile(r"x509|certificate|tls:", re.IGNORECASE)


def dependency_name(signature: LogSignature) -> str | None:
    """The host or service a dependency error names, from the original line (the signature has
    addresses stripped)."""
    for text in (signature.sample, signature.signature):
        for match in _TARGET.finditer(text):
            name = match.group("name").rstrip(":")
            if name.lower() not in _NOT_A_NAME and not name.startswith("<"):
                return name
    return None


def _share(matching: list[LogSignature], ctx: RuleContext) -> float:
    total = sum(s.count for s in ctx.evidence.log_signatures)
    return sum(s.count for s in matching) / total if total else 0.0


def _only_new_revision(ctx: RuleContext, matching: list[LogSignature]) -> int | None:
    """The revision that alone logs these errors while pods of other revisions exist and do not."""
    revisions = {s.revision for s in matching}
    if len(revisions) != 1:
        return None
    (revision,) = revisions
    if revision is None:
        return None
    others = sum(g.total for g in ctx.evidence.pod_health.by_revision if g.key != str(revision))
    return revision if others > 0 else None


def dependency_failure(ctx: RuleContext) -> Hypothesis | None:
    """Callers failing on one dependency: rolling this workload back would not help, so no action is
    suggested — the owner of the dependency has to act."""
    matching = [
        s
        for s in ctx.evidence.log_signatures
        if DEPENDENCY_PATTERN.search(s.signature) and not SATURATION_PATTERN.search(s.signature)
    ]
    if not matching:
        return None
    names = Counter[str]()
    for s in matching:
        name = dependency_name(s)
        if name:
            names[name] += s.count
    dependency = names.most_common(1)[0][0] if names else None
    share = _share(matching, ctx)
    confidence = 45 + 25 * share
    top = max(matching, key=lambda s: s.count)
    pods = max(s.pods for s in matching)
    supporting = [f"'{top.signature}' x{top.count} from {pods} pod(s)"]
    if top.first_seen is not None:
        gap = (top.first_seen - ctx.onset.time).total_seconds()
        if -120 <= gap <= 300:
            supporting.append("these errors first appear at the onset")
    contradicting = []
    only = _only_new_revision(ctx, matching)
    if only is not None:
        confidence -= 25
        contradicting.append(
            f"only revision {only}'s pods report it: more likely that revision's code or config"
        )
    if len(names) > 1:
        contradicting.append(
            f"errors name several dependencies: {', '.join(n for n, _ in names.most_common(3))}"
        )
    lines = sum(s.count for s in matching)
    if lines < FEW_LINES:
        confidence -= 30
        contradicting.append(f"only {lines} log line(s) mention it")
    if share < 0.3:
        contradicting.append(f"only {share * 100:.0f}% of the logged errors are about dependencies")
    subject = f"dependency {dependency}" if dependency else "a dependency"
    return hypothesis(
        HypothesisCategory.DEPENDENCY,
        f"{subject} is failing (refused or timing out); rolling back {ctx.spec.target.name} would not "
        "help — check the dependency",
        confidence,
        supporting,
        contradicting,
    )


def credential_expiry(ctx: RuleContext) -> Hypothesis | None:
    """TLS certificate or credential errors: something expired or was rotated."""
    matching = [
        s for s in ctx.evidence.log_signatures if CREDENTIAL_PATTERN.search(f"{s.signature} {s.sample}")
    ]
    if not matching:
        return None
    certificate = any(_CERTIFICATE.search(f"{s.signature} {s.sample}") for s in matching)
    confidence = (70 if certificate else 55) + 10 * _share(matching, ctx)
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
    only = _only_new_revision(ctx, matching)
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
