"""Recording rules and the templates that read them: one source, so they cannot drift apart.

Whether Prometheus accepts the rules and the recorded templates answer like the raw ones is proven
on the real Prometheus (e2e/tests/test_recording_rules.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stanch.core.investigation.breakdowns import DEFAULT_BREAKDOWN_TEMPLATES
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, placeholders_of
from stanch.core.recording import names, prometheus_rule, recorded_templates, recording_rules
from stanch.wiring.cli import main

_METRIC = re.compile(r"([a-z_]+:[a-z_]+:[a-z0-9_]+)\{")


def test_the_recorded_templates_replace_every_default_under_its_name() -> None:
    templates = recorded_templates("5m")
    assert set(templates) == set(DEFAULT_SIGNAL_TEMPLATES) | set(DEFAULT_BREAKDOWN_TEMPLATES)
    for name, query in templates.items():
        defaults = {**DEFAULT_SIGNAL_TEMPLATES, **DEFAULT_BREAKDOWN_TEMPLATES}
        # Same placeholders: the investigation and the guard render both the same way.
        assert placeholders_of(name, query) == placeholders_of(name, defaults[name]), name


def test_every_series_a_template_reads_is_recorded_by_a_rule() -> None:
    recorded = {r["record"] for r in recording_rules("2m")["groups"][0]["rules"]}
    read = {m for q in recorded_templates("2m").values() for m in _METRIC.findall(q)}
    assert read
    assert read <= recorded
    assert recorded == set(names("2m").values())


def test_the_rules_keep_the_labels_the_templates_select_and_group_by() -> None:
    rules = {r["record"]: r["expr"] for r in recording_rules("5m")["groups"][0]["rules"]}
    n = names("5m")
    for label in ("namespace", "deployment", "revision", "node", "code"):
        assert label in rules[n["requests"]].split("(")[1]
    assert "le" in rules[n["latency"]].split("(")[1]
    assert "[5m]" in rules[n["requests"]]


def test_bad_windows_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="window '5 minutes'"):
        recording_rules("5 minutes")
    with pytest.raises(ValueError, match="interval 'often'"):
        recording_rules("5m", "often")


def test_prometheus_rule_wraps_the_same_groups() -> None:
    rule = prometheus_rule("stanch-signals", "monitoring", "5m", "30s")
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"] == {
        "name": "stanch-signals",
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/part-of": "stanch"},
    }
    assert rule["spec"] == recording_rules("5m", "30s")


def test_cli_writes_rules_and_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules, templates = tmp_path / "rules.yaml", tmp_path / "signals.yaml"
    assert (
        main(["recording-rules", "--window", "1m", "--rules", str(rules), "--templates", str(templates)]) == 0
    )
    assert yaml.safe_load(rules.read_text()) == recording_rules("1m", "30s")
    assert yaml.safe_load(templates.read_text()) == dict(recorded_templates("1m"))
    assert main(["recording-rules", "--prometheus-rule", "monitoring/stanch"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "PrometheusRule"


def test_cli_names_the_bad_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recording-rules", "--window", "5x"]) == 2
    assert "window '5x'" in capsys.readouterr().err
    assert main(["recording-rules", "--prometheus-rule", "no-slash"]) == 2
    assert "--prometheus-rule 'no-slash'" in capsys.readouterr().err
