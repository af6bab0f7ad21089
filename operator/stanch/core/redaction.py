"""Redaction of anything credential-like before it reaches a log line, an Event or a status field.

Two nets, because secrets arrive both ways: as the value of a telling key (`password`, `token`,
`Authorization`, ...) in structured data, and inside free text (an exception message quoting a URL
with basic auth, a header dump, a PEM block). Over-redacting a harmless value costs a little
debugging; leaking a credential into logs that many people can read costs an incident of its own.

The rule for named values (environment variables, ConfigMap keys, anything shaped ``{name, value}``)
is one and the same everywhere Stanch writes (Incident and Mitigation status, plans, drift diffs,
Events, logs, reports, notifications): the *name* always stays, the *value* is dropped when the
name looks secret (:func:`is_sensitive_key`) and otherwise passes through :func:`redact_text`, which
catches credentials embedded in innocent-looking values (URL userinfo, ``password=...``, tokens).
A value taken from a Secret (``valueFrom.secretKeyRef``) is a reference and is shown as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
SEALED = "[REDACTED: Stanch keeps no secret values; restored from the cluster when needed]"
"""What ``status.snapshot`` holds in place of a value (see ``stanch.core.plans.sealing``)."""

# Matched against the whole key after lower-casing and dropping separators, so `X-Api-Key`,
# `api_key` and `apiKey` are one rule. `key` alone is too common (label keys, map keys) to count.
_SENSITIVE_KEY_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "credential",
    "cookie",
    "sessionid",
    "signature",
    "bearer",
)
_SENSITIVE_KEY_EXACT = frozenset({"pwd", "auth", "pass", "jwt", "dsn"})
# Keys that contain a sensitive word but hold only a reference or a count, never the secret.
_HARMLESS_KEYS = frozenset({"secretname", "secretref", "secretkeyref", "tokenexpiry", "tokens", "secrets"})


def is_sensitive_key(key: str) -> bool:
    flat = re.sub(r"[^a-z0-9]", "", key.lower())
    if flat in _HARMLESS_KEYS:
        return False
    return flat in _SENSITIVE_KEY_EXACT or any(part in flat for part in _SENSITIVE_KEY_PARTS)


_KEY_WORDS = (
    r"(?:[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credential|session[_-]?id|signature|cookie|bearer)[A-Za-z0-9_.-]*|pwd|auth|dsn|jwt)"
)

_TEXT_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # PEM private keys, also when the END line was cut off by truncation.
    (
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL
        ),
        REDACTED,
    ),
    # userinfo in any URL: scheme://user:pass@host or scheme://token@host.
    (re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@"), rf"\g<pre>{REDACTED}@"),
    # Authorization headers and bare schemes, whatever the scheme.
    (
        re.compile(r"(?i)(?P<pre>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)[^\r\n\"',}]+"),
        rf"\g<pre>{REDACTED}",
    ),
    (
        re.compile(r"(?P<pre>\b(?:[Bb]earer|BEARER|Basic|BASIC)\s+)[A-Za-z0-9._~+/=-]{8,}"),
        rf"\g<pre>{REDACTED}",
    ),
    # key=value, key: value, "key": "value" where the key is telling; quotes are kept. A bracketed
    # value (``[REDACTED]`` from an earlier pass: logs are redacted by key, then as text) is taken
    # whole: the bare alternative stops at ``]``, so it used to leave ``token = [REDACTED]]``.
    (
        re.compile(
            rf"(?i)(?P<pre>\b{_KEY_WORDS}[\"']?\s*[:=]\s*)"
            r"(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<br>\[[^\]\r\n]*\])|(?P<bare>[^\s,;&}\]\"']+))"
        ),
        lambda m: (
            m.group("pre")
            + ('"' + REDACTED + '"' if m.group("dq") is not None else "")
            + ("'" + REDACTED + "'" if m.group("sq") is not None else "")
            + (REDACTED if m.group("br") is not None or m.group("bare") is not None else "")
        ),
    ),
    # An env variable dumped as JSON or a Python repr ({"name": "DB_PASSWORD", "value": "..."}) in an
    # exception or a debug line: the secret is the value of the key `value`, told by the name.
    (
        re.compile(
            rf"(?i)(?P<pre>[\"']name[\"']\s*:\s*[\"']{_KEY_WORDS}[\"']\s*,\s*[\"']value[\"']\s*:\s*)"
            r"(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)')"
        ),
        lambda m: (
            m.group("pre") + ('"' + REDACTED + '"' if m.group("dq") is not None else "'" + REDACTED + "'")
        ),
    ),
    # AWS access key ids have a fixed shape; the secret half is caught by the key=value rule.
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), REDACTED),
    # JWTs (service-account tokens, OIDC tokens): three base64url parts, the first a JSON header.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Well-known token shapes that travel in commands and URLs.
    (
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,})"),
        REDACTED,
    ),
)


def redact_text(text: str) -> str:
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def shown_value(name: str, value: Any) -> Any:
    """``value`` as Stanch may write it next to ``name`` (an env variable, a ConfigMap key)."""
    if is_sensitive_key(name):
        return REDACTED
    return redact(value)


def _named_secret(value: Mapping[Any, Any]) -> bool:
    """``{name: DB_PASSWORD, value: ...}``: an env variable (or any name/value pair) whose name looks
    secret, so its ``value`` is the secret even though the key ``value`` says nothing."""
    name = value.get("name")
    return isinstance(name, str) and "value" in value and is_sensitive_key(name)


def redact(value: Any, *, _depth: int = 0) -> Any:
    """A redacted copy of `value`: mappings by key (and ``{name, value}`` pairs by name), sequences
    item by item, strings by pattern.

    Other types pass through unchanged; their `str()` is redacted by whoever renders them.
    """
    if _depth > 32:
        return REDACTED  # absurdly deep data is more likely an attack on the logger than useful
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        pair = _named_secret(value)
        return {
            k: (
                REDACTED
                if (isinstance(k, str) and is_sensitive_key(k)) or (pair and k == "value")
                else redact(v, _depth=_depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        items = [redact(v, _depth=_depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, bytes | bytearray):
        return REDACTED
    return value


def map_secrets(value: Any, fn: Callable[[str, Any], Any], path: str = "") -> Any:
    """A copy of ``value`` with ``fn(path, v)`` in place of every scalar value :func:`redact` would
    drop (the value of a secret-looking ``{name, value}`` pair or key), addressed by a readable path
    that survives reordering: ``spec.template.spec.containers[app].env[DB_PASSWORD]``. Mappings under
    a secret-looking key are walked, not replaced: ``volumes[x].secret`` holds a reference, not data."""
    if isinstance(value, Mapping):
        pair = _named_secret(value)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = str(k)
            here = f"{path}.{key}" if path else key
            scalar = not isinstance(v, Mapping | list | tuple)
            if pair and key == "value" and scalar:
                out[k] = fn(path, v)
            elif is_sensitive_key(key) and scalar and not pair:
                out[k] = fn(here, v)
            else:
                out[k] = map_secrets(v, fn, here)
        return out
    if isinstance(value, list | tuple):
        items = []
        for i, item in enumerate(value):
            name = item.get("name") if isinstance(item, Mapping) else None
            items.append(map_secrets(item, fn, f"{path}[{name if isinstance(name, str) else i}]"))
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, str) and (value == SEALED or redact_text(value) != value):
        # Text that carries a credential (URL userinfo, a JSON manifest with an env value, as in
        # kubectl's last-applied-configuration annotation): the whole string, as redact() would.
        return fn(path, value)
    return value


def secret_values(value: Any) -> dict[str, Any]:
    """Every value :func:`map_secrets` addresses, by path: what a diff compares to say that a
    secret changed without saying what it was or became."""
    out: dict[str, Any] = {}

    def keep(path: str, v: Any) -> Any:
        out[path] = v
        return v

    map_secrets(value, keep)
    return out


def secret_changes(before: Any, after: Any) -> list[str]:
    """``<path>: value changed (not shown)`` for each secret-looking value that differs."""
    old, new = secret_values(before), secret_values(after)
    lines = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            lines.append(f"{path}: added (value not shown)")
        elif path not in new:
            lines.append(f"{path}: removed")
        elif old[path] != new[path]:
            lines.append(f"{path}: value changed (not shown)")
    return lines
