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
from collections.abc import Callable, Mapping, Sequence
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
from stanch.wiring import alert_flags

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
TIMELINE_DEFAULT = 20

_NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
_OBJECT_REF = re.compile(r"^(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<name>[a-z0-9]([-.a-z0-9]*[a-z0-9])?)$")


def _prog() -> str:
    # kubectl runs plugins as `kubectl-stanch`; say what the user typed. The krew launcher runs
    # `python -m stanch` and says so in STANCH_PROG.
    if os.environ.get("STANCH_PROG") == "kubectl stanch":
        return "kubectl stanch"
    return "kubectl stanch" if Path(sys.argv[0]).name.startswith("kubectl-stanch") else "stanch"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    # No abbreviations: a script written against `--prom` would silently change meaning the day
    # another flag starting with `--prom` is added.
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog or _prog(),
        description="Stanch stops the bleeding: investigate production incidents, mitigate under guard.",
    )
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    conn = _connection_flags()

    run = commands.add_parser(
        "run",
        parents=[_kubeconfig_flags()],
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

    alert_flags.add_arguments(run)

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

    _console_commands(commands, conn)
    return parser


def _kubeconfig_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = flags.add_argument_group("cluster (kubectl's flags)")
    group.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig to use; default: $KUBECONFIG, else ~/.kube/config, else the Pod's ServiceAccount",
    )
    group.add_argument(
        "--context", metavar="NAME", help="kubeconfig context to use (default: current-context)"
    )
    return flags


def _connection_flags() -> argparse.ArgumentParser:
    flags = _kubeconfig_flags()
    group = flags.add_argument_group("identity")
    group.add_argument(
        "--as", dest="as_user", metavar="USER", help="impersonate USER (needs RBAC impersonate)"
    )
    group.add_argument(
        "--as-group", dest="as_groups", action="append", default=[], metavar="GROUP", help="impersonate GROUP"
    )
    return flags


def _namespace_flag(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the kubeconfig context's, else default)"
    )
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")


def _output_flag(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument(
        "-o", "--output", choices=list(choices), metavar="|".join(choices), help="output format"
    )


def _console_commands(commands: Any, conn: argparse.ArgumentParser) -> None:
    get = commands.add_parser(
        "get",
        parents=[conn],
        allow_abbrev=False,
        help="list Incidents or Mitigations (kubectl get, with Stanch's columns)",
        description="List Incidents or Mitigations: kubectl stanch get incidents|inc|mitigations|mit [NAME].",
    )
    get.add_argument("resource", metavar="RESOURCE", help="incidents (inc) or mitigations (mit)")
    get.add_argument("name", nargs="?", metavar="NAME")
    _namespace_flag(get, all_namespaces=True)
    _output_flag(get, ("wide", "yaml", "json", "name"))
    get.add_argument("-w", "--watch", action="store_true", help="after listing, print each change")

    describe = commands.add_parser(
        "describe",
        parents=[conn],
        allow_abbrev=False,
        help="show an Incident (scope, timeline, hypotheses, mitigations) or a Mitigation with its audit",
        description="Show an Incident as on-call reads it: scope and impact, timeline, hypotheses with"
        " evidence for and against and their suggested mitigation, linked Mitigations; or a Mitigation"
        " with its audit.",
    )
    describe.add_argument("resource", metavar="RESOURCE", help="incident (inc) or mitigation (mit)")
    describe.add_argument("name", metavar="NAME", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(describe)
    _output_flag(describe, ("yaml", "json"))
    describe.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="Incidents: show it again whenever it or its Mitigations change",
    )
    describe.add_argument(
        "--timeline",
        default=str(TIMELINE_DEFAULT),
        metavar="N|all",
        help=f"Incidents: the newest N timeline entries (default {TIMELINE_DEFAULT}) or all",
    )

    mitigate = commands.add_parser(
        "mitigate",
        parents=[conn],
        allow_abbrev=False,
        help="create the Mitigation a hypothesis of an Incident suggests",
        description="Create the Mitigation that an Incident's hypothesis suggests (default: the first"
        " hypothesis with a suggestion), requested by you, linked to the Incident. Policy still decides.",
    )
    mitigate.add_argument("incident", metavar="INCIDENT", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(mitigate)
    mitigate.add_argument(
        "--hypothesis", type=int, metavar="N", help="the hypothesis' number in the Incident view"
    )
    mitigate.add_argument("--name", metavar="NAME", help="the Mitigation's name (default: derived, stable)")
    mitigate.add_argument(
        "--dry-run",
        nargs="?",
        const="client",
        default="none",
        choices=["none", "server", "client"],
        help="client: print the Mitigation, send nothing; server: the API server validates and admits it,"
        " stores nothing (kubectl's --dry-run)",
    )
    mitigate.add_argument(
        "--plan-only",
        action="store_true",
        help="create it as Stanch's dry run (spec.dryRun): planned and recorded, the target never touched",
    )
    mitigate.add_argument(
        "--temporary", action="store_true", help="undo it when the Incident is resolved (spec.temporary)"
    )
    mitigate.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _output_flag(mitigate, ("yaml", "json"))

    approve = commands.add_parser(
        "approve",
        parents=[conn],
        allow_abbrev=False,
        help="approve a Mitigation as yourself (creates a MitigationApproval)",
        description="Create a MitigationApproval of a Mitigation as the user of your credentials (kubectl"
        " auth whoami), pinned to the Mitigation's uid. Whether it counts is the policy's call: see the"
        " Mitigation's status.",
    )
    approve.add_argument("mitigation", metavar="MITIGATION", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(approve)
    approve.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="GROUP",
        help="list this group of yours in the approval (a policy's approval.approverGroups); repeatable",
    )
    approve.add_argument("--reason", default="", help="why, for the audit trail")

    abort = commands.add_parser(
        "abort",
        parents=[conn],
        allow_abbrev=False,
        help="abort an in-flight Mitigation, reverting any change it made",
        description="Abort a Mitigation that has not finished: it is deleted with revertOnDelete, so Stanch"
        " reverts any change first (conditionally: someone else's change since is drift, NeedsAttention,"
        " never overwritten) and then lets it go. Waits until it is gone.",
    )
    abort.add_argument("mitigation", metavar="MITIGATION", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(abort)
    abort.add_argument(
        "--wait", action=argparse.BooleanOptionalAction, default=True, help="wait until it is gone"
    )
    abort.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="how long to wait (300)"
    )
    abort.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    audit = commands.add_parser(
        "audit",
        parents=[conn],
        allow_abbrev=False,
        help="a Mitigation's audit: its status history and its Events, in time order",
        description="Print a Mitigation's audit trail: status.audit (who asked, the policy decision, the"
        " approval, each step and why) merged with the Kubernetes Events about it, oldest first.",
    )
    audit.add_argument("mitigation", metavar="MITIGATION", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(audit)
    _output_flag(audit, ("yaml", "json"))

    report = commands.add_parser(
        "report",
        parents=[conn],
        allow_abbrev=False,
        help="render an Incident as a post-incident document",
        description="Write a post-incident document (Markdown) from an Incident's status, optionally a"
        " chart of its error signal and suggested alerts.",
    )
    report.add_argument("incident", metavar="INCIDENT", help="NAME, or NAMESPACE/NAME")
    _namespace_flag(report)
    report.add_argument("--out", type=Path, metavar="FILE", help="write the Markdown here (default: stdout)")
    report.add_argument(
        "--chart", type=Path, metavar="FILE.png", help="draw the signals and changes as a PNG"
    )
    report.add_argument(
        "--alerts", type=Path, metavar="FILE.yaml", help="write suggested alerts as a PrometheusRule"
    )
    report.add_argument(
        "--signal-preset",
        metavar="NAME",
        help="the metrics the suggested alerts read, as for `run` (default simulator) [STANCH_SIGNAL_PRESET]",
    )
    report.add_argument("--workload-label", metavar="LABEL", help="as for `run` [STANCH_WORKLOAD_LABEL]")


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
        **alert_flags.flags_of(args),
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
    _select_credentials(args)
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


class UsageError(Exception):
    """A mistake in the command line (exit 2)."""


def _name_ref(value: str, what: str) -> tuple[str | None, str]:
    """``NAME`` or ``NAMESPACE/NAME`` (the form the first versions of the CLI took)."""
    if "/" in value:
        match = _OBJECT_REF.match(value)
        if not match:
            raise UsageError(f"{what} {value!r} is neither NAME nor NAMESPACE/NAME, e.g. shop/checkout-5xx")
        return match["ns"], match["name"]
    if not _NAME.match(value):
        raise UsageError(
            f"{what} {value!r} is not a valid object name (lower case letters, digits, '-', '.')"
        )
    return None, value


def _select_credentials(args: argparse.Namespace) -> None:
    from stanch.adapters import credentials

    credentials.select(
        credentials.Selection(
            kubeconfig=getattr(args, "kubeconfig", None),
            context=getattr(args, "context", None),
            user=getattr(args, "as_user", None),
            groups=tuple(getattr(args, "as_groups", None) or ()),
        )
    )


def _default_namespace() -> str:
    from stanch.adapters import credentials

    return credentials.current().namespace


def _target(args: argparse.Namespace, value: str | None, what: str) -> Any:
    from stanch.wiring.console_command import Target

    if getattr(args, "all_namespaces", False):
        if value is not None:
            raise UsageError("-A/--all-namespaces lists; it takes no NAME")
        return Target(namespace=None)
    if value is None:
        return Target(namespace=args.namespace or _default_namespace())
    namespace, name = _name_ref(value, what)
    if namespace is not None and args.namespace and namespace != args.namespace:
        raise UsageError(f"{what} {value!r} names namespace {namespace}, but -n says {args.namespace}")
    return Target(namespace=namespace or args.namespace or _default_namespace(), name=name)


def _kind(resource: str) -> str:
    from stanch.wiring.console_command import KINDS

    kind = KINDS.get(resource.lower().removesuffix(".stanch.dev"))
    if kind is None:
        raise UsageError(f"RESOURCE {resource!r}: use incidents (inc) or mitigations (mit)")
    return kind


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        from stanch.wiring.console_command import CommandError

        raise CommandError("stdin is not a terminal, so nothing can be confirmed: pass --yes")
    try:
        return input(prompt).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _cmd_console(args: argparse.Namespace) -> int:
    from stanch.wiring import console_command as console

    if args.command == "get":
        kind = _kind(args.resource)
        return console.get_command(
            kind, _target(args, args.name, "NAME"), output=args.output or "", watch=args.watch
        )
    if args.command == "describe":
        kind = _kind(args.resource)
        target = _target(args, args.name, "NAME")
        if kind == "Mitigation":
            if args.watch:
                raise UsageError("--watch: describe watches Incidents; for a Mitigation use get mit NAME -w")
            return console.describe_mitigation_command(target, output=args.output)
        if args.timeline == "all":
            timeline = None
        elif args.timeline.isdigit():
            timeline = int(args.timeline)
        else:
            raise UsageError(f"--timeline {args.timeline!r}: a number of entries, or all")
        return console.describe_incident_command(
            target, output=args.output, watch=args.watch, timeline=timeline
        )
    if args.command == "mitigate":
        if args.hypothesis is not None and args.hypothesis < 1:
            raise UsageError(f"--hypothesis {args.hypothesis}: hypotheses are numbered from 1")
        if args.name is not None:
            _name_ref(args.name, "--name")
        return console.mitigate_command(
            _target(args, args.incident, "INCIDENT"),
            hypothesis=args.hypothesis,
            name=args.name,
            dry_run=args.dry_run,
            plan_only=args.plan_only,
            temporary=args.temporary,
            yes=args.yes,
            output=args.output,
            confirm=_confirm,
        )
    if args.command == "abort":
        return console.abort_command(
            _target(args, args.mitigation, "MITIGATION"),
            wait=args.wait,
            timeout=args.timeout,
            yes=args.yes,
            confirm=_confirm,
        )
    if args.command == "audit":
        return console.audit_command(_target(args, args.mitigation, "MITIGATION"), output=args.output)
    if args.command == "approve":
        from stanch.wiring.approve_command import approve_command

        target = _target(args, args.mitigation, "MITIGATION")
        return approve_command(target.namespace, target.name, groups=args.group, reason=args.reason)
    from stanch.wiring.report_command import report_command

    target = _target(args, args.incident, "INCIDENT")
    templates = report_templates(args, dict(os.environ))
    return report_command(
        target.namespace, target.name, out=args.out, chart=args.chart, alerts=args.alerts, templates=templates
    )


def report_templates(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, str]:
    """The templates `run` would use, so suggested alerts query what this cluster's Prometheus has."""
    from stanch.core.investigation.presets import DEFAULT_PRESET, PRESETS, PresetError, preset_templates

    preset = args.signal_preset or env.get(OPTIONS["signal_preset"].env) or DEFAULT_PRESET
    label = args.workload_label or env.get(OPTIONS["workload_label"].env) or None
    try:
        return preset_templates(preset, label)
    except PresetError as exc:
        field = "signal_preset" if preset.strip().lower() not in PRESETS else "workload_label"
        raise ConfigError(field, str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with usage on unknown flags and bad choices
    if args.version:
        return _cmd_version(args, sys.stdout)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: a COMMAND is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            return _cmd_run(args, sys.stderr)
        if args.command == "crds":
            return _cmd_crds(args, sys.stderr)
        if args.command == "version":
            return _cmd_version(args, sys.stdout)
        if args.command == "recording-rules":
            return _cmd_recording_rules(args, sys.stdout, sys.stderr)
        _select_credentials(args)
        return _cmd_console(args)
    except ConfigError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _runtime_error(parser.prog, args.command, exc)


def _runtime_error(prog: str, command: str, exc: Exception) -> int:
    """One line for what went wrong at run time (exit 1); the traceback only on request."""
    from stanch.adapters import credentials
    from stanch.wiring.console_command import CommandError

    if isinstance(exc, CommandError | credentials.CredentialsError):
        message = str(exc)
    else:
        problem = credentials.unreachable(exc)
        if problem is not None:
            creds = credentials.current()
            print(
                f"{prog} {command}: error: {problem} ({creds.server}, from {creds.source})", file=sys.stderr
            )
            return EXIT_FAILURE
        message = f"{type(exc).__name__}: {exc}"
        if os.environ.get("STANCH_DEBUG"):
            raise exc
        message += " (STANCH_DEBUG=1 shows the traceback)"
    print(f"{prog} {command}: error: {message}", file=sys.stderr)
    return EXIT_FAILURE
