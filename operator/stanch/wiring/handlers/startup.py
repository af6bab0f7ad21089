"""Operator-level activities: credentials and Kopf's own settings."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kopf

import stanch
from stanch.adapters import credentials
from stanch.core.settings import Settings

FINALIZER = f"{stanch.GROUP}/finalizer"
MEMO_SETTINGS = "stanch_settings"


def apply_kopf_settings(kopf_settings: kopf.OperatorSettings, config: Settings, instance: str) -> None:
    """Kopf's knobs, each set for a reason rather than left to a default that may move."""
    # Events only from explicit kopf.info()/kopf.warn() calls, which we word (and redact) ourselves.
    # Mirroring every log line as an Event would flood `kubectl describe` and etcd alike.
    kopf_settings.posting.enabled = True
    kopf_settings.posting.loggers = False
    kopf_settings.posting.level = logging.INFO
    kopf_settings.posting.reporting_component = "stanch"
    kopf_settings.posting.reporting_instance = instance

    # Kopf's bookkeeping lives in status, next to the state it describes. Annotations would be
    # visible to GitOps tools that own the Incident/Policy manifests and survive status resets
    # (backups, re-creation), leaving Kopf convinced an object was handled when its status is
    # empty. The CRDs keep `status.kopf` with x-kubernetes-preserve-unknown-fields for this.
    kopf_settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    kopf_settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field="status.kopf.lastHandledConfiguration"
    )
    kopf_settings.persistence.finalizer = FINALIZER

    # Watches silently stall behind some load balancers; bounded timeouts make them reconnect.
    kopf_settings.watching.server_timeout = 270
    kopf_settings.watching.client_timeout = 300
    kopf_settings.watching.connect_timeout = 30
    kopf_settings.networking.request_timeout = 60
    kopf_settings.networking.connect_timeout = 10

    kopf_settings.peering.standalone = config.standalone
    # The longest a crashed active replica leaves the cluster unserved (docs/architecture.md).
    kopf_settings.peering.lifetime = round(config.peering_lifetime)
    if config.peering_name is not None:
        kopf_settings.peering.name = config.peering_name
        kopf_settings.peering.mandatory = True


async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo[MEMO_SETTINGS]
    assert isinstance(config, Settings)
    instance = os.environ.get("POD_NAME") or socket.gethostname()
    apply_kopf_settings(settings, config, instance)


async def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """Kopf connects with exactly the credentials Stanch's own client uses (``credentials.current``:
    kubectl's order, exec plugins included), so the two never reach different API servers. Kopf
    calls this again on a 401 or once ``expiration`` passes (an exec plugin's token)."""
    try:
        info = await credentials.current().login_info()
    except credentials.CredentialsError as exc:
        raise kopf.LoginError(str(exc)) from None
    return kopf.ConnectionInfo(
        server=info.server,
        ca_path=info.ca_path,
        ca_data=info.ca_data,
        insecure=info.insecure,
        username=info.username,
        password=info.password,
        scheme="Bearer" if info.token else None,
        token=info.token,
        certificate_path=info.certificate_path,
        certificate_data=info.certificate_data,
        private_key_path=info.private_key_path,
        private_key_data=info.private_key_data,
        default_namespace=info.namespace,
        expiration=info.expiration,
        trust_env=settings.networking.trust_env,
    )


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.login(id="stanch-login", registry=registry)(login)
    kopf.on.startup(id="stanch-configure-kopf", registry=registry)(configure)
