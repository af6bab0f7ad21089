"""Signal template syntax: placeholders, braces and quoting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stanch.core.investigation.signals import (
    DEFAULT_SIGNAL_TEMPLATES,
    PLACEHOLDERS,
    TemplateError,
    escape_label_value,
    placeholders_of,
    render,
    validate_templates,
)

VALUES = {"namespace": "shop", "workload": "checkout", "revision": "7", "pod": "p", "node": "n"}


def test_defaults_are_valid_and_scoped_to_the_workload() -> None:
    used = validate_templates(DEFAULT_SIGNAL_TEMPLATES)
    assert set(used) == {
        "error_ratio",
        "latency_p99",
        "throughput",
        "cpu_vs_limit",
        "memory_vs_limit",
        "restarts",
    }
    for name, placeholders in used.items():
        # A default that forgot the namespace would mix every tenant's traffic into one number.
        assert {"namespace", "workload"} <= placeholders, name


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("error_ratio", 'code=~"5.."'),
        ("latency_p99", "http_request_duration_seconds_bucket"),
        ("throughput", "http_requests_total"),
        ("cpu_vs_limit", 'resource="cpu"'),
        ("memory_vs_limit", "container_memory_working_set_bytes"),
        ("restarts", "kube_pod_container_status_restarts_total"),
    ],
)
def test_defaults_use_the_documented_metrics(name: str, metric: str) -> None:
    assert metric in DEFAULT_SIGNAL_TEMPLATES[name]


def test_render_fills_and_escapes() -> None:
    out = render("t", 'up{namespace="{{ namespace }}"}', {"namespace": 'a"b\\c'})
    assert out == 'up{namespace="a\\"b\\\\c"}'


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ('up{ns="{{namespace}}"', "without a closing"),
        ('up{ns="{{namespace}}"}}', "no opening '{{'"),
        ('up{ns="x"}}', "no opening '{{'"),
        ('up{ns="{{namespace"}', "never closed"),
        ('up{ns="{{cluster}}"}', "unknown placeholder {{cluster}}"),
        ('up{ns="{{ 1x }}"}', "not a placeholder name"),
        ('up{ns="unterminated}', "never closed"),
        ("up}", "no opening '{'"),
        ("sum(rate(up[5m])", "'(' at column 4 without a closing ')'"),
        ("sum(rate(up[5m)))", "')' at column 15 closes '['"),
        ("   ", "empty"),
    ],
)
def test_syntax_errors_name_the_template(template: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        placeholders_of("my_signal", template)
    assert str(caught.value).startswith("signal template 'my_signal': ")
    assert problem in str(caught.value)


def test_braces_inside_strings_are_regex_not_structure() -> None:
    assert placeholders_of("t", 'up{code=~"5[0-9]{2}",pod="{{pod}}"}') == {"pod"}


def test_bad_names_are_refused() -> None:
    with pytest.raises(TemplateError, match="lower_snake_case"):
        placeholders_of("Error Ratio", "up")


def test_render_refuses_blank_slots() -> None:
    with pytest.raises(TemplateError, match="no value for placeholder"):
        render("t", 'up{pod="{{pod}}"}', {"namespace": "x"})


@given(st.text(max_size=40))
def test_escaped_values_never_end_the_string(value: str) -> None:
    escaped = escape_label_value(value)
    # Every quote in the escaped value is preceded by an odd number of backslashes.
    i = 0
    while i < len(escaped):
        if escaped[i] == "\\":
            i += 2
            continue
        assert escaped[i] not in '"\n'
        i += 1


@given(st.dictionaries(st.sampled_from(sorted(PLACEHOLDERS)), st.text(min_size=1, max_size=20)))
def test_rendering_every_placeholder_leaves_no_slot(values: dict[str, str]) -> None:
    template = "x{" + ",".join(f'{k}="{{{{{k}}}}}"' for k in values) + "}"
    expected = "x{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in values.items()) + "}"
    assert render("t", template, {**VALUES, **values}) == expected


def test_with_rate_window_replaces_only_the_rate_window() -> None:
    from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, with_rate_window

    fast = with_rate_window(DEFAULT_SIGNAL_TEMPLATES, "15s")
    assert set(fast) == set(DEFAULT_SIGNAL_TEMPLATES)
    assert all("[5m]" not in q for q in fast.values())
    assert "[15s]" in fast["error_ratio"]
    assert fast["error_ratio"] == DEFAULT_SIGNAL_TEMPLATES["error_ratio"].replace("[5m]", "[15s]")
    with pytest.raises(ValueError, match="rate window"):
        with_rate_window(DEFAULT_SIGNAL_TEMPLATES, "15 seconds")
