"""The `stanch` command line (also `kubectl stanch`, as a kubectl plugin).

Usage and configuration errors exit with code 2 and one line that names the flag and the fix;
nothing the user can fix by changing a flag ends in a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, cast

import yaml

import stanch
from stanch.core.settings import (
    LOG_LEVELS,
    OPTIONS,
    ConfigError,
    LogFormat,
    NotifyFormat,
    Settings,
    resolve,
)
from stanch.wiring import alerts

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_OBJECT_REF = re.compile(r"^(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<name>[a-z0-9]([-.a-z0-9]*[a-z0-9])?)$")


def _prog() -> str:
    # kubectl runs plugins as `kubectl-stanch`; say what the user typed.
    return "kubectl stanch" if Path(sys.argv[0]).name.startswith("kubectl-stanch") else "stanch"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    # No abbreviations: a script written against `--prom` would silently change meaning the day
    # another flag starting with `--prom` is added.
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog or _prog(),
        description="Stanch stops the bleeding: investigate production incidents, mitigate under guard.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        allow_abbrev=False,
        help="run the operator",
        description="Run the Stanch operator. Every flag also reads a STANCH_* environment variable.",
    )
    scope = run.add_argument_group("scope (exactly one)")
    scope.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        metavar="NS",
        help="watch this namespace (repeatable; globs like 'team-*' work)"
        " [STANCH_NAMESPACES, comma-separated]",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_const",
        const=True,
        default=None,
        help="watch every namespace [STANCH_ALL_NAMESPACES]",
    )
    run.add_argument(
        "--standalone",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run without Kopf peering: the only replica (default unless --peering is given)"
        " [STANCH_STANDALONE]",
    )
    run.add_argument(
        "--peering",
        dest="peering_name",
        metavar="NAME",
        help="coordinate replicas through the KopfPeering object NAME; implies --no-standalone"
        " [STANCH_PEERING]",
    )
    run.add_argument(
        "--priority",
        metavar="N",
        help="Kopf peering priority; the highest live replica acts, the others pause. Default: derived"
        " at start so that the longest-running replica is highest (always below 0, so any N >= 0"
        " outranks the replicas, e.g. a maintenance run); never give two replicas the same value:"
        " equal priorities pause them all [STANCH_PRIORITY]",
    )
    run.add_argument(
        "--peering-lifetime",
        metavar="DURATION",
        help="how long this replica's peering record stays valid without a refresh (refreshed 5-10s"
        " before it expires): the longest a killed active replica leaves the cluster unserved;"
        " 15s..10m, default 30s [STANCH_PEERING_LIFETIME]",
    )
    run.add_argument(
        "--liveness",
        dest="liveness_endpoint",
        metavar="ADDR",
        help="Kopf liveness endpoint, HOST:PORT[/PATH] or 'off'; default 0.0.0.0:8080/healthz in a Pod,"
        " 127.0.0.1:8080/healthz elsewhere [STANCH_LIVENESS]",
    )
    run.add_argument(
        "--metrics-address",
        metavar="ADDR",
        help="serve the operator's own metrics on HOST:PORT or 'off'; default 0.0.0.0:8081 in a Pod,"
        " 127.0.0.1:8081 elsewhere [STANCH_METRICS_ADDRESS]",
    )
    run.add_argument(
        "--prometheus-url",
        metavar="URL",
        help="the Prometheus that holds the workloads' metrics (required) [STANCH_PROMETHEUS_URL]",
    )
    run.add_argument(
        "--prometheus-bearer-token-file",
        metavar="FILE",
        help="send 'Authorization: Bearer <token>' with the token in FILE, re-read on every query so a"
        " rotated Secret or projected token needs no restart [STANCH_PROMETHEUS_BEARER_TOKEN_FILE]",
    )
    run.add_argument(
        "--prometheus-ca-file",
        metavar="FILE",
        help="PEM CA bundle that signs Prometheus's certificate (https only) [STANCH_PROMETHEUS_CA_FILE]",
    )
    run.add_argument(
        "--prometheus-header",
        dest="prometheus_headers",
        action="append",
        metavar="'NAME: VALUE'",
        help="extra header on every query, repeatable, e.g. 'X-Scope-OrgID: team-a' for Mimir, Cortex"
        " or Thanos; values are never logged [STANCH_PROMETHEUS_HEADERS, newline- or comma-separated]",
    )
    run.add_argument(
        "--prometheus-username",
        metavar="NAME",
        help="basic auth user name, with --prometheus-password-file [STANCH_PROMETHEUS_USERNAME]",
    )
    run.add_argument(
        "--prometheus-password-file",
        metavar="FILE",
        help="basic auth password in FILE, re-read on every query [STANCH_PROMETHEUS_PASSWORD_FILE]",
    )
    run.add_argument(
        "--prometheus-insecure-skip-tls-verify",
        action="store_true",
        default=None,
        help="do not verify Prometheus's certificate (test clusters only)"
        " [STANCH_PROMETHEUS_INSECURE_SKIP_TLS_VERIFY]",
    )
    run.add_argument(
        "--signal-preset",
        metavar="NAME",
        help="which metrics the signal templates read: simulator (default), kube-state-metrics, istio,"
        " linkerd, ingress-nginx; see docs/signals.md [STANCH_SIGNAL_PRESET]",
    )
    run.add_argument(
        "--workload-label",
        metavar="LABEL",
        help="the request metrics' label that holds the workload's name (default: the preset's own)"
        " [STANCH_WORKLOAD_LABEL]",
    )
    run.add_argument(
        "--signals",
        dest="signals_file",
        metavar="FILE",
        type=Path,
        help="YAML mapping of signal name to PromQL template, merged over the defaults [STANCH_SIGNALS_FILE]",
    )
    run.add_argument(
        "--investigation-interval",
        metavar="DURATION",
        help="refresh open Incidents this often (e.g. 30s, 2m); changes to the workload refresh sooner;"
        " default 30s [STANCH_INVESTIGATION_INTERVAL]",
    )
    run.add_argument(
        "--notify-url",
        metavar="URL",
        help="POST decisions that need a human (approval waiting, NeedsAttention, Reverted) to this"
        " webhook; a secret: prefer the variable, set from a Secret, over the flag (visible in the"
        " process list); never logged beyond its host [STANCH_NOTIFY_URL]",
    )
    run.add_argument(
        "--notify-format",
        choices=[f.value for f in NotifyFormat],
        help="webhook payload: generic JSON (default) or a Slack incoming-webhook message"
        " [STANCH_NOTIFY_FORMAT]",
    )
    run.add_argument(
        "--evidence-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the watched namespaces' pods and Events in memory (one list, then a watch) so a"
        " refresh need not list them; default on [STANCH_EVIDENCE_CACHE]",
    )
    run.add_argument(
        "--evidence-cache-max-pods",
        metavar="N",
        help="pods the cache may hold, all watched namespaces together (about 40 KiB each); beyond it"
        " they are listed on every refresh; default 5000 [STANCH_EVIDENCE_CACHE_MAX_PODS]",
    )
    run.add_argument(
        "--evidence-cache-max-events",
        metavar="N",
        help="Events the cache may hold (about 2.5 KiB each); default 20000"
        " [STANCH_EVIDENCE_CACHE_MAX_EVENTS]",
    )
    run.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        help="default: console in a terminal, json otherwise [STANCH_LOG_FORMAT]",
    )
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        help="default INFO [STANCH_LOG_LEVEL]",
    )

    alerts.add_arguments(run)

    crds = commands.add_parser(
        "crds",
        allow_abbrev=False,
        help="write the CRDs generated from the models",
        description="Write crds/*.yaml.",
    )
    crds.add_argument("--out", type=Path, default=Path("crds"), metavar="DIR", help="default: ./crds")
    crds.add_argument(
        "--check", action="store_true", help="write nothing; exit non-zero with a diff if files are stale"
    )

    commands.add_parser("version", help="print versions", description="Print Stanch's version.")

    rules = commands.add_parser(
        "recording-rules",
        allow_abbrev=False,
        help="write Prometheus recording rules and the signal templates that read them",
        description="Write recording rules for every series the signal templates read, and templates"
        " (same names) that read the recorded series instead: at 1,000 pods a refresh's queries read a"
        " handful of series instead of ~58,000. Pass the templates to `stanch run --signals`.",
    )
    rules.add_argument("--window", default="5m", help="rate window of the rules (default 5m)")
    rules.add_argument("--interval", default="30s", help="rule evaluation interval (default 30s)")
    rules.add_argument(
        "--prometheus-rule",
        metavar="NAMESPACE/NAME",
        help="write a prometheus-operator PrometheusRule with this name instead of a plain rule file",
    )
    rules.add_argument("--rules", type=Path, metavar="FILE", help="rules file (default: stdout)")
    rules.add_argument("--templates", type=Path, metavar="FILE", help="also write the signal templates here")

    report = commands.add_parser(
        "report",
        allow_abbrev=False,
        help="render an Incident as a post-incident document",
        description="Write a post-incident document (Markdown) from an Incident's status, optionally a"
        " chart of its error signal and suggested alerts. Reads the cluster of KUBECONFIG.",
    )
    report.add_argument("incident", metavar="NAMESPACE/NAME")
    report.add_argument("--out", type=Path, metavar="FILE", help="write the Markdown here (default: stdout)")
    report.add_argument(
        "--chart", type=Path, metavar="FILE.png", help="draw the signals and changes as a PNG"
    )
    report.add_argument(
        "--alerts", type=Path, metavar="FILE.yaml", help="write suggested alerts as a PrometheusRule"
    )
    approve = commands.add_parser(
        "approve",
        allow_abbrev=False,
        help="approve a Mitigation as yourself (creates a MitigationApproval)",
        description="Create a MitigationApproval of a Mitigation as the user of KUBECONFIG (kubectl auth"
        " whoami), pinned to the Mitigation's uid. Whether it counts is the policy's call: see the"
        " Mitigation's status.",
    )
    approve.add_argument("mitigation", metavar="NAMESPACE/NAME")
    approve.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="list this group of yours in the approval (a policy's approval.approverGroups); repeatable",
    )
    approve.add_argument("--reason", default="", help="why, for the audit trail")
    return parser


def load_signal_overrides(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("signal_templates", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("signal_templates", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(
            "signal_templates",
            f"{path} must be a YAML mapping of signal name to PromQL string, e.g. error_ratio: 'sum(...)'",
        )
    return cast(dict[str, str], data)


def settings_from_args(args: argparse.Namespace, env: dict[str, str], *, is_tty: bool) -> Settings:
    signals_file = args.signals_file
    if signals_file is None and env.get(OPTIONS["signal_templates"].env):
        signals_file = Path(env[OPTIONS["signal_templates"].env])
    overrides = load_signal_overrides(signals_file) if signals_file is not None else None
    flags: dict[str, Any] = {
        "prometheus_url": args.prometheus_url,
        "prometheus_bearer_token_file": args.prometheus_bearer_token_file,
        "prometheus_ca_file": args.prometheus_ca_file,
        "prometheus_headers": args.prometheus_headers,
        "prometheus_username": args.prometheus_username,
        "prometheus_password_file": args.prometheus_password_file,
        "prometheus_insecure_skip_tls_verify": args.prometheus_insecure_skip_tls_verify,
        "signal_preset": args.signal_preset,
        "workload_label": args.workload_label,
        "namespaces": args.namespaces,
        "all_namespaces": args.all_namespaces,
        "standalone": args.standalone,
        "peering_name": args.peering_name,
        "priority": args.priority,
        "peering_lifetime": args.peering_lifetime,
        "liveness_endpoint": args.liveness_endpoint,
        "metrics_address": args.metrics_address,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "investigation_interval": args.investigation_interval,
        "notify_url": args.notify_url,
        "notify_format": args.notify_format,
        "evidence_cache": args.evidence_cache,
        "evidence_cache_max_pods": args.evidence_cache_max_pods,
        "evidence_cache_max_events": args.evidence_cache_max_events,
        **alerts.flags_of(args),
    }
    return resolve(
        flags,
        env,
        in_cluster=bool(env.get("KUBERNETES_SERVICE_HOST")),
        is_tty=is_tty,
        signal_overrides=overrides,
    )


def check_prometheus_files(config: Settings) -> None:
    """Fail at start, with the flag's name, on a credentials or CA file that cannot be used: the
    alternative is every query failing later. The files are read again on every query."""
    from stanch.adapters.prometheus import CredentialsError, check_files

    try:
        check_files(config.prometheus)
    except CredentialsError as exc:
        raise ConfigError(exc.field, str(exc)) from None


def _cmd_run(args: argparse.Namespace, err: TextIO) -> int:
    config = settings_from_args(args, dict(os.environ), is_tty=sys.stdout.isatty())
    check_prometheus_files(config)
    # Imported here so `stanch version` and `stanch crds` do not pay for Kopf's import.
    from stanch.wiring.runner import run_operator

    return run_operator(config)


def _cmd_crds(args: argparse.Namespace, err: TextIO) -> int:
    try:
        module = importlib.import_module("stanch.wiring.crds_command")
    except ModuleNotFoundError as exc:
        if exc.name != "stanch.wiring.crds_command":
            raise
        print(
            f"{_prog()} crds: error: CRD generation is not available:"
            " module stanch.wiring.crds_command is missing from this installation",
            file=err,
        )
        return EXIT_FAILURE
    command = cast(Callable[[Path, bool], int], module.crds_command)
    return command(args.out, args.check)


def _cmd_version(args: argparse.Namespace, out: TextIO) -> int:
    print(
        f"stanch {stanch.__version__} (kopf {metadata.version('kopf')},"
        f" python {platform.python_version()}, API {stanch.GROUP}/{stanch.VERSION})",
        file=out,
    )
    return EXIT_OK


def _cmd_recording_rules(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from stanch.core.recording import prometheus_rule, recorded_templates, recording_rules

    try:
        if args.prometheus_rule:
            if not _OBJECT_REF.match(args.prometheus_rule):
                raise ValueError(f"--prometheus-rule {args.prometheus_rule!r} is not NAMESPACE/NAME")
            namespace, name = args.prometheus_rule.split("/", 1)
            rules = prometheus_rule(name, namespace, args.window, args.interval)
        else:
            rules = recording_rules(args.window, args.interval)
        templates = dict(recorded_templates(args.window))
    except ValueError as exc:
        print(f"{_prog()} recording-rules: error: {exc}", file=err)
        return EXIT_USAGE
    text = yaml.safe_dump(rules, sort_keys=False, width=200)
    if args.rules is None:
        out.write(text)
    else:
        args.rules.write_text(text, encoding="utf-8")
    if args.templates is not None:
        args.templates.write_text(yaml.safe_dump(templates, sort_keys=False, width=200), encoding="utf-8")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, err: TextIO) -> int:
    if not _OBJECT_REF.match(args.incident):
        print(
            f"{_prog()} report: error: NAMESPACE/NAME: {args.incident!r} is not of the form"
            " NAMESPACE/NAME, e.g. shop/checkout-5xx",
            file=err,
        )
        return EXIT_USAGE
    # Imported here so the other commands do not pay for the report's imports.
    from stanch.wiring.report_command import report_command

    namespace, name = args.incident.split("/", 1)
    return report_command(namespace, name, out=args.out, chart=args.chart, alerts=args.alerts, err=err)


def _cmd_approve(args: argparse.Namespace, err: TextIO) -> int:
    if not _OBJECT_REF.match(args.mitigation):
        print(
            f"{_prog()} approve: error: NAMESPACE/NAME: {args.mitigation!r} is not of the form"
            " NAMESPACE/NAME, e.g. shop/checkout-rollback",
            file=err,
        )
        return EXIT_USAGE
    from stanch.wiring.approve_command import approve_command

    namespace, name = args.mitigation.split("/", 1)
    return approve_command(namespace, name, groups=args.group, reason=args.reason, err=err)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with usage on unknown flags and bad choices
    try:
        if args.command == "run":
            return _cmd_run(args, sys.stderr)
        if args.command == "crds":
            return _cmd_crds(args, sys.stderr)
        if args.command == "version":
            return _cmd_version(args, sys.stdout)
        if args.command == "recording-rules":
            return _cmd_recording_rules(args, sys.stdout, sys.stderr)
        if args.command == "approve":
            return _cmd_approve(args, sys.stderr)
        return _cmd_report(args, sys.stderr)
    except ConfigError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
