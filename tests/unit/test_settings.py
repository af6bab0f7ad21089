"""Configuration resolution and its error messages (pure: no process environment involved)."""

from __future__ import annotations

from typing import Any

import pytest

from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES
from stanch.core.settings import ConfigError, LogFormat, Settings, check_prometheus_url, resolve

URL = "http://prometheus.monitoring.svc:9090"


def settings(
    flags: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    *,
    in_cluster: bool = False,
    is_tty: bool = False,
    overrides: dict[str, str] | None = None,
) -> Settings:
    base: dict[str, Any] = {"prometheus_url": URL, "all_namespaces": True}
    return resolve(
        {**base, **(flags or {})}, env or {}, in_cluster=in_cluster, is_tty=is_tty, signal_overrides=overrides
    )


def test_defaults_outside_the_cluster_stay_on_loopback() -> None:
    config = settings()
    assert config.liveness_endpoint == "http://127.0.0.1:8080/healthz"
    assert str(config.metrics_address) == "127.0.0.1:8081"
    assert config.standalone is True
    assert config.signal_templates == dict(DEFAULT_SIGNAL_TEMPLATES)


def test_defaults_in_the_cluster_bind_all_interfaces_for_probes_and_scrapes() -> None:
    config = settings(in_cluster=True, is_tty=True)
    assert config.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert str(config.metrics_address) == "0.0.0.0:8081"
    assert config.log_format is LogFormat.JSON


def test_log_format_follows_the_terminal() -> None:
    assert settings(is_tty=True).log_format is LogFormat.CONSOLE
    assert settings(is_tty=False).log_format is LogFormat.JSON


def test_flags_win_over_environment() -> None:
    env = {"STANCH_PROMETHEUS_URL": "http://other:9090", "STANCH_LOG_LEVEL": "debug"}
    config = settings({"prometheus_url": URL}, env)
    assert config.prometheus_url == URL
    assert config.log_level == "DEBUG"


def test_environment_fallbacks() -> None:
    env = {
        "STANCH_PROMETHEUS_URL": URL,
        "STANCH_NAMESPACES": "shop, team-a",
        "STANCH_LIVENESS": ":9000/live",
        "STANCH_METRICS_ADDRESS": "off",
        "STANCH_LOG_FORMAT": "console",
        "STANCH_PEERING": "stanch",
        "STANCH_PRIORITY": "7",
        "STANCH_PEERING_LIFETIME": "45s",
    }
    config = resolve({}, env, in_cluster=True, is_tty=False)
    assert config.namespaces == ("shop", "team-a")
    assert (config.priority, config.peering_lifetime) == (7, 45.0)
    assert config.liveness_endpoint == "http://0.0.0.0:9000/live"
    assert config.metrics_address is None
    assert config.log_format is LogFormat.CONSOLE
    assert config.peering_name == "stanch"
    assert config.standalone is False  # asking for peering is asking to leave standalone mode


def test_liveness_can_be_switched_off_and_takes_urls() -> None:
    assert settings({"liveness_endpoint": "off"}).liveness_endpoint is None
    assert settings({"liveness_endpoint": "http://[::1]:8080/h"}).liveness_endpoint == "http://[::1]:8080/h"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("prometheus:9090", "scheme"),
        ("ftp://prometheus:9090", "scheme 'ftp'"),
        ("http://", "no host"),
        ("http://prometheus:notaport", "not a URL"),
        ("https://user:hunter2@prometheus", "credentials"),
        ("http://prometheus:9090/?x=1", "query"),
    ],
)
def test_prometheus_url_errors_name_the_flag_and_the_fix(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings({"prometheus_url": value})
    message = str(caught.value)
    assert message.startswith("--prometheus-url (or STANCH_PROMETHEUS_URL): ")
    assert problem in message
    assert "hunter2" not in message  # the error itself must not leak the credential


def test_prometheus_url_is_normalised() -> None:
    assert (
        check_prometheus_url(" https://prom.example:443/prometheus/ ")
        == "https://prom.example:443/prometheus"
    )


def test_bad_signal_template_names_the_template() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(overrides={"queue_depth": "sum(queue{pod=~'{{pod}}'}"})
    assert "--signals" in str(caught.value)
    assert "'queue_depth'" in str(caught.value)


def test_a_valid_override_replaces_a_default() -> None:
    query = 'sum(rate(errors_total{namespace="{{namespace}}"}[1m]))'
    assert settings(overrides={"error_ratio": query}).signal_templates["error_ratio"] == query


def test_settings_are_immutable() -> None:
    config = settings()
    with pytest.raises(Exception, match="frozen"):
        config.log_level = "DEBUG"  # type: ignore[misc]


def test_the_evidence_cache_is_on_unless_switched_off() -> None:
    base = {"STANCH_PROMETHEUS_URL": "http://127.0.0.1:9090", "STANCH_ALL_NAMESPACES": "true"}
    assert resolve({}, base, in_cluster=False, is_tty=False).evidence_cache is True
    off = {**base, "STANCH_EVIDENCE_CACHE": "false"}
    assert resolve({}, off, in_cluster=False, is_tty=False).evidence_cache is False
    assert resolve({"evidence_cache": True}, off, in_cluster=False, is_tty=False).evidence_cache is True
    with pytest.raises(ConfigError) as err:
        resolve({}, {**base, "STANCH_EVIDENCE_CACHE": "sometimes"}, in_cluster=False, is_tty=False)
    assert "STANCH_EVIDENCE_CACHE='sometimes' is not a boolean" in str(err.value)


def test_evidence_cache_caps_take_counts_and_name_the_flag_when_wrong() -> None:
    assert settings().evidence_cache_max_pods == 5000
    assert settings({"evidence_cache_max_pods": "12000"}).evidence_cache_max_pods == 12000
    assert settings(env={"STANCH_EVIDENCE_CACHE_MAX_EVENTS": "50000"}).evidence_cache_max_events == 50000
    for bad in ("lots", "0", "99", "2000000"):
        with pytest.raises(ConfigError) as err:
            settings({"evidence_cache_max_pods": bad})
        message = str(err.value)
        assert "--evidence-cache-max-pods" in message, message
        assert "between 100 and 1,000,000" in message, message


def test_peering_priority_and_lifetime_defaults_and_errors() -> None:
    config = settings({"peering_name": "stanch"})
    assert (config.priority, config.peering_lifetime) == (None, 30.0)  # None: derived per process
    assert settings({"peering_name": "stanch", "priority": "-3"}).priority == -3
    assert settings({"peering_name": "stanch", "peering_lifetime": "2m"}).peering_lifetime == 120.0
    with pytest.raises(ConfigError, match=r"--priority \(or STANCH_PRIORITY\): 'high' is not an integer"):
        settings({"priority": "high"})
    for bad in ("5s", "1h", "soon"):
        with pytest.raises(ConfigError) as err:
            settings({"peering_lifetime": bad})
        assert "--peering-lifetime (or STANCH_PEERING_LIFETIME)" in str(err.value)


def test_peering_refuses_namespace_patterns() -> None:
    # One missing KopfPeering pauses the whole operator; a glob's future namespace would have none.
    for pattern in ("team-*", "!kube-system"):
        with pytest.raises(ConfigError, match="namespace patterns"):
            settings({"all_namespaces": None, "namespaces": ["shop", pattern], "peering_name": "stanch"})
    assert settings({"all_namespaces": None, "namespaces": ["team-*"]}).namespaces == ("team-*",)
