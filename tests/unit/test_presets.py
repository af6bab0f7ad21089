"""Signal template presets: each one checked like a --signals file, covering the same signals, with
the workload label where it is asked for."""

from __future__ import annotations

import pytest

from stanch.core.investigation.breakdowns import DIMENSIONS, is_breakdown
from stanch.core.investigation.presets import PRESETS, PresetError, preset_templates
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, render, validate_templates

VALUES = {"namespace": "shop", "workload": "checkout"}


def test_the_simulator_preset_is_todays_defaults() -> None:
    assert preset_templates("simulator") == dict(DEFAULT_SIGNAL_TEMPLATES)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_gives_every_default_signal_and_passes_the_check(name: str) -> None:
    templates = preset_templates(name)
    validate_templates(templates)
    overall = {k for k in templates if not is_breakdown(k)}
    assert overall == set(DEFAULT_SIGNAL_TEMPLATES)
    for key in templates:
        if is_breakdown(key):
            assert key.rsplit("_by_", 1)[1] in DIMENSIONS


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_query_is_scoped_to_the_namespace_and_the_workload(name: str) -> None:
    for key, template in preset_templates(name).items():
        rendered = render(key, template, VALUES)
        assert '"shop"' in rendered, key
        assert "checkout" in rendered, key
        assert "{{" not in rendered


@pytest.mark.parametrize(
    ("name", "default_selector"),
    [
        ("simulator", 'deployment="{{workload}}"'),
        ("istio", 'destination_workload="{{workload}}"'),
        ("linkerd", 'deployment="{{workload}}"'),
        ("ingress-nginx", 'service="{{workload}}"'),
    ],
)
def test_the_workload_label_replaces_the_presets_own(name: str, default_selector: str) -> None:
    assert default_selector in preset_templates(name)["error_ratio"]
    relabelled = preset_templates(name, "app")
    for signal in ("error_ratio", "latency_p99", "throughput"):
        assert 'app="{{workload}}"' in relabelled[signal]
        assert default_selector not in relabelled[signal]


def test_kube_state_metrics_joins_by_owner_unless_a_label_is_given() -> None:
    joined = preset_templates("kube-state-metrics")
    assert "kube_pod_owner" in joined["error_ratio"]
    assert "group_left(revision)" in joined["error_ratio_by_revision"]
    labelled = preset_templates("kube-state-metrics", "app")
    assert 'app="{{workload}}"' in labelled["error_ratio"]
    assert "kube_pod_owner" not in labelled["error_ratio"]
    assert "kube_pod_owner" in labelled["cpu_vs_limit"]  # cAdvisor has no workload label at all


def test_the_simulator_preset_relabelled_also_relabels_its_breakdowns() -> None:
    templates = preset_templates("simulator", "app")
    assert 'app="{{workload}}"' in templates["error_ratio_by_revision"]


@pytest.mark.parametrize(
    ("name", "label", "fragment"),
    [
        ("datadog", None, "is not a signal preset; use one of simulator, kube-state-metrics, istio"),
        ("istio", "app.kubernetes.io/name", "is not a Prometheus label name"),
        ("istio", 'app"}', "is not a Prometheus label name"),
    ],
)
def test_bad_names_are_refused(name: str, label: str | None, fragment: str) -> None:
    with pytest.raises(PresetError, match=fragment):
        preset_templates(name, label)


def test_names_are_case_insensitive() -> None:
    assert preset_templates(" Istio ") == preset_templates("istio")


def test_report_alerts_read_the_operators_preset() -> None:
    from stanch.wiring.cli import build_parser, report_templates

    args = build_parser().parse_args(["report", "shop/checkout-5xx", "--workload-label", "app"])
    templates = report_templates(args, {"STANCH_SIGNAL_PRESET": "istio"})
    assert templates == preset_templates("istio", "app")
    defaults = report_templates(build_parser().parse_args(["report", "shop/checkout-5xx"]), {})
    assert defaults == dict(DEFAULT_SIGNAL_TEMPLATES)


def test_report_with_an_unknown_preset_is_a_usage_error() -> None:
    from stanch.core.settings import ConfigError
    from stanch.wiring.cli import build_parser, report_templates

    args = build_parser().parse_args(["report", "shop/x", "--signal-preset", "nope"])
    with pytest.raises(ConfigError, match=r"^--signal-preset \(or STANCH_SIGNAL_PRESET\): 'nope'"):
        report_templates(args, {})
