"""The on-call verbs of ``kubectl stanch``: get, describe (with ``--watch``), mitigate, abort, audit.

Each verb reads or writes with the user's own credentials (``UserKubeClient``: the user's RBAC
decides, not the operator's permissions table), renders with the pure ``stanch.core.console``
functions, and reports failures as one line (``CommandError``); ``cli.main`` turns them into exit
codes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import yaml
from pydantic import ValidationError

from stanch.adapters import credentials
from stanch.adapters.identity import whoami
from stanch.adapters.kube import KubeClient, KubeError, UserKubeClient
from stanch.core.console.audit import audit_lines, render_audit
from stanch.core.console.incident_view import TIMELINE_SHOWN, render_incident
from stanch.core.console.mitigate import MitigateError, mitigation_manifest, pick_hypothesis
from stanch.core.console.tables import incident_rows, mitigation_rows, render_table
from stanch.core.models import TERMINAL_PHASES, Incident, Mitigation, MitigationPhase, UserIdentity

T = TypeVar("T")

WATCH_POLL_SECONDS = 2.0
CLEAR_SCREEN = "\x1b[H\x1b[2J"
KINDS = {
    "incident": "Incident",
    "incidents": "Incident",
    "inc": "Incident",
    "mitigation": "Mitigation",
    "mitigations": "Mitigation",
    "mit": "Mitigation",
}
"""The resource names ``get`` and ``describe`` accept: the CRDs' singular, plural and short names."""


class CommandError(Exception):
    """A runtime failure the user can act on (exit 1); the message is the whole explanation."""


@dataclass(frozen=True)
class Target:
    namespace: str | None
    """None: every namespace (``-A``)."""
    name: str | None = None


def _named(target: Target) -> tuple[str, str]:
    if target.namespace is None or target.name is None:
        raise CommandError("a NAME and one namespace are needed here (not -A)")
    return target.namespace, target.name


def now() -> datetime:
    return datetime.now(UTC)


def run(body: Callable[[KubeClient], Awaitable[T]], timeout: float = 15.0) -> T:
    """Run ``body`` with a client of the user's own credentials (named ``user`` in the verbs: the
    user's RBAC authorizes these calls, not the operator's permissions table); errors become
    one-line CommandErrors."""

    async def main() -> T:
        async with UserKubeClient.from_credentials(credentials.current(), timeout) as user:
            return await body(user)

    try:
        return asyncio.run(main())
    except KubeError as exc:
        raise CommandError(describe_kube_error(exc)) from None
    except Exception as exc:
        problem = credentials.unreachable(exc)
        if problem is None:
            raise
        server = credentials.current().server
        raise CommandError(
            f"{problem} ({server}, from {credentials.current().source}); is the cluster up and the"
            " context right (--context, --kubeconfig)?"
        ) from None


def describe_kube_error(exc: KubeError) -> str:
    if exc.status == 401:
        return f"the API server refused your credentials (401 Unauthorized): {exc.message}"
    if exc.status == 403:
        return f"forbidden: {exc.message}"
    if exc.status == 404:
        return f"not found: {exc.message}"
    return f"{exc.status} {exc.reason}: {exc.message}"


def dump(obj: Any, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    else:
        out.write(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """As ``kubectl get -o yaml`` shows it, less the managedFields noise."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


# ---- get ---------------------------------------------------------------------------------------


def get_command(kind: str, target: Target, *, output: str, watch: bool, out: TextIO = sys.stdout) -> int:
    rows_of = incident_rows if kind == "Incident" else mitigation_rows
    wide = output == "wide"

    async def body(user: KubeClient) -> None:
        if target.name is not None:
            obj = await user.get(kind, target.name, target.namespace)
            if obj is None:
                raise CommandError(
                    f'{kind.lower()}s "{target.name}" not found in namespace {target.namespace}'
                )
            objs, version = [obj], str(obj["metadata"].get("resourceVersion", ""))
        else:
            objs, version = await user.list_versioned(kind, target.namespace)
        if output in ("yaml", "json"):
            if target.name is not None:
                dump(_clean(objs[0]), output, out)
            else:
                dump({"apiVersion": "v1", "kind": "List", "items": [_clean(o) for o in objs]}, output, out)
        elif output == "name":
            for o in objs:
                out.write(f"{kind.lower()}.stanch.dev/{o['metadata']['name']}\n")
        elif not objs and not watch:
            where = "any namespace" if target.namespace is None else f"{target.namespace} namespace"
            print(f"No resources found in {where}.", file=sys.stderr)
        else:
            header, rows = rows_of(objs, now(), wide=wide)
            namespaces = (
                [o["metadata"].get("namespace", "") for o in objs] if target.namespace is None else None
            )
            out.write(render_table(header, rows, namespaces))
        out.flush()
        if not watch:
            return
        shown_header = bool(objs)
        while True:
            async for event, obj in user.watch(kind, target.namespace, resource_version=version):
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event not in ("ADDED", "MODIFIED", "DELETED"):
                    if event == "ERROR":
                        raise CommandError(f"the watch ended: {obj.get('message', obj)}")
                    continue
                if target.name is not None and obj["metadata"].get("name") != target.name:
                    continue
                if output in ("yaml", "json"):
                    dump(_clean(obj), output, out)
                elif output == "name":
                    out.write(f"{kind.lower()}.stanch.dev/{obj['metadata']['name']}\n")
                else:
                    header, rows = rows_of([obj], now(), wide=wide)
                    namespaces = [obj["metadata"].get("namespace", "")] if target.namespace is None else None
                    lines = render_table(header, rows, namespaces).splitlines()
                    # kubectl prints the header once; later rows line up with the first table's only
                    # roughly, as kubectl's own do.
                    out.write("\n".join(lines if not shown_header else lines[1:]) + "\n")
                    shown_header = True
                out.flush()

    run(body, timeout=30.0)
    return 0


# ---- describe ----------------------------------------------------------------------------------


async def read_incident(
    user: KubeClient, namespace: str, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    incident = await user.get("Incident", name, namespace)
    if incident is None:
        raise CommandError(f'incidents "{name}" not found in namespace {namespace}')
    listed = {m.get("name") for m in (incident.get("status") or {}).get("mitigations") or ()}
    mitigations = [
        m
        for m in await user.list("Mitigation", namespace)
        if ((m.get("spec") or {}).get("incidentRef") or {}).get("name") == name
        or m["metadata"]["name"] in listed
    ]
    return incident, mitigations


def parse_incident(raw: dict[str, Any]) -> Incident:
    try:
        return Incident.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CommandError(
            f"Incident {raw['metadata'].get('name')} does not match this version's schema at {where}:"
            f" {first['msg']}; use -o yaml, or a kubectl-stanch matching the operator's version"
        ) from None


def parse_mitigations(raws: Sequence[dict[str, Any]], err: TextIO) -> list[Mitigation]:
    out = []
    for m in raws:
        try:
            out.append(Mitigation.model_validate(m))
        except ValidationError:
            print(
                f"warning: Mitigation {m['metadata']['name']} skipped: not readable by this version", file=err
            )
    return out


def _fingerprint(incident: dict[str, Any], mitigations: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    return (
        str(incident["metadata"].get("resourceVersion")),
        *sorted(f"{m['metadata']['name']}@{m['metadata'].get('resourceVersion')}" for m in mitigations),
    )


def describe_incident_command(
    target: Target,
    *,
    output: str | None,
    watch: bool,
    timeline: int | None = TIMELINE_SHOWN,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    namespace, name = _named(target)
    clear = watch and out.isatty()

    def show(raw: dict[str, Any], raw_mitigations: list[dict[str, Any]]) -> None:
        if output in ("yaml", "json"):
            dump(_clean(raw), output, out)
        else:
            text = render_incident(
                parse_incident(raw), parse_mitigations(raw_mitigations, err), now=now(), timeline=timeline
            )
            out.write((CLEAR_SCREEN if clear else "") + text)
        out.flush()

    async def body(user: KubeClient) -> None:
        seen: tuple[str, ...] = ()
        first = True
        while True:
            raw, raw_mitigations = await read_incident(user, namespace, name)
            fingerprint = _fingerprint(raw, raw_mitigations)
            if fingerprint != seen:
                if not first and not clear:
                    out.write(f"--- {now().strftime('%H:%M:%SZ')} ---\n")
                show(raw, raw_mitigations)
                seen, first = fingerprint, False
            if not watch:
                return
            # Polled rather than watched: the view joins the Incident and its Mitigations, and a
            # GET every two seconds is cheaper than two watches held open from a terminal.
            await asyncio.sleep(WATCH_POLL_SECONDS)

    run(body)
    return 0


def describe_mitigation_command(target: Target, *, output: str | None, out: TextIO = sys.stdout) -> int:
    """A Mitigation's summary and its audit (status history and Events, in time order)."""
    namespace, name = _named(target)

    async def body(user: KubeClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await read_mitigation_audit(user, namespace, name)

    obj, events = run(body)
    if output in ("yaml", "json"):
        dump(_clean(obj), output, out)
        return 0
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    policy = status.get("policy") or {}
    approval = (status.get("approval") or {}).get("approver") or {}
    verdict = status.get("verdict") or {}
    ref = spec.get("target") or {}
    requester = status.get("requestedBy") or (spec.get("requester") or {}).get("username")
    decided = " ".join(str(policy[k]) for k in ("decision", "policy", "rule") if policy.get(k))
    lines = [
        f"{'Name:':<14}{name}",
        f"{'Namespace:':<14}{namespace}",
        f"{'Phase:':<14}{status.get('phase') or 'Pending'}",
        f"{'Action:':<14}{status.get('action') or '<none>'}",
        f"{'Target:':<14}{ref.get('kind', 'Deployment')} {namespace}/{ref.get('name', '')}",
        f"{'Incident:':<14}{(spec.get('incidentRef') or {}).get('name') or '<none>'}",
        f"{'Dry run:':<14}{'yes' if spec.get('dryRun') else 'no'}",
        f"{'Requested by:':<14}{requester or '<none>'}",
        f"{'Policy:':<14}{decided or '<none>'}",
        f"{'Approved by:':<14}{approval.get('username') or '<none>'}",
        f"{'Verdict:':<14}{verdict.get('result', '<none>')} {verdict.get('reason', '')}".rstrip(),
        "",
        "Audit:",
    ]
    out.write("\n".join(lines) + "\n")
    out.write("".join("  " + line + "\n" for line in render_audit(audit_lines(obj, events)).splitlines()))
    return 0


# ---- audit -------------------------------------------------------------------------------------


async def read_mitigation_audit(
    user: KubeClient, namespace: str, name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    obj = await user.get("Mitigation", name, namespace)
    if obj is None:
        raise CommandError(f'mitigations "{name}" not found in namespace {namespace}')
    uid = obj["metadata"]["uid"]
    try:
        events = await user.list("Event", namespace, field_selector=f"involvedObject.uid={uid}")
    except KubeError as exc:
        if not exc.forbidden:
            raise
        # stanch-view grants no Events (the built-in view role does): the status half still stands.
        print(f"warning: Events not shown: you cannot list events in {namespace}", file=sys.stderr)
        events = []
    return obj, events


def audit_command(target: Target, *, output: str | None, out: TextIO = sys.stdout) -> int:
    namespace, name = _named(target)

    async def body(user: KubeClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return await read_mitigation_audit(user, namespace, name)

    obj, events = run(body)
    lines = audit_lines(obj, events)
    if output in ("yaml", "json"):
        dump([line.to_dict() for line in lines], output, out)
    else:
        out.write(render_audit(lines))
    return 0


# ---- mitigate ----------------------------------------------------------------------------------


def mitigate_command(
    target: Target,
    *,
    hypothesis: int | None,
    name: str | None,
    dry_run: str,
    plan_only: bool,
    temporary: bool,
    yes: bool,
    output: str | None,
    confirm: Callable[[str], bool],
    out: TextIO = sys.stdout,
) -> int:
    """Create the Mitigation a hypothesis suggests. ``dry_run``: ``none`` (create it), ``server``
    (the API server validates and admits it, nothing is stored) or ``client`` (print it, send
    nothing). ``plan_only`` is Stanch's own dry run (``spec.dryRun``): stored and planned, the
    target never touched."""
    namespace, incident_name = _named(target)

    async def build(user: KubeClient) -> dict[str, Any]:
        raw = await user.get("Incident", incident_name, namespace)
        if raw is None:
            raise CommandError(f'incidents "{incident_name}" not found in namespace {namespace}')
        incident = parse_incident(raw)
        try:
            _, chosen = pick_hypothesis(incident, hypothesis)
            me = await whoami(user) if dry_run != "client" else {}
            requester = UserIdentity(username=str(me.get("username") or "<you>"))
            return mitigation_manifest(
                incident, chosen, requester, name=name, plan_only=plan_only, temporary=temporary
            )
        except MitigateError as exc:
            raise CommandError(str(exc)) from None

    manifest = run(build)
    spec = manifest["spec"]
    action = next(k for k in spec if k not in {"incidentRef", "target", "requester", "dryRun", "temporary"})
    what = (
        f"Mitigation {namespace}/{manifest['metadata']['name']}: {action} {json.dumps(spec[action])} on"
        f" {spec['target'].get('kind', 'Deployment')} {spec['target']['name']}"
        + (" (plan only)" if plan_only else "")
    )
    if dry_run == "client":
        dump(manifest, output or "yaml", out)
        return 0
    if dry_run == "none" and not yes and not confirm(f"Create {what}? [y/N] "):
        raise CommandError("not created (answer y, or pass --yes)")

    async def create(user: KubeClient) -> tuple[dict[str, Any], bool]:
        try:
            return await user.create(manifest, dry_run=dry_run == "server"), True
        except KubeError as exc:
            if exc.status == 409:
                return manifest, False
            raise

    created, fresh = run(create)
    if output in ("yaml", "json"):
        dump(_clean(created), output, out)
        return 0
    suffix = " (server dry run)" if dry_run == "server" else ""
    verb = "created" if fresh else "already exists (unchanged)"
    print(f"mitigation.stanch.dev/{manifest['metadata']['name']} {verb}{suffix}", file=out)
    if fresh and dry_run == "none":
        print(
            f"follow it: kubectl stanch describe mitigation {manifest['metadata']['name']} -n {namespace}",
            file=out,
        )
    return 0


# ---- abort -------------------------------------------------------------------------------------

IN_FLIGHT = frozenset(
    {
        MitigationPhase.PENDING,
        MitigationPhase.AWAITING_APPROVAL,
        MitigationPhase.BASELINE,
        MitigationPhase.APPLYING,
        MitigationPhase.BAKING,
    }
)


def abort_command(
    target: Target,
    *,
    wait: bool,
    timeout: float,
    yes: bool,
    confirm: Callable[[str], bool],
    out: TextIO = sys.stdout,
) -> int:
    """Abort an in-flight Mitigation the way the engine supports it: delete it with
    ``revertOnDelete`` true, so the finalizer reverts any change first, under the usual
    preconditions (someone else's change since is drift: NeedsAttention, never overwritten)."""
    namespace, name = _named(target)

    async def check(user: KubeClient) -> dict[str, Any]:
        obj = await user.get("Mitigation", name, namespace)
        if obj is None:
            raise CommandError(f'mitigations "{name}" not found in namespace {namespace}')
        return obj

    obj = run(check)
    phase_text = (obj.get("status") or {}).get("phase") or "Pending"
    try:
        phase = MitigationPhase(phase_text)
    except ValueError:
        phase = MitigationPhase.PENDING
    if obj["metadata"].get("deletionTimestamp"):
        raise CommandError(f"Mitigation {name} is already being aborted (deleted; phase {phase_text})")
    if phase is MitigationPhase.REVERTING:
        raise CommandError(
            f"Mitigation {name} is already Reverting; `kubectl stanch audit {name} -n {namespace}`"
        )
    if phase in TERMINAL_PHASES:
        raise CommandError(
            f"Mitigation {name} is {phase_text}: nothing in flight to abort. A kept change is undone by a"
            " new Mitigation (e.g. a rollback), a temporary one by resolving its Incident"
        )
    assert phase in IN_FLIGHT
    if not yes and not confirm(
        f"Abort Mitigation {namespace}/{name} ({phase_text}), reverting any change? [y/N] "
    ):
        raise CommandError("not aborted (answer y, or pass --yes)")

    async def abort(user: KubeClient) -> None:
        spec = obj.get("spec") or {}
        if spec.get("revertOnDelete") is False:
            # Editable after the policy's decision; conditional, so a concurrent edit is not lost.
            try:
                await user.patch(
                    "Mitigation",
                    name,
                    namespace,
                    {"spec": {"revertOnDelete": True}},
                    resource_version=obj["metadata"]["resourceVersion"],
                )
            except KubeError as exc:
                if not exc.forbidden:
                    raise
                raise CommandError(
                    f"Mitigation {name} has revertOnDelete=false, so deleting it would keep its change, and"
                    " you may not patch it (stanch-request grants create and delete only): ask someone"
                    " who may, or `kubectl delete` it to stop it and keep the change"
                ) from None
        await user.delete("Mitigation", name, namespace, uid=obj["metadata"]["uid"], propagation="Foreground")

    run(abort)
    print(
        f"mitigation.stanch.dev/{name} aborting (phase {phase_text}): any change is reverted first", file=out
    )
    if not wait:
        return 0

    async def follow(user: KubeClient) -> list[str]:
        seen: list[str] = []
        last: dict[str, Any] | None = None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            current = await user.get("Mitigation", name, namespace)
            if current is None:
                break
            last = current
            phase_now = (current.get("status") or {}).get("phase") or "Pending"
            if not seen or seen[-1] != phase_now:
                seen.append(phase_now)
                print(f"  phase: {phase_now}", file=out)
                out.flush()
            await asyncio.sleep(1.0)
        else:
            raise CommandError(
                f"Mitigation {name} still exists after {timeout:.0f}s (phase {seen[-1] if seen else '?'});"
                f" is the operator running? `kubectl stanch describe mitigation {name} -n {namespace}`"
            )
        if last is not None:
            # The object is gone with its status; its last audit entries are printed here, and its
            # Events outlive it (an hour by default).
            for line in render_audit(audit_lines(last, [])).splitlines()[-4:]:
                print("  " + line, file=out)
        return seen

    run(follow, timeout=15.0)
    print(f"mitigation.stanch.dev/{name} aborted", file=out)
    return 0
