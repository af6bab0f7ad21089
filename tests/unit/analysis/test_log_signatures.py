"""Log normalisation and grouping: variable parts stripped, counts, first occurrence, revisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stanch.core.investigation.analysis import LogLine, group_log_signatures, normalise_log_message

from .scenario_builders import T0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "dial tcp 10.0.3.17:5432: connect: connection refused",
            "dial tcp <ip>: connect: connection refused",
        ),
        (
            "request 3f2b8c1e-9d4a-4b7e-8f00-1234567890ab failed after 1.25s",
            "request <uuid> failed after <dur>",
        ),
        ("order 123456 not found (trace 0xdeadbeef)", "order <n> not found (trace <hex>)"),
        ('user "alice@example.com" rejected', "user <str> rejected"),
        ("2024-05-01T12:00:03.123Z ERROR timeout after 30s", "ERROR timeout after <dur>"),
        ("upstream [2001:db8::1]:443 reset", "upstream <ip> reset"),
        (
            "pod checkout-7d9f8b6c4-x2x7q crashed, digest 9f86d081884c7d65",
            "pod checkout-<pod> crashed, digest <hex>",
        ),
        ('{"level":"error","msg":"db timeout","ts":1714564800,"req":"abc"}', "db timeout"),
    ],
)
def test_normalise_strips_the_parts_that_vary(line: str, expected: str) -> None:
    assert normalise_log_message(line) == expected


def test_lines_differing_only_in_values_share_a_signature() -> None:
    a = normalise_log_message("payment 1842 failed: upstream 10.1.2.3:8080 timeout after 2.5s")
    b = normalise_log_message("payment 99 failed: upstream 10.9.9.9:80 timeout after 300ms")
    assert a == b


@given(st.text(max_size=2000))
def test_normalise_is_total_bounded_and_idempotent(line: str) -> None:
    out = normalise_log_message(line)
    assert 0 < len(out) <= 512
    if len(out) < 500:
        assert normalise_log_message(out) == out


def _line(seconds: int, pod: str, revision: int | None, message: str) -> LogLine:
    return LogLine(time=T0 + timedelta(seconds=seconds), pod=pod, revision=revision, message=message)


def test_grouping_counts_first_occurrence_pods_and_revision() -> None:
    lines = [
        _line(30, "checkout-a", 7, "ERROR db 10.0.0.1:5432 connection refused"),
        _line(10, "checkout-b", 7, "ERROR db 10.0.0.2:5432 connection refused"),
        _line(20, "checkout-a", 7, "ERROR db 10.0.0.1:5432 connection refused"),
        _line(15, "checkout-c", 6, "ERROR cache miss storm 12"),
        _line(16, "checkout-c", 6, "INFO served 200 in 3ms"),
    ]
    sigs = group_log_signatures(lines)
    assert [s.signature for s in sigs] == ["ERROR db <ip> connection refused", "ERROR cache miss storm <n>"]
    top = sigs[0]
    assert top.count == 3
    assert top.pods == 2
    assert top.revision == 7
    assert top.first_seen == T0 + timedelta(seconds=10)
    assert top.last_seen == T0 + timedelta(seconds=30)
    assert "10.0.0.2" in top.sample  # the first occurrence is the sample


def test_a_signature_from_several_revisions_names_none() -> None:
    lines = [_line(1, "a", 6, "error: boom"), _line(2, "b", 7, "error: boom")]
    assert group_log_signatures(lines)[0].revision is None


def test_info_lines_are_not_errors_unless_asked() -> None:
    lines = [_line(1, "a", 1, "INFO ready to serve")]
    assert group_log_signatures(lines) == []
    assert group_log_signatures(lines, errors_only=False)[0].count == 1


def test_samples_are_redacted() -> None:
    token = "abcdefghijklmnopqrstuvwxyz123456"
    lines = [_line(1, "a", 1, f"error: auth failed with Authorization: Bearer {token}")]
    assert token not in group_log_signatures(lines)[0].sample
