"""Log error signatures: the "unique error messages, counts, first occurrence" a human would extract.

Two lines are the same error when they differ only in the values that vary from request to request
(ids, numbers, addresses, durations, quoted values). Normalisation replaces those with placeholders
so thousands of lines collapse into a handful of signatures, each with its count, first and last
occurrence, the pods that logged it and, when only one revision did, that revision — which is what
tells "only the new pods fail" apart from "everyone fails".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from stanch.core.models import LogSignature
from stanch.core.redaction import redact_text

SIGNATURE_MAX = 512
SAMPLE_MAX = 1024


@dataclass(frozen=True)
class LogLine:
    """One line of a pod's log, as the log collector read it."""

    time: datetime | None
    pod: str
    revision: int | None
    message: str
    previous: bool = False
    """Read from the previous (crashed) container instance."""


# Order matters: the specific shapes (uuids, addresses, timestamps) must be replaced before the
# generic number rule would chop them into pieces.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Leading timestamps and klog/glog headers: every line has a different one.
    (re.compile(r"^\s*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\s*"), ""),
    (re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\S+:\d+\]\s*"), ""),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r'"(?:[^"\\]|\\.)*"'), "<str>"),
    (re.compile(r"(?<![A-Za-z])'(?:[^'\\]|\\.)*'"), "<str>"),
    (
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
        "<uuid>",
    ),
    # Kubernetes generated name suffixes: checkout-7d9f8b6c4-x2x7q.
    (re.compile(r"\b([a-z][a-z0-9-]*?)-[a-z0-9]{8,10}-[a-z0-9]{5}\b"), r"\1-<pod>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "<ip>"),
    # IPv6: a "::" or all eight groups, so clock times like 12:00:03 are left to the number rule.
    (
        re.compile(
            r"\[?(?:(?:[0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F:]*|(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4})\]?"
            r"(?::\d{1,5})?"
        ),
        "<ip>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Long hex runs (trace ids, digests, pod-template hashes) but not plain words like "deadbeef".
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)(?:\d+(?:\.\d+)?(?:ms|s|m))*\b"), "<dur>"),
    (re.compile(r"(?<![A-Za-z<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)

# Keys under which structured (JSON) loggers put the human message and the error.
_JSON_TEXT_KEYS = ("msg", "message", "error", "err", "exception")


def _text_of(line: str) -> str:
    """The human part of a line; JSON log lines are reduced to their message and error fields so the
    ever-changing request fields do not make every line unique."""
    stripped = line.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            return stripped
        if isinstance(doc, dict):
            parts = [str(doc[k]) for k in _JSON_TEXT_KEYS if isinstance(doc.get(k), str | int | float)]
            if parts:
                return ": ".join(parts)
    return stripped


def normalise_log_message(line: str) -> str:
    """The signature of a log line: variable parts (numbers, ids, hex, uuids, IPs, durations, quoted
    values, timestamps) replaced by placeholders, whitespace collapsed, at most 512 characters."""
    text = _text_of(line)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = text.strip()
    if len(text) > SIGNATURE_MAX:
        text = text[: SIGNATURE_MAX - 1] + "…"
    return text or "<empty>"


_ERROR_WORDS = re.compile(
    r"\b(?:error|err|fatal|panic|exception|traceback|failed|failure|refused|timeout|timed out|"
    r"unavailable|denied|forbidden|unauthori[sz]ed|x509|oomkilled|killed|crash|cannot|can't|"
    r"unable|invalid|expired|reset by peer|broken pipe|no such host|5\d\d)\b",
    re.IGNORECASE,
)
_JSON_LEVEL = re.compile(r'"(?:level|severity|lvl)"\s*:\s*"(?:error|err|fatal|panic|critical|crit)"', re.I)


def is_error_line(line: str) -> bool:
    """Whether a line reports an error (by level field or wording); info chatter is not evidence."""
    return bool(_JSON_LEVEL.search(line) or _ERROR_WORDS.search(line))


@dataclass
class _Group:
    signature: str
    sample: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    pods: set[str] = field(default_factory=set)
    revisions: set[int | None] = field(default_factory=set)


def group_log_signatures(lines: Iterable[LogLine], *, errors_only: bool = True) -> list[LogSignature]:
    """Group lines by signature: most frequent first (ties: earliest first), with counts, first and
    last occurrence, distinct pods, and the revision when every line came from the same one.

    Only error lines are kept unless ``errors_only`` is false. Samples are redacted: a credential
    quoted in an error message must not reach the Incident status.
    """
    groups: dict[str, _Group] = {}
    for line in lines:
        if errors_only and not is_error_line(line.message):
            continue
        signature = normalise_log_message(line.message)
        group = groups.get(signature)
        if group is None:
            group = groups[signature] = _Group(signature, line.message)
        group.count += 1
        group.pods.add(line.pod)
        group.revisions.add(line.revision)
        if line.time is not None:
            if group.first is None or line.time < group.first:
                group.first = line.time
                group.sample = line.message
            if group.last is None or line.time > group.last:
                group.last = line.time
    ordered = sorted(
        groups.values(),
        key=lambda g: (-g.count, g.first is None, g.first.timestamp() if g.first else 0.0, g.signature),
    )
    out = []
    for g in ordered:
        revisions = g.revisions
        only = next(iter(revisions)) if len(revisions) == 1 else None
        sample = redact_text(g.sample.strip())
        out.append(
            LogSignature(
                signature=g.signature,
                count=g.count,
                first_seen=g.first,
                last_seen=g.last,
                revision=only,
                pods=len(g.pods),
                sample=sample[: SAMPLE_MAX - 1] + "…" if len(sample) > SAMPLE_MAX else sample,
            )
        )
    return out
