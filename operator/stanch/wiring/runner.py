"""`stanch run`: the operator process. (Not `operator.py`: that name belongs to the standard library.)"""

from __future__ import annotations

from typing import Any

import kopf
import structlog

import stanch
from stanch.adapters import credentials
from stanch.adapters.kube import KubeClient
from stanch.core.settings import Settings
from stanch.wiring.alerts import MEMO_RECEIVER_CONFIG, ReceiverError, receiver_config
from stanch.wiring.handlers import build_registry
from stanch.wiring.handlers.peering import process_priority
from stanch.wiring.handlers.startup import MEMO_SETTINGS
from stanch.wiring.logs import configure_logging
from stanch.wiring.metrics import METRICS, Metrics


def preflight() -> str | None:
    """Resolve the credentials Kopf and Stanch's client will share and ask the API server for its
    version; what is wrong, in one line, or None."""
    from stanch.wiring.console_command import CommandError, run

    try:
        creds = credentials.current()
    except credentials.CredentialsError as exc:
        return str(exc)

    async def version(kube: KubeClient) -> dict[str, Any]:
        return await kube.version()

    try:
        run(version, timeout=10.0)
    except (CommandError, credentials.CredentialsError) as exc:
        return f"{exc} [credentials from {creds.source}]"
    # "source", not "credentials": the redaction would (rightly) drop a field named after credentials.
    structlog.get_logger("stanch").info("api server", server=creds.server, source=creds.source)
    return None


def run_operator(config: Settings, metrics: Metrics = METRICS) -> int:
    """Blocks until the operator stops (SIGTERM/SIGINT). Configuration is already validated."""
    configure_logging(config.log_format, config.log_level)
    log = structlog.get_logger("stanch")
    if config.metrics_address is not None:
        try:
            metrics.serve(config.metrics_address)
        except OSError as exc:
            log.error("metrics endpoint failed", address=str(config.metrics_address), error=str(exc))
            return 1
    try:
        # Checked before Kopf starts: a wrong Secret mount is one line and exit 1, not a crash loop.
        alert_receiver = receiver_config(config)
    except ReceiverError as exc:
        log.error("alertmanager receiver cannot start", problem=str(exc))
        return 1
    problem = preflight()
    if problem is not None:
        # One line and exit 1: Kopf would retry a login without credentials (or against a wrong
        # context) forever, logging a traceback each minute.
        log.error("cannot start", error=problem)
        return 1
    priority = process_priority(config)
    log.info(
        "starting",
        version=stanch.__version__,
        scope="cluster" if config.all_namespaces else list(config.namespaces),
        standalone=config.standalone,
        peering=config.peering_name,
        priority=priority,
        peering_lifetime=None if config.standalone else config.peering_lifetime,
        liveness=config.liveness_endpoint,
        metrics=str(config.metrics_address) if config.metrics_address else None,
        prometheus=config.prometheus.describe(),
        signal_preset=config.signal_preset,
        notify=config.notify_target,
        notify_format=config.notify_format.value if config.notify_url is not None else None,
        alertmanager=str(config.alertmanager_address) if config.alertmanager_address else None,
    )
    memo = kopf.Memo()
    memo[MEMO_SETTINGS] = config
    memo[MEMO_RECEIVER_CONFIG] = alert_receiver
    kopf.run(
        registry=build_registry(metrics),
        memo=memo,
        clusterwide=config.all_namespaces,
        namespaces=config.namespaces,
        standalone=config.standalone,
        peering_name=config.peering_name,
        priority=priority,
        liveness_endpoint=config.liveness_endpoint,
    )
    return 0
