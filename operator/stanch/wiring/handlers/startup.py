"""Operator-level activities: credentials and Kopf's own settings."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import kopf

import stanch
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


def login(settings: kopf.OperatorSettings, **kwargs: Any) -> kopf.ConnectionInfo:
    """An explicit KUBECONFIG wins (local runs, tests); then the Pod's ServiceAccount; then
    ~/.kube/config. Kopf's implicit fallbacks only exist in its default registry, not in ours."""
    if os.environ.get("KUBECONFIG"):
        info = kopf.login_with_kubeconfig(settings=settings, **kwargs)
    else:
        info = kopf.login_with_service_account(settings=settings, **kwargs) or kopf.login_with_kubeconfig(
            settings=settings, **kwargs
        )
    if info is None:
        raise kopf.LoginError(
            "no Kubernetes credentials: set KUBECONFIG, create ~/.kube/config, or run in a Pod with a"
            " ServiceAccount token"
        )
    return info


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.login(id="stanch-login", registry=registry)(login)
    kopf.on.startup(id="stanch-configure-kopf", registry=registry)(configure)
