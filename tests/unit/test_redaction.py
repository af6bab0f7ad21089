"""Credentials never survive redaction, whatever they look like and wherever they sit."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stanch.core.redaction import REDACTED, is_sensitive_key, redact, redact_text

# Secrets of the shapes that travel in headers, URLs and key=value text: no whitespace or delimiters.
TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~+/="
secrets = st.text(alphabet=TOKEN_CHARS, min_size=8, max_size=64).filter(lambda s: REDACTED not in s)
url_secrets = st.text(alphabet=string.ascii_letters + string.digits + "-_.~!$*+", min_size=8, max_size=40)
any_secret = st.text(min_size=8, max_size=64).filter(lambda s: s.strip() == s and REDACTED not in s)
prose = st.text(alphabet=string.ascii_letters + " ", max_size=30)
sensitive_keys = st.sampled_from(
    [
        "password",
        "DB_PASSWORD",
        "apiKey",
        "x-api-key",
        "token",
        "access_token",
        "client_secret",
        "Authorization",
        "aws_secret_access_key",
        "privateKey",
        "sessionId",
        "passwd",
        "Cookie",
    ]
)


def _gone(secret: str, out: Any) -> bool:
    return secret not in repr(out)


@given(key=sensitive_keys, secret=any_secret, other=prose)
def test_sensitive_keys_drop_any_value(key: str, secret: str, other: str) -> None:
    assume(secret not in other and secret not in key)
    out = redact({"event": other, key: secret, "nested": [{key: {"deep": secret}}]})
    assert _gone(secret, out)
    assert out["event"] == redact_text(other)


@given(secret=secrets, before=prose, after=prose, word=st.sampled_from(["Bearer", "bearer", "Basic"]))
def test_authorization_schemes_in_text(secret: str, before: str, after: str, word: str) -> None:
    assume(secret not in before + after)
    assert _gone(secret, redact_text(f"{before} Authorization: {word} {secret} {after}"))
    assert _gone(secret, redact_text(f"{before} {word} {secret}\n{after}"))


@given(user=url_secrets, secret=url_secrets, path=st.text(alphabet=string.ascii_lowercase + "/", max_size=20))
def test_basic_auth_in_urls(user: str, secret: str, path: str) -> None:
    assume(secret not in path)
    for scheme in ("https", "postgres", "redis", "amqp"):
        out = redact_text(f"dial {scheme}://{user}:{secret}@db.internal:5432/{path} failed")
        assert _gone(secret, out)
        assert "db.internal:5432" in out


@given(
    key=sensitive_keys,
    secret=secrets,
    sep=st.sampled_from(["=", ": ", " = ", ":"]),
    quote=st.sampled_from(["", '"', "'"]),
)
def test_key_value_pairs_in_text(key: str, secret: str, sep: str, quote: str) -> None:
    assume(secret not in key)
    text = f"config loaded {key}{sep}{quote}{secret}{quote} retries=3"
    out = redact_text(text)
    assert _gone(secret, out)
    if key != "Authorization":  # header values hold spaces ("Bearer x"), so the rule takes the line
        assert "retries=3" in out


@given(
    body=st.text(alphabet=string.ascii_letters + string.digits + "+/=\n", min_size=16, max_size=200),
    cut=st.booleans(),
)
def test_pem_private_keys_even_truncated(body: str, cut: bool) -> None:
    assume(body.strip())
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n" + ("" if cut else "-----END RSA PRIVATE KEY-----")
    out = redact_text(f"loaded key {pem} ok")
    for line in body.split("\n"):
        if len(line) >= 8:
            assert line not in out


@given(
    suffix=st.text(alphabet=string.ascii_uppercase + string.digits, min_size=16, max_size=16),
    prefix=st.sampled_from(["AKIA", "ASIA"]),
)
def test_aws_access_key_ids(prefix: str, suffix: str) -> None:
    key = prefix + suffix
    assert _gone(key, redact_text(f"using credentials {key} for s3"))


@given(
    parts=st.lists(
        st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=10, max_size=40),
        min_size=2,
        max_size=2,
    )
)
def test_jwts(parts: list[str]) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9." + parts[0] + "." + parts[1]
    assert _gone(parts[0], redact_text(f"token is {jwt}"))


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_redaction_is_idempotent(value: Any) -> None:
    once = redact(value)
    assert redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "pod checkout-7d9c-abcde restarted 3 times (OOMKilled)",
        'secret "db-creds" not found',
        "Scaled up replica set checkout-6f8d to 4",
        "error ratio 0.31 > tolerance 0.05 over 5m",
        "GET /api/orders 503 in 1.2s",
    ],
)
def test_ordinary_operations_text_survives(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("X-Api-Key", True),
        ("bearerToken", True),
        ("auth", True),
        ("secretName", False),
        ("secretRef", False),
        ("namespace", False),
        ("key", False),
        ("tokens", False),
    ],
)
def test_key_classification(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_bytes_are_never_logged() -> None:
    assert redact({"payload": b"\x00secret"}) == {"payload": REDACTED}
