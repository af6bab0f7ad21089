"""``stanch run``'s Alertmanager receiver flags, apart from the receiver itself so that the CLI
builds its parser without importing Kopf (every ``kubectl stanch`` verb would pay for it)."""

from __future__ import annotations

import argparse
from typing import Any

from stanch.core.settings import ALERTMANAGER_PORT


def add_arguments(run: argparse.ArgumentParser) -> None:
    """``stanch run``'s receiver flags (docs/alertmanager.md)."""
    group = run.add_argument_group("Alertmanager receiver (docs/alertmanager.md)")
    group.add_argument(
        "--alertmanager-address",
        metavar="ADDR",
        help=f"serve Alertmanager's webhook (POST /api/v1/alerts) on HOST:PORT (:PORT for all interfaces,"
        f" e.g. :{ALERTMANAGER_PORT}) or 'off' (default) [STANCH_ALERTMANAGER_ADDRESS]",
    )
    group.add_argument(
        "--alertmanager-token-file",
        metavar="FILE",
        help="the bearer token Alertmanager must send, from a mounted Secret; required with the receiver"
        " [STANCH_ALERTMANAGER_TOKEN_FILE]",
    )
    group.add_argument(
        "--alertmanager-tls-cert-file",
        metavar="FILE",
        help="serve the receiver over TLS with this PEM certificate [STANCH_ALERTMANAGER_TLS_CERT_FILE]",
    )
    group.add_argument(
        "--alertmanager-tls-key-file",
        metavar="FILE",
        help="the certificate's PEM private key [STANCH_ALERTMANAGER_TLS_KEY_FILE]",
    )
    group.add_argument(
        "--alertmanager-namespace-labels",
        metavar="LABELS",
        help="comma-separated alert labels naming the target's namespace, first set wins; default"
        " namespace [STANCH_ALERTMANAGER_NAMESPACE_LABELS]",
    )
    group.add_argument(
        "--alertmanager-workload-labels",
        metavar="LABELS",
        help="comma-separated alert labels naming the target Deployment, first set wins; default"
        " deployment,workload [STANCH_ALERTMANAGER_WORKLOAD_LABELS]",
    )
    group.add_argument(
        "--alertmanager-severity-label",
        metavar="LABEL",
        help="alert label mapped to the Incident's severity (critical→SEV1, high/error→SEV2,"
        " warning→SEV3, info→SEV4); default severity [STANCH_ALERTMANAGER_SEVERITY_LABEL]",
    )


ARGUMENT_FIELDS = (
    "alertmanager_address",
    "alertmanager_token_file",
    "alertmanager_tls_cert_file",
    "alertmanager_tls_key_file",
    "alertmanager_namespace_labels",
    "alertmanager_workload_labels",
    "alertmanager_severity_label",
)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    return {f: getattr(args, f, None) for f in ARGUMENT_FIELDS}
