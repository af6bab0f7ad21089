"""The operator's configuration: one validated model, resolved from flags, then STANCH_* variables,
then defaults.

Pure on purpose: the environment and the terminal/in-cluster facts are passed in, so every rule here
is testable without touching the process. Every error names the flag and the variable that set the
value and says how to fix it, because the reader is an admin looking at a crash-looping Pod.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator, model_validator

from stanch.core.alerting.mapping import (
    DEFAULT_NAMESPACE_LABELS,
    DEFAULT_SEVERITY_LABEL,
    DEFAULT_WORKLOAD_LABELS,
    parse_label_names,
)
from stanch.core.investigation.presets import DEFAULT_PRESET, PRESETS, PresetError, preset_templates
from stanch.core.investigation.signals import DEFAULT_SIGNAL_TEMPLATES, validate_templates
from stanch.core.models.common import parse_duration


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class NotifyFormat(StrEnum):
    """Payload of the notification webhook."""

    GENERIC = "generic"
    SLACK = "slack"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LIVENESS_PATH = "/healthz"
LIVENESS_PORT = 8080
METRICS_PORT = 8081
ALERTMANAGER_PORT = 8082
"""The Alertmanager receiver's port when ``--alertmanager-address`` names none (docs/alertmanager.md)."""
OFF = "off"
DEFAULT_INVESTIGATION_INTERVAL = 30.0
MIN_INVESTIGATION_INTERVAL = 1.0
MAX_INVESTIGATION_INTERVAL = 3600.0
# Kopf refreshes a peer's record 5-10 s before it expires, so a lifetime under 15 s leaves no margin
# for a slow PATCH; past 10 minutes a dead replica's Mitigations would go unwatched for too long.
DEFAULT_PEERING_LIFETIME = 30.0
MIN_PEERING_LIFETIME = 15.0
MAX_PEERING_LIFETIME = 600.0


@dataclass(frozen=True)
class Option:
    """Where a setting comes from, for error messages and `--help`."""

    field: str
    flag: str
    env: str

    def describe(self) -> str:
        return f"{self.flag} (or {self.env})"


OPTIONS: Mapping[str, Option] = {
    o.field: o
    for o in (
        Option("prometheus_url", "--prometheus-url", "STANCH_PROMETHEUS_URL"),
        Option(
            "prometheus_bearer_token_file",
            "--prometheus-bearer-token-file",
            "STANCH_PROMETHEUS_BEARER_TOKEN_FILE",
        ),
        Option("prometheus_ca_file", "--prometheus-ca-file", "STANCH_PROMETHEUS_CA_FILE"),
        Option("prometheus_headers", "--prometheus-header", "STANCH_PROMETHEUS_HEADERS"),
        Option("prometheus_username", "--prometheus-username", "STANCH_PROMETHEUS_USERNAME"),
        Option("prometheus_password_file", "--prometheus-password-file", "STANCH_PROMETHEUS_PASSWORD_FILE"),
        Option(
            "prometheus_insecure_skip_tls_verify",
            "--prometheus-insecure-skip-tls-verify",
            "STANCH_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY",
        ),
        Option("signal_preset", "--signal-preset", "STANCH_SIGNAL_PRESET"),
        Option("workload_label", "--workload-label", "STANCH_WORKLOAD_LABEL"),
        Option("namespaces", "--namespace", "STANCH_NAMESPACES"),
        Option("all_namespaces", "--all-namespaces", "STANCH_ALL_NAMESPACES"),
        Option("standalone", "--standalone", "STANCH_STANDALONE"),
        Option("peering_name", "--peering", "STANCH_PEERING"),
        Option("priority", "--priority", "STANCH_PRIORITY"),
        Option("peering_lifetime", "--peering-lifetime", "STANCH_PEERING_LIFETIME"),
        Option("liveness_endpoint", "--liveness", "STANCH_LIVENESS"),
        Option("metrics_address", "--metrics-address", "STANCH_METRICS_ADDRESS"),
        Option("log_format", "--log-format", "STANCH_LOG_FORMAT"),
        Option("log_level", "--log-level", "STANCH_LOG_LEVEL"),
        Option("signal_templates", "--signals", "STANCH_SIGNALS_FILE"),
        Option("investigation_interval", "--investigation-interval", "STANCH_INVESTIGATION_INTERVAL"),
        Option("notify_url", "--notify-url", "STANCH_NOTIFY_URL"),
        Option("notify_format", "--notify-format", "STANCH_NOTIFY_FORMAT"),
        Option("evidence_cache", "--evidence-cache", "STANCH_EVIDENCE_CACHE"),
        Option("evidence_cache_max_pods", "--evidence-cache-max-pods", "STANCH_EVIDENCE_CACHE_MAX_PODS"),
        Option(
            "evidence_cache_max_events", "--evidence-cache-max-events", "STANCH_EVIDENCE_CACHE_MAX_EVENTS"
        ),
        # --- the Alertmanager receiver (docs/alertmanager.md) ---
        Option("alertmanager_address", "--alertmanager-address", "STANCH_ALERTMANAGER_ADDRESS"),
        Option("alertmanager_token_file", "--alertmanager-token-file", "STANCH_ALERTMANAGER_TOKEN_FILE"),
        Option(
            "alertmanager_tls_cert_file", "--alertmanager-tls-cert-file", "STANCH_ALERTMANAGER_TLS_CERT_FILE"
        ),
        Option(
            "alertmanager_tls_key_file", "--alertmanager-tls-key-file", "STANCH_ALERTMANAGER_TLS_KEY_FILE"
        ),
        Option(
            "alertmanager_namespace_labels",
            "--alertmanager-namespace-labels",
            "STANCH_ALERTMANAGER_NAMESPACE_LABELS",
        ),
        Option(
            "alertmanager_workload_labels",
            "--alertmanager-workload-labels",
            "STANCH_ALERTMANAGER_WORKLOAD_LABELS",
        ),
        Option(
            "alertmanager_severity_label",
            "--alertmanager-severity-label",
            "STANCH_ALERTMANAGER_SEVERITY_LABEL",
        ),
    )
}


class ConfigError(ValueError):
    """A configuration value the operator refuses to start with. `str()` is the whole message."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        option = OPTIONS.get(field)
        where = option.describe() if option else field
        super().__init__(f"{where}: {problem}")


# Kopf accepts namespace globs (`team-*`) and exclusions (`!kube-system`); plain names are DNS labels.
_NAMESPACE_PATTERN = re.compile(r"^!?[a-z0-9*?]([-a-z0-9*?]{0,61}[a-z0-9*?])?$")
_PEERING_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class HostPort(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# RFC 9110 token characters: anything else cannot be a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the client itself or by a dedicated option: a header would silently fight them.
_RESERVED_HEADERS = {
    "authorization": "use --prometheus-bearer-token-file or --prometheus-username/--prometheus-password-file",
    "host": "set the host in --prometheus-url",
    "content-length": "the client sets it",
    "transfer-encoding": "the client sets it",
    "connection": "the client sets it",
    "user-agent": "the client sets it",
}


def parse_header(field: str, raw: str) -> tuple[str, str]:
    """``Name: value`` as a header pair; the error never repeats the value (it may be a credential)."""
    name, sep, value = raw.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ConfigError(field, f"{name or raw[:40]!r} is not 'Name: value'; e.g. 'X-Scope-OrgID: team-a'")
    if not _HEADER_NAME.match(name):
        raise ConfigError(field, f"{name[:60]!r} is not a valid header name; e.g. X-Scope-OrgID")
    if name.lower() in _RESERVED_HEADERS:
        raise ConfigError(field, f"header {name} is not settable here: {_RESERVED_HEADERS[name.lower()]}")
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(field, f"the value of header {name} contains a line break or NUL")
    return name, value


@dataclass(frozen=True)
class PrometheusConnection:
    """How to reach Prometheus: everything the adapter needs, and nothing it logs but the URL.

    File options are paths, read by the adapter on every request (a rotated token is picked up
    without a restart, as Prometheus itself does with ``credentials_file``)."""

    url: str
    bearer_token_file: str | None = None
    ca_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password_file: str | None = None
    insecure_skip_tls_verify: bool = False

    def describe(self) -> dict[str, object]:
        """For the start-up log line: which mechanisms are on, never a value but the URL's."""
        return {
            "url": self.url,
            "auth": "bearer" if self.bearer_token_file else "basic" if self.username else None,
            "ca_file": self.ca_file,
            "headers": [name for name, _ in self.headers],
            "insecure_skip_tls_verify": self.insecure_skip_tls_verify or None,
        }


MIN_CACHE_CAP = 100
MAX_CACHE_CAP = 1_000_000


class Settings(BaseModel):
    """Everything `stanch run` needs, already checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus_url: str
    prometheus_bearer_token_file: str | None = None
    """A file holding the bearer token for Prometheus (e.g. a mounted Secret or projected
    ServiceAccount token); re-read on every request so a rotation needs no restart."""
    prometheus_ca_file: str | None = None
    """PEM bundle that signs Prometheus's certificate (https URLs only)."""
    prometheus_headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers, e.g. ``X-Scope-OrgID`` for Mimir, Cortex or Thanos tenancy. Values are
    never logged (some gateways take an API key here)."""
    prometheus_username: str | None = None
    prometheus_password_file: str | None = None
    """Basic auth: the user name and a file holding the password, re-read on every request."""
    prometheus_insecure_skip_tls_verify: bool = False
    """Do not check Prometheus's certificate. For a test cluster only: anyone on the path can read
    the token."""
    signal_preset: str = DEFAULT_PRESET
    """Which metrics the signal templates read (``stanch.core.investigation.presets``)."""
    workload_label: str | None = None
    """The label of the request metrics that holds the workload's name; None: the preset's own."""
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    standalone: bool = True
    peering_name: str | None = None
    priority: int | None = None
    """Kopf peering priority; None: derived per process at start, the oldest replica highest
    (see ``stanch.wiring.peering``)."""
    peering_lifetime: float = DEFAULT_PEERING_LIFETIME
    """Seconds a replica's peering record stays valid without a refresh: the longest a killed
    active replica leaves the cluster unserved before a standby resumes."""
    liveness_endpoint: str | None = None
    metrics_address: HostPort | None = None
    log_format: LogFormat = LogFormat.JSON
    log_level: str = "INFO"
    signal_templates: dict[str, str] = dict(DEFAULT_SIGNAL_TEMPLATES)
    investigation_interval: float = DEFAULT_INVESTIGATION_INTERVAL
    """Seconds between refreshes of an open Incident (changes to its workload refresh it sooner)."""
    notify_url: SecretStr | None = None
    """Webhook for decisions that need a human; off when unset. A secret (a Slack webhook URL is its
    own credential): never logged, printed or put in an error message; see :func:`redact_url`."""
    notify_format: NotifyFormat = NotifyFormat.GENERIC
    """``generic`` JSON or a ``slack`` incoming-webhook payload."""
    evidence_cache: bool = True
    """Keep the watched namespaces' pods and Events in memory (list once, then watch) so a refresh
    reads memory instead of listing them; off: list them on every refresh."""
    evidence_cache_max_pods: int = 5_000
    """Pods the cache may hold, all watched namespaces together; beyond it, pods are listed."""
    evidence_cache_max_events: int = 20_000
    """Events the cache may hold (Warnings, and Deployment/ReplicaSet Events), all namespaces together."""
    # --- the Alertmanager receiver (docs/alertmanager.md) ---
    alertmanager_address: HostPort | None = None
    """Serve Alertmanager's webhook here (POST /api/v1/alerts); off when unset."""
    alertmanager_token_file: str | None = None
    """File holding the bearer token Alertmanager must send (a mounted Secret); required with the
    receiver. Read on every request, so a rotated Secret takes effect without a restart."""
    alertmanager_tls_cert_file: str | None = None
    """Serve the receiver over TLS with this certificate (PEM) and the key below."""
    alertmanager_tls_key_file: str | None = None
    """The TLS certificate's private key (PEM)."""
    alertmanager_namespace_labels: tuple[str, ...] = DEFAULT_NAMESPACE_LABELS
    """Alert labels naming the target's namespace, the first one set wins."""
    alertmanager_workload_labels: tuple[str, ...] = DEFAULT_WORKLOAD_LABELS
    """Alert labels naming the target Deployment, the first one set wins."""
    alertmanager_severity_label: str = DEFAULT_SEVERITY_LABEL
    """Alert label mapped onto the Incident's severity (critical → SEV1 … info → SEV4)."""

    @field_validator("alertmanager_namespace_labels", "alertmanager_workload_labels", mode="before")
    @classmethod
    def _alert_labels(cls, value: Any) -> tuple[str, ...]:
        return parse_label_names(value)

    @field_validator("alertmanager_severity_label", mode="before")
    @classmethod
    def _severity_label(cls, value: Any) -> str:
        names = parse_label_names(str(value))
        if len(names) != 1:
            raise ValueError(f"{value!r} names {len(names)} labels; give one, e.g. severity")
        return names[0]

    @model_validator(mode="after")
    def _alertmanager(self) -> Settings:
        if self.alertmanager_address is not None and not self.alertmanager_token_file:
            raise ConfigError(
                "alertmanager_token_file",
                "the Alertmanager receiver needs a bearer token: mount a Secret and pass its file with"
                " --alertmanager-token-file (Alertmanager sends it with http_config.authorization)",
            )
        if bool(self.alertmanager_tls_cert_file) != bool(self.alertmanager_tls_key_file):
            raise ConfigError(
                "alertmanager_tls_cert_file",
                "TLS needs both --alertmanager-tls-cert-file and --alertmanager-tls-key-file (e.g. the"
                " tls.crt and tls.key of a kubernetes.io/tls Secret), or neither",
            )
        return self

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url(cls, value: str) -> str:
        return check_prometheus_url(value)

    @field_validator("prometheus_bearer_token_file", "prometheus_ca_file", "prometheus_password_file")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or "\0" in value:
            raise ValueError(
                "is not a file path; give the path of the mounted file, e.g. /etc/prometheus/token"
            )
        return value.strip()

    @field_validator("signal_preset", mode="before")
    @classmethod
    def _signal_preset(cls, value: Any) -> str:
        name = str(value).strip().lower()
        if name not in PRESETS:
            raise ValueError(f"{value!r} is not a signal preset; use one of {', '.join(PRESETS)}")
        return name

    @property
    def prometheus(self) -> PrometheusConnection:
        return PrometheusConnection(
            url=self.prometheus_url,
            bearer_token_file=self.prometheus_bearer_token_file,
            ca_file=self.prometheus_ca_file,
            headers=self.prometheus_headers,
            username=self.prometheus_username,
            password_file=self.prometheus_password_file,
            insecure_skip_tls_verify=self.prometheus_insecure_skip_tls_verify,
        )

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ns in value:
            if not _NAMESPACE_PATTERN.match(ns):
                raise ValueError(
                    f"{ns!r} is not a namespace name or pattern; use a DNS label such as 'shop',"
                    " a glob such as 'team-*', or an exclusion such as '!kube-system'"
                )
        return value

    @field_validator("peering_name")
    @classmethod
    def _peering_name(cls, value: str | None) -> str | None:
        if value is not None and not _PEERING_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid peering object name; use a DNS label such as 'stanch'"
            )
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> int | None:
        if value is None:
            return None
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an integer; e.g. --priority 100") from None

    @field_validator("peering_lifetime", mode="before")
    @classmethod
    def _peering_lifetime(cls, value: Any) -> float:
        seconds = value if isinstance(value, int | float) else _duration_seconds(str(value))
        if not MIN_PEERING_LIFETIME <= seconds <= MAX_PEERING_LIFETIME:
            raise ValueError(
                f"{value!r} is out of range; use a duration between {MIN_PEERING_LIFETIME:g}s"
                f" and {MAX_PEERING_LIFETIME / 60:g}m, e.g. 30s"
            )
        return float(seconds)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        level = str(value).upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("investigation_interval", mode="before")
    @classmethod
    def _investigation_interval(cls, value: Any) -> float:
        seconds = value if isinstance(value, int | float) else _duration_seconds(str(value))
        if not MIN_INVESTIGATION_INTERVAL <= seconds <= MAX_INVESTIGATION_INTERVAL:
            raise ValueError(
                f"{value!r} is out of range; use a duration between {MIN_INVESTIGATION_INTERVAL:g}s"
                f" and {MAX_INVESTIGATION_INTERVAL / 60:g}m, e.g. 30s"
            )
        return float(seconds)

    @field_validator("evidence_cache_max_pods", "evidence_cache_max_events", mode="before")
    @classmethod
    def _cache_cap(cls, value: Any) -> int:
        try:
            number = int(str(value).replace("_", ""))
        except ValueError:
            number = -1
        if not MIN_CACHE_CAP <= number <= MAX_CACHE_CAP:
            raise ValueError(
                f"{value!r} is not a count between {MIN_CACHE_CAP:,} and {MAX_CACHE_CAP:,}; size it to the"
                " operator's memory limit (about 40 KiB a pod, 2.5 KiB an Event), e.g. 10000"
            )
        return number

    @field_validator("notify_url", mode="before")
    @classmethod
    def _notify_url(cls, value: Any) -> SecretStr | None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or not str(raw).strip():
            return None
        return SecretStr(check_notify_url(str(raw)))

    @field_validator("notify_format", mode="before")
    @classmethod
    def _notify_format(cls, value: Any) -> NotifyFormat:
        text = str(value).strip().lower()
        if text not in {f.value for f in NotifyFormat}:
            raise ValueError(f"{value!r} is not a notification format; use generic or slack")
        return NotifyFormat(text)

    @property
    def notify_target(self) -> str | None:
        """The webhook for logs and messages: scheme and host only."""
        return redact_url(self.notify_url.get_secret_value()) if self.notify_url is not None else None

    @field_validator("signal_templates")
    @classmethod
    def _signal_templates(cls, value: dict[str, str]) -> dict[str, str]:
        validate_templates(value)
        return value

    @model_validator(mode="after")
    def _prometheus_access(self) -> Settings:
        if self.prometheus_bearer_token_file and (self.prometheus_username or self.prometheus_password_file):
            raise ConfigError(
                "prometheus_bearer_token_file",
                "a bearer token and basic auth exclude each other; pass only one of them",
            )
        if bool(self.prometheus_username) != bool(self.prometheus_password_file):
            raise ConfigError(
                "prometheus_password_file" if self.prometheus_username else "prometheus_username",
                "basic auth needs both --prometheus-username and --prometheus-password-file",
            )
        if self.prometheus_ca_file and self.prometheus_insecure_skip_tls_verify:
            raise ConfigError(
                "prometheus_insecure_skip_tls_verify",
                "--prometheus-ca-file and --prometheus-insecure-skip-tls-verify exclude each other;"
                " keep the CA and drop the skip",
            )
        tls_only = [
            OPTIONS[f].flag
            for f in ("prometheus_ca_file", "prometheus_insecure_skip_tls_verify")
            if getattr(self, f)
        ]
        if tls_only and not self.prometheus_url.startswith("https://"):
            raise ConfigError(
                "prometheus_url", f"{' and '.join(tls_only)} need an https:// URL; the URL is plain http"
            )
        return self

    @model_validator(mode="after")
    def _scope(self) -> Settings:
        if self.all_namespaces and self.namespaces:
            raise ConfigError(
                "namespaces", "--namespace and --all-namespaces exclude each other; pass only one of them"
            )
        if not self.all_namespaces and not self.namespaces:
            raise ConfigError(
                "namespaces",
                "no scope given; pass --all-namespaces, or --namespace NS once per namespace to watch",
            )
        if self.peering_name is not None and self.standalone:
            raise ConfigError(
                "peering_name", "--peering needs --no-standalone (peering coordinates several replicas)"
            )
        if self.peering_name is not None and any(_is_pattern(ns) for ns in self.namespaces):
            # Kopf keeps one KopfPeering per watched namespace and pauses the whole operator while
            # any of them is missing: a namespace created later that matches the glob would
            # silently stop every replica.
            raise ConfigError(
                "peering_name",
                "--peering with namespace patterns: every namespace a pattern matches needs its own"
                " KopfPeering, and one missing pauses the operator everywhere; list the namespaces by"
                " name, or use --all-namespaces (one ClusterKopfPeering)",
            )
        return self


def _is_pattern(namespace: str) -> bool:
    return any(c in namespace for c in "*?!")


def check_prometheus_url(value: str) -> str:
    fix = "use the base URL of the Prometheus API, e.g. http://prometheus.monitoring.svc:9090"
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a URL ({exc}); {fix}") from None
    if parts.scheme not in ("http", "https"):
        scheme = parts.scheme or "none"
        raise ValueError(f"{value!r} has scheme {scheme!r}, only http and https are supported; {fix}")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host; {fix}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials inside the URL are refused, they would end up in logs and status;"
            " remove the user:password@ part"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} has a query or fragment; {fix}")
    if port == 0:
        raise ValueError(f"{value!r} has port 0; {fix}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def check_notify_url(value: str) -> str:
    """The webhook URL, stripped, if it is a plain http(s) URL with a host. Messages never quote the
    value: its path or query usually is the credential."""
    try:
        parts = urllib.parse.urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("is not a URL; use the webhook's https URL, e.g. from a Secret") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http or https URL, not scheme {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError("has no host; use the webhook's full https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry user:password@; the webhook's secret belongs in its path or token")
    return value.strip()


def redact_url(url: str) -> str:
    """``https://hooks.example.com/…``: scheme, host and port only. Webhook URLs carry their secret in
    the path or query (a Slack webhook URL is the credential), so nothing after the host is shown."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or '?'}://{host}{port}/…"


def parse_host_port(field: str, value: str, default_port: int) -> HostPort:
    """`HOST:PORT`, `:PORT` or `[IPv6]:PORT`."""
    example = f"127.0.0.1:{default_port}"
    raw = value.strip()
    if "://" in raw:
        raw = raw.split("://", 1)[1]
    try:
        parts = urllib.parse.urlsplit("//" + raw)
        port = parts.port
    except ValueError:
        raise ConfigError(field, f"{value!r} has an invalid port; use HOST:PORT such as {example}") from None
    if parts.path not in ("", "/") and field != "liveness_endpoint":
        raise ConfigError(field, f"{value!r} has a path; use HOST:PORT such as {example}")
    if port is None or port == 0:
        raise ConfigError(field, f"{value!r} has no port; use HOST:PORT such as {example}")
    return HostPort(host=parts.hostname or "0.0.0.0", port=port)  # noqa: S104 - ':PORT' means all


def liveness_url(value: str) -> str:
    """Kopf's liveness endpoint as the URL Kopf wants: http://HOST:PORT/PATH."""
    raw = value.strip()
    scheme = "http"
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        if scheme != "http":
            raise ConfigError("liveness_endpoint", f"{value!r}: Kopf serves liveness over http only")
    hostport = parse_host_port("liveness_endpoint", raw, LIVENESS_PORT)
    path = urllib.parse.urlsplit("//" + raw).path or LIVENESS_PATH
    return f"{scheme}://{hostport}{path}"


def _duration_seconds(text: str) -> float:
    try:
        return parse_duration(text.strip()).total_seconds()
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30s, 2m or 1m30s") from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _env_bool(field: str, env: Mapping[str, str]) -> bool | None:
    name = OPTIONS[field].env
    if name not in env:
        return None
    raw = env[name].strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(field, f"{name}={env[name]!r} is not a boolean; use true or false")


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    in_cluster: bool,
    is_tty: bool,
    signal_overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over STANCH_* variables, which win over defaults. `flags` holds None for "not given".

    Defaults depend on where we run: inside a Pod the probes and Prometheus must reach the
    endpoints, so they bind all interfaces; on a laptop they stay on loopback.
    """

    def pick(field: str) -> Any:
        value = flags.get(field)
        if value is not None:
            return value
        return env.get(OPTIONS[field].env)

    prometheus_url = pick("prometheus_url")
    if not prometheus_url:
        raise ConfigError(
            "prometheus_url",
            "is required: the Prometheus that holds the workloads' metrics,"
            " e.g. --prometheus-url http://prometheus.monitoring.svc:9090",
        )

    namespaces: tuple[str, ...] = tuple(flags.get("namespaces") or ())
    if not namespaces and OPTIONS["namespaces"].env in env:
        namespaces = tuple(ns.strip() for ns in env[OPTIONS["namespaces"].env].split(",") if ns.strip())

    all_namespaces = flags.get("all_namespaces")
    if all_namespaces is None:
        all_namespaces = _env_bool("all_namespaces", env)
    standalone = flags.get("standalone")
    if standalone is None:
        standalone = _env_bool("standalone", env)
    peering_name = pick("peering_name") or None
    if standalone is None:
        # Asking for a peering name is asking for peering: don't make the user say it twice.
        standalone = peering_name is None

    any_host = "0.0.0.0"  # noqa: S104 - in a Pod the kubelet and Prometheus connect from outside
    default_host = any_host if in_cluster else "127.0.0.1"
    liveness_raw = pick("liveness_endpoint") or f"{default_host}:{LIVENESS_PORT}"
    liveness = None if liveness_raw.strip().lower() == OFF else liveness_url(liveness_raw)
    metrics_raw = pick("metrics_address") or f"{default_host}:{METRICS_PORT}"
    metrics = (
        None
        if metrics_raw.strip().lower() == OFF
        else parse_host_port("metrics_address", metrics_raw, METRICS_PORT)
    )

    log_format = pick("log_format") or (LogFormat.CONSOLE if is_tty and not in_cluster else LogFormat.JSON)
    if str(log_format) not in {f.value for f in LogFormat}:
        raise ConfigError("log_format", f"{log_format!r} is not a log format; use json or console")

    preset = pick("signal_preset") or DEFAULT_PRESET
    workload_label = pick("workload_label") or None
    try:
        templates = preset_templates(str(preset), workload_label)
    except PresetError as exc:
        field = "signal_preset" if str(preset).strip().lower() not in PRESETS else "workload_label"
        raise ConfigError(field, str(exc)) from None
    templates.update(signal_overrides or {})

    headers_raw: list[str] = list(flags.get("prometheus_headers") or ())
    if not headers_raw and OPTIONS["prometheus_headers"].env in env:
        env_headers = env[OPTIONS["prometheus_headers"].env]
        headers_raw = [h for h in re.split(r"[\n,]", env_headers) if h.strip()]
    headers = tuple(parse_header("prometheus_headers", h) for h in headers_raw)
    insecure = flags.get("prometheus_insecure_skip_tls_verify")
    if insecure is None:
        insecure = _env_bool("prometheus_insecure_skip_tls_verify", env)

    candidate: dict[str, Any] = {
        "prometheus_url": prometheus_url,
        "namespaces": namespaces,
        "all_namespaces": bool(all_namespaces),
        "standalone": standalone,
        "peering_name": peering_name,
        "priority": pick("priority"),
        "liveness_endpoint": liveness,
        "metrics_address": metrics,
        "log_format": LogFormat(str(log_format)),
        "log_level": pick("log_level") or "INFO",
        "signal_templates": templates,
        "signal_preset": preset,
        "workload_label": workload_label,
        "prometheus_bearer_token_file": pick("prometheus_bearer_token_file") or None,
        "prometheus_ca_file": pick("prometheus_ca_file") or None,
        "prometheus_headers": headers,
        "prometheus_username": pick("prometheus_username") or None,
        "prometheus_password_file": pick("prometheus_password_file") or None,
        "prometheus_insecure_skip_tls_verify": bool(insecure),
    }
    lifetime = pick("peering_lifetime")
    if lifetime is not None:
        candidate["peering_lifetime"] = lifetime
    interval = pick("investigation_interval")
    if interval is not None:
        candidate["investigation_interval"] = interval
    # An empty STANCH_NOTIFY_URL (e.g. an optional Secret key that is not set) means off.
    candidate["notify_url"] = pick("notify_url") or None
    notify_format = pick("notify_format")
    if notify_format:
        candidate["notify_format"] = notify_format
    for cap in ("evidence_cache_max_pods", "evidence_cache_max_events"):
        value = pick(cap)
        if value is not None:
            candidate[cap] = value
    evidence_cache = flags.get("evidence_cache")
    if evidence_cache is None:
        evidence_cache = _env_bool("evidence_cache", env)
    if evidence_cache is not None:
        candidate["evidence_cache"] = evidence_cache
    # --- the Alertmanager receiver: off unless an address is given ---
    alertmanager_raw = str(pick("alertmanager_address") or "").strip()
    if alertmanager_raw and alertmanager_raw.lower() != OFF:
        candidate["alertmanager_address"] = parse_host_port(
            "alertmanager_address", alertmanager_raw, ALERTMANAGER_PORT
        )
    for field in (
        "alertmanager_token_file",
        "alertmanager_tls_cert_file",
        "alertmanager_tls_key_file",
        "alertmanager_namespace_labels",
        "alertmanager_workload_labels",
        "alertmanager_severity_label",
    ):
        value = pick(field)
        if value:
            candidate[field] = value
    try:
        return Settings(**candidate)
    except ValidationError as exc:
        raise _first_config_error(exc) from None


def _first_config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "settings"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return cause
    problem = str(cause) if cause is not None else error["msg"]
    return ConfigError(field, problem)
