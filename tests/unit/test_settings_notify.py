"""Notification settings: ``--notify-url`` / ``STANCH_NOTIFY_URL`` and ``--notify-format`` /
``STANCH_NOTIFY_FORMAT`` are validated with the other settings, and the URL (a webhook URL is its own
credential) never shows up in a repr, an error message or a log line beyond its host."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog

from stanch.core.settings import ConfigError, NotifyFormat, Settings, redact_url, resolve
from stanch.wiring.cli import build_parser, settings_from_args

SECRET = "T0000/B0000/XXXXsecretXXXX"
SLACK = f"https://hooks.example.com/services/{SECRET}"
BASE = {"prometheus_url": "http://127.0.0.1:9090", "all_namespaces": True}


def settings(flags: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Settings:
    return resolve({**BASE, **(flags or {})}, env or {}, in_cluster=False, is_tty=False)


def test_off_by_default_and_off_when_the_variable_is_empty() -> None:
    assert settings().notify_url is None
    assert settings().notify_format is NotifyFormat.GENERIC
    assert settings(env={"STANCH_NOTIFY_URL": "  "}).notify_url is None


def test_environment_still_works_and_flags_win() -> None:
    config = settings(env={"STANCH_NOTIFY_URL": SLACK, "STANCH_NOTIFY_FORMAT": "Slack"})
    assert config.notify_url is not None
    assert config.notify_url.get_secret_value() == SLACK
    assert config.notify_format is NotifyFormat.SLACK
    flagged = settings(
        {"notify_url": "https://other.example.com/h/1", "notify_format": "generic"},
        {"STANCH_NOTIFY_URL": SLACK, "STANCH_NOTIFY_FORMAT": "slack"},
    )
    assert flagged.notify_url is not None
    assert flagged.notify_url.get_secret_value() == "https://other.example.com/h/1"
    assert flagged.notify_format is NotifyFormat.GENERIC


def test_cli_flags_reach_the_settings() -> None:
    args = build_parser("stanch").parse_args(
        [
            "run",
            "-A",
            "--prometheus-url",
            "http://127.0.0.1:9090",
            "--notify-url",
            SLACK,
            "--notify-format",
            "slack",
        ]
    )
    config = settings_from_args(args, {}, is_tty=False)
    assert config.notify_url is not None
    assert config.notify_url.get_secret_value() == SLACK
    assert config.notify_format is NotifyFormat.SLACK


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "must be an http or https URL, not scheme 'file'"),
        ("https:///services/" + SECRET, "has no host"),
        ("https://user:XXXXsecretXXXX@hooks.example.com/x", "must not carry user:password@"),
        (f"https://hooks.example.com:99999/{SECRET}", "is not a URL"),
    ],
)
def test_bad_urls_are_refused_without_quoting_them(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(env={"STANCH_NOTIFY_URL": url})
    message = str(caught.value)
    assert message.startswith("--notify-url (or STANCH_NOTIFY_URL): "), message
    assert problem in message
    assert SECRET not in message
    assert "XXXXsecretXXXX" not in message


def test_bad_format_names_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"--notify-format \(or STANCH_NOTIFY_FORMAT\): 'xml' .* generic or slack"
    ):
        settings(env={"STANCH_NOTIFY_FORMAT": "xml"})


def test_the_secret_never_shows() -> None:
    config = settings(env={"STANCH_NOTIFY_URL": SLACK})
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in config.model_dump_json()
    assert config.notify_target == "https://hooks.example.com/…"
    assert redact_url("http://127.0.0.1:8080/hook?token=abc") == "http://127.0.0.1:8080/…"
    assert redact_url("https://[::1]:443/x") == "https://[::1]:443/…"


def test_the_startup_log_names_the_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import kopf

    from stanch.wiring import runner

    stream = io.StringIO()
    monkeypatch.setattr(runner, "configure_logging", lambda *_: None)
    monkeypatch.setattr(kopf, "run", lambda **_: None)
    monkeypatch.setattr(runner, "preflight", lambda: None)  # no API server here to ask
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(stream),
    )
    try:
        config = settings(
            {"metrics_address": "off"}, {"STANCH_NOTIFY_URL": SLACK, "STANCH_NOTIFY_FORMAT": "slack"}
        )
        assert runner.run_operator(config) == 0
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    starting = next(line for line in lines if line["event"] == "starting")
    assert starting["notify"] == "https://hooks.example.com/…"
    assert starting["notify_format"] == "slack"
    assert SECRET not in stream.getvalue()
