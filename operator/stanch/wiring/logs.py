"""Logging: one pipeline for our structlog calls and for every stdlib logger (Kopf, aiohttp, ...).

JSON when a machine reads the output (in a Pod, or piped), readable lines in a terminal. Every line
passes through redaction last, after exceptions are rendered into text, so a credential quoted in a
traceback is caught too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from stanch.core.redaction import redact, redact_text
from stanch.core.settings import LogFormat

# Kinds whose name is bound under its own key, so `incident=checkout-5xx` finds every line of an
# investigation in the log store whatever object the line is about.
_NAME_KEYS = {"Incident": "incident", "Mitigation": "mitigation", "MitigationPolicy": "policy"}


def object_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The identifying fields of a Kubernetes object (or of Kopf's reference to one)."""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else body  # Kopf's k8s_ref is flat
    kind = body.get("kind")
    fields: dict[str, Any] = {
        "kind": kind,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    if kind in _NAME_KEYS and meta.get("name"):
        fields[_NAME_KEYS[kind]] = meta.get("name")
    if kind == "Mitigation":
        spec = body.get("spec")
        ref = spec.get("incidentRef") if isinstance(spec, Mapping) else None
        incident = ref.get("name") if isinstance(ref, Mapping) else ref
        if isinstance(incident, str) and incident:
            fields["incident"] = incident
    return {k: v for k, v in fields.items() if v is not None}


def bind_object(body: Mapping[str, Any], **extra: Any) -> structlog.stdlib.BoundLogger:
    """A logger bound to one object: every line it writes carries namespace, name, uid and kind."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("stanch").bind(**object_fields(body), **extra)
    return logger


def _kopf_object_ref(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Kopf's per-object loggers carry the object in `record.k8s_ref`; lift it into fields."""
    record = event_dict.get("_record")
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping):
        for key, value in object_fields(ref).items():
            event_dict.setdefault(key, value)
    return event_dict


def _redact_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    redacted: EventDict = redact(dict(event_dict))
    return redacted


def _redact_rendered(renderer: Processor) -> Processor:
    def render(logger: WrappedLogger, name: str, event_dict: EventDict) -> Any:
        out = renderer(logger, name, event_dict)
        return redact_text(out) if isinstance(out, str) else out

    return render


class RedactingFilter(logging.Filter):
    """Redacts a stdlib record's message in place, before any handler (Kopf's Event poster included)
    sees it. Attached to loggers, not handlers, so it runs once for all of their handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        return True


def configure_logging(
    log_format: LogFormat, level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install the pipeline on the root logger; returns the handler (tests remove it again)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if log_format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        finish: list[Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_fields,
            _redact_rendered(renderer),
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        finish = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_fields,
            _redact_rendered(renderer),
        ]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _kopf_object_ref],
        processors=finish,
    )
    # stdout: several log pipelines classify everything on stderr as an error.
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_stanch", False):
            root.removeHandler(old)
    handler._stanch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Kopf's Event poster hangs off `kopf.objects`; redact before it can post a line as an Event.
    objects_logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, RedactingFilter) for f in objects_logger.filters):
        objects_logger.addFilter(RedactingFilter())
    # One line per probe every few seconds drowns everything else.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # HTTP clients log every request at INFO (a dozen per refresh, with full query URLs); our own
    # request counters and error logs say what matters.
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return handler


def remove_logging(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
