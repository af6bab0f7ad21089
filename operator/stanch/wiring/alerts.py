"""Alertmanager → Incident: the receiver's handler, its Kopf start/stop, and its CLI flags.

Each notification is parsed and mapped by the core (``stanch.core.alerting``), checked against the
namespaces this operator serves and the Deployments that exist, and carried out as a create or a
conditional patch of the group's Incident. A lost race (AlreadyExists, a stale resourceVersion)
plans again from a fresh list, so retries and two replicas receiving the same notification converge
on one Incident. Outages of the API server answer 503, which Alertmanager retries; everything the
sender can fix answers 4xx, which it does not.
"""

from __future__ import annotations

from typing import Any

import kopf
import structlog

from stanch.adapters.alert_receiver import AlertReceiver, ReceiverConfig, ReceiverError, Reply, load_config
from stanch.adapters.kube import KubeClient, KubeError, transient
from stanch.core.alerting.incidents import (
    GROUP_LABEL,
    Create,
    Unchanged,
    Update,
    existing_from,
    group_id,
    plan,
)
from stanch.core.alerting.mapping import LabelMapping, Refusal, Target, group_target, watched
from stanch.core.alerting.payload import PayloadError, WebhookPayload, parse_payload
from stanch.core.settings import Settings
from stanch.wiring.alert_flags import add_arguments, flags_of
from stanch.wiring.handlers.startup import MEMO_SETTINGS
from stanch.wiring.metrics import Metrics

MEMO_RECEIVER_CONFIG = "stanch_alertmanager_receiver_config"
MEMO_RECEIVER = "stanch_alertmanager_receiver"
ATTEMPTS = 5
"""Plans per notification: each lost race costs one; five lost in a row is contention, answered 503."""


def mapping_of(config: Settings) -> LabelMapping:
    return LabelMapping(
        namespace_labels=config.alertmanager_namespace_labels,
        workload_labels=config.alertmanager_workload_labels,
        severity_label=config.alertmanager_severity_label,
    )


def receiver_config(config: Settings) -> ReceiverConfig | None:
    """The receiver's checked files, or None when it is off; ReceiverError names the bad file."""
    address = config.alertmanager_address
    if address is None:
        return None
    assert config.alertmanager_token_file is not None  # settings require it with an address
    return load_config(
        address.host,
        address.port,
        config.alertmanager_token_file,
        config.alertmanager_tls_cert_file,
        config.alertmanager_tls_key_file,
    )


class AlertIntake:
    """Turns one notification's bytes into at most one Incident write."""

    def __init__(self, kube: KubeClient, config: Settings, metrics: Metrics) -> None:
        self.kube = kube
        self.config = config
        self.mapping = mapping_of(config)
        self.metrics = metrics
        self.log = structlog.get_logger("stanch").bind(component="alertmanager")

    def _reply(self, status: int, outcome: str, **body: Any) -> Reply:
        self.metrics.alertmanager_notifications.labels(outcome=outcome).inc()
        return Reply(status, {"status": "ok" if status < 300 else "refused", "outcome": outcome, **body})

    def _refused(self, refusal: Refusal, **fields: Any) -> Reply:
        self.log.warning(
            "alertmanager notification refused",
            status=refusal.status,
            reason=refusal.reason,
            problem=refusal.message,
            **fields,
        )
        return self._reply(refusal.status, refusal.reason, reason=refusal.reason, message=refusal.message)

    async def handle(self, body: bytes) -> Reply:
        try:
            payload = parse_payload(body)
        except PayloadError as exc:
            return self._refused(
                Refusal(400, "InvalidPayload", f"not an Alertmanager webhook payload (version 4): {exc}")
            )
        group = group_id(payload.group_key)
        target = group_target(payload, self.mapping)
        if isinstance(target, Refusal):
            return self._refused(target, group=group, receiver=payload.receiver)
        fields = {"group": group, "target": target.display(), "receiver": payload.receiver}
        if not watched(
            target.namespace, all_namespaces=self.config.all_namespaces, patterns=self.config.namespaces
        ):
            return self._refused(
                Refusal(
                    403,
                    "NamespaceNotWatched",
                    f"namespace {target.namespace!r} is not one this operator serves (--namespace /"
                    " --all-namespaces): route its alerts to the Stanch that watches it",
                ),
                **fields,
            )
        try:
            return await self._file(payload, target, group, fields)
        except KubeError as exc:
            if transient(exc):
                self.log.warning("alertmanager notification deferred", error=str(exc)[:300], **fields)
                return self._reply(503, "ApiUnavailable", message="the Kubernetes API is unavailable; retry")
            if exc.status == 422 or exc.forbidden:
                # The API server (schema, admission, RBAC) refused the Incident: retrying cannot help.
                return self._refused(
                    Refusal(422, "IncidentRefused", f"the API server refused it: {exc.message[:300]}"),
                    **fields,
                )
            raise

    async def _file(
        self, payload: WebhookPayload, target: Target, group: str, fields: dict[str, Any]
    ) -> Reply:
        if await self.kube.get("Deployment", target.name, target.namespace) is None:
            return self._refused(
                Refusal(
                    422,
                    "UnknownTarget",
                    f"no Deployment {target.name!r} in namespace {target.namespace!r}: check the alert's"
                    " labels (--alertmanager-workload-labels says which name the workload)",
                ),
                **fields,
            )
        for _ in range(ATTEMPTS):
            listed = await self.kube.list(
                "Incident", target.namespace, label_selector=f"{GROUP_LABEL}={group}"
            )
            existing = [e for e in map(existing_from, listed) if e is not None]
            decision = plan(payload, target, existing, self.mapping)
            if isinstance(decision, Refusal):
                return self._refused(decision, **fields)
            if isinstance(decision, Unchanged):
                self.log.info(
                    "alertmanager notification changes nothing",
                    incident=decision.name,
                    why=decision.reason,
                    **fields,
                )
                return self._reply(200, "Unchanged", incident=decision.name)
            try:
                if isinstance(decision, Create):
                    await self.kube.create(decision.body)
                    self.log.info(
                        "incident filed from an alert group",
                        incident=decision.name,
                        namespace=target.namespace,
                        alerts=len(payload.alerts),
                        **fields,
                    )
                    return self._reply(201, "Created", incident=decision.name)
                assert isinstance(decision, Update)
                await self.kube.patch(
                    "Incident",
                    decision.name,
                    target.namespace,
                    decision.patch,
                    "merge",
                    resource_version=decision.resource_version,
                )
                self.log.info(
                    "incident updated from its alert group",
                    incident=decision.name,
                    namespace=target.namespace,
                    added=decision.added,
                    resolved=decision.resolves,
                    **fields,
                )
                return self._reply(
                    200, "Resolved" if decision.resolves else "Updated", incident=decision.name
                )
            except KubeError as exc:
                if exc.status != 409 and not exc.conflict:
                    raise
                # Another delivery (a retry, the other replica) wrote first: plan again from what it wrote.
                continue
        self.log.warning("alertmanager notification lost every race", attempts=ATTEMPTS, **fields)
        return self._reply(503, "Contended", message="concurrent updates of the Incident; retry")


def register(registry: kopf.OperatorRegistry, metrics: Metrics) -> None:
    @kopf.on.startup(id="stanch-alertmanager-receiver", registry=registry)
    async def start_receiver(memo: kopf.Memo, **_: Any) -> None:
        config = memo.get(MEMO_RECEIVER_CONFIG)
        if not isinstance(config, ReceiverConfig):
            return
        settings = memo[MEMO_SETTINGS]
        assert isinstance(settings, Settings)
        log = structlog.get_logger("stanch").bind(component="alertmanager")
        kube = KubeClient.from_env()
        counter = metrics.alertmanager_notifications
        receiver = AlertReceiver(
            config,
            AlertIntake(kube, settings, metrics).handle,
            log,
            count=lambda outcome: counter.labels(outcome=outcome).inc(),
        )
        try:
            await receiver.start()
        except OSError as exc:
            await kube.close()
            raise kopf.PermanentError(
                f"the Alertmanager receiver cannot listen on {config.host}:{config.port}: {exc}"
            ) from exc
        memo[MEMO_RECEIVER] = (receiver, kube)
        log.info(
            "alertmanager receiver listening",
            url=f"{config.scheme}://{config.host}:{receiver.port}/api/v1/alerts",
        )

    @kopf.on.cleanup(id="stanch-alertmanager-receiver-stop", registry=registry)
    async def stop_receiver(memo: kopf.Memo, **_: Any) -> None:
        running = memo.get(MEMO_RECEIVER)
        if isinstance(running, tuple):
            receiver, kube = running
            await receiver.stop()
            await kube.close()


__all__ = ["AlertIntake", "ReceiverError", "add_arguments", "flags_of", "receiver_config", "register"]
