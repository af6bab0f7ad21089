"""Redaction runs more than once on the same text (a log event is redacted by key, then rendered and
redacted as text): a second pass must leave the first one's marker intact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stanch.core.redaction import REDACTED, redact, redact_text


@pytest.mark.parametrize("sep", ["=", " = ", ": ", ":"])
@pytest.mark.parametrize("key", ["token", "password", "client_secret", "api-key"])
def test_a_redacted_value_is_not_garbled_by_a_second_pass(key: str, sep: str) -> None:
    line = f"login failed {key}{sep}{REDACTED} after 3 tries"
    assert redact_text(line) == line


def test_the_reported_line() -> None:
    # The exact line the issue quotes: `token = [REDACTED]]` after a second pass.
    assert redact_text(redact_text("token = s3cr3t-value")) == f"token = {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("secret=[abc def]", f"secret={REDACTED}"),
        ("token=[x] rest", f"token={REDACTED} rest"),
        # A bracket that closes text around the pair is not part of the value.
        ("[token=abc]", f"[token={REDACTED}]"),
    ],
)
def test_bracketed_values_are_taken_whole(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_a_second_text_pass_changes_nothing(value: str) -> None:
    event = {"token": value, "message": f"token = {value}"}
    once = redact(event)
    assert once["token"] == REDACTED
    assert redact_text(str(once)) == redact_text(redact_text(str(once)))
