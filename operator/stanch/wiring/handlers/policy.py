"""Policy handlers: validate policies into their status, create Mitigations from Incident hypotheses
when a policy rule says so, record who asked for a Mitigation, and notify humans.

A Mitigation's own policy decision is taken by the mitigation handlers
(``stanch.wiring.mitigation_policy``) with the same core functions. Everything is decided in
``stanch.core.policy``; this module reads, calls the core, writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

import stanch
from stanch.adapters import policies as store
from stanch.adapters.identity import whoami
from stanch.adapters.kube import KubeClient, KubeError
from stanch.adapters.notify import WebhookSink, redacted
from stanch.core.models import Incident, IncidentMitigation, UserIdentity
from stanch.core.policy import (
    LoadedPolicy,
    PastMitigation,
    auto_mitigation,
    load_policy,
    past_mitigation,
    requested_by,
    target_facts,
    validity_conditions,
)
from stanch.core.policy.notifications import (
    Limits,
    Outbox,
    flush,
    generic_payload,
    notice_for,
    offer,
    slack_payload,
)
from stanch.core.settings import NotifyFormat, Settings
from stanch.wiring.handlers.startup import MEMO_SETTINGS
from stanch.wiring.logs import bind_object
from stanch.wiring.metrics import Metrics

Clock = Callable[[], datetime]
MEMO_KUBE = "stanch_policy_kube"
MEMO_NOTIFIER = "stanch_policy_notifier"
FLUSH_EVERY = 5.0


def _now() -> datetime:
    return datetime.now(UTC)


def kube_of(memo: kopf.Memo) -> KubeClient:
    """One client per operator process, created on first use."""
    client = memo.get(MEMO_KUBE)
    if client is None:
        client = KubeClient.from_env()
        memo[MEMO_KUBE] = client
    assert isinstance(client, KubeClient)
    return client


# --- policy validation ----------------------------------------------------------------------------


def _summary(policy: LoadedPolicy) -> str:
    spec = policy.spec
    tiers = ", ".join(f"{r.action.value}={r.tier.value}" for r in spec.actions) or "none"
    return (
        f"in force: actions {tiers}; {len(spec.freeze_windows)} freeze window(s);"
        f" {len(spec.auto_mitigation)} auto-mitigation rule(s)"
    )


def make_validate(clock: Clock) -> Callable[..., Any]:
    async def validate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        now = clock()
        policy = load_policy(body, now=now)
        status = body.get("status") or {}
        patch.setdefault("status", {})
        patch["status"]["observedGeneration"] = policy.generation
        patch["status"]["conditions"] = validity_conditions(
            status.get("conditions"),
            policy.problems,
            generation=policy.generation,
            summary=_summary(policy),
            now=now,
        )
        log = bind_object(body)
        if policy.valid:
            log.info("policy valid", policy=policy.ref)
        else:
            problems = "; ".join(p.describe() for p in policy.problems)
            log.warning("policy invalid", policy=policy.ref, problems=problems)
            kopf.warn(
                body, reason="PolicyInvalid", message=f"allowances ignored until fixed: {problems}"[:1000]
            )

    return validate


# --- automatic mitigation -------------------------------------------------------------------------


def make_auto_mitigate(clock: Clock) -> Callable[..., Any]:
    # Two Incidents about one target are handled concurrently; a lock per target makes "look for an
    # active Mitigation, then create one" atomic within the process (across replicas, Kopf peering
    # keeps one operator active). The locks live here, not in the memo: Kopf gives every Incident its
    # own memo, so a lock kept there is never shared (two Mitigations were created that way).
    locks: dict[str, asyncio.Lock] = {}
    # Who the operator is (a SelfSubjectReview), asked once: the requester of what it creates.
    me: dict[str, UserIdentity] = {}

    async def operator_identity(kube: KubeClient) -> UserIdentity:
        if "user" not in me:
            info = await whoami(kube)
            me["user"] = UserIdentity(username=str(info.get("username") or ""))
        return me["user"]

    async def auto_mitigate(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        body = event.get("object") or {}
        if event.get("type") == "DELETED" or (body.get("metadata") or {}).get("deletionTimestamp"):
            return
        hypotheses = (body.get("status") or {}).get("hypotheses") or []
        suggestion = hypotheses[0].get("suggestedMitigation") if hypotheses else None
        if not suggestion:
            return
        log = bind_object(body)
        try:
            incident = Incident.model_validate(dict(body))
        except ValueError as exc:
            log.warning("incident unreadable for auto-mitigation", error=str(exc)[:300])
            return
        namespace = incident.metadata.namespace or ""
        target = suggestion.get("target") or {}
        # The Incident's own namespace (design invariant 11); a suggestion or Incident naming another
        # one is refused by auto_mitigation without reading anything there.
        target_ns = namespace
        kube = kube_of(memo)
        async with locks.setdefault(f"{target_ns}/{target.get('name')}", asyncio.Lock()):
            now = clock()
            policies = [load_policy(p, now=now) for p in await store.read_policies(kube, {target_ns})]
            existing: list[PastMitigation] = [
                past_mitigation(m) for m in await store.read_mitigations(kube, {namespace, target_ns})
            ]
            workload = await store.read_target(
                kube, str(target.get("kind", "Deployment")), target_ns, target["name"]
            )
            outcome = auto_mitigation(incident, policies, existing, target_facts(workload), now)
            if outcome.mitigation is None:
                log.debug("no auto-mitigation", reason=outcome.reason)
                return
            auto = outcome.mitigation
            if outcome.create:
                # The admission policy requires the requester to be whoever creates it: us.
                requester = await operator_identity(kube)
                created = await store.create_mitigation(
                    kube,
                    auto.manifest(incident.metadata.name or "", incident.metadata.uid or "", requester),
                )
                if created:
                    log.info("auto-mitigation created", mitigation=auto.name, rule=auto.created_by)
                    kopf.info(body, reason="AutoMitigation", message=outcome.reason[:1000])
        await _record(kube, body, auto.listing(suggested=not outcome.create), log)

    return auto_mitigate


async def _record(kube: KubeClient, body: Mapping[str, Any], entry: IncidentMitigation, log: Any) -> None:
    """Add the entry to Incident.status.mitigations unless it is already listed (only that list)."""
    current = list((body.get("status") or {}).get("mitigations") or [])
    if any(item.get("name") == entry.name for item in current):
        return
    try:
        await store.set_incident_mitigations(kube, body, [*current, entry.to_dict()][-20:])
    except KubeError as exc:
        if not exc.conflict:
            raise
        log.info("incident changed while recording the mitigation; the next event retries")


# --- audit ----------------------------------------------------------------------------------------


async def record_requester(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Who asked, as far as the object can tell (see docs/policy-guide.md, "Audit")."""
    if (body.get("status") or {}).get("requestedBy"):
        return
    requester = ((body.get("spec") or {}).get("requester") or {}).get("username")
    who = requested_by(body.get("metadata") or {}, requester if isinstance(requester, str) else None)
    patch.setdefault("status", {})["requestedBy"] = who
    kopf.info(body, reason="Requested", message=f"requested by {who}")


# --- notifications --------------------------------------------------------------------------------


class Notifier:
    """Holds the outbox between events and flushes it on a timer."""

    def __init__(self, sink: WebhookSink, slack: bool, clock: Clock, limits: Limits | None = None) -> None:
        self.sink = sink
        self.slack = slack
        self.clock = clock
        self.limits = limits or Limits()
        self.outbox = Outbox()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        self.outbox, batch = flush(self.outbox, self.clock(), self.limits)
        if batch is None:
            return
        payload = slack_payload(batch) if self.slack else generic_payload(batch)
        log = bind_object({}, sink=redacted(self.sink.url))
        try:
            await self.sink.send(payload)
            log.info("notified", notices=len(batch.notices), omitted=batch.omitted)
        except Exception as exc:  # a webhook outage must never stop the operator
            log.warning("notification failed, batch dropped", error=type(exc).__name__)


def notifier_from_settings(config: Settings, clock: Clock) -> Notifier | None:
    """The webhook sink the settings ask for (``--notify-url`` / ``STANCH_NOTIFY_URL``), or None."""
    if config.notify_url is None:
        return None
    sink = WebhookSink(config.notify_url.get_secret_value())
    return Notifier(sink, slack=config.notify_format is NotifyFormat.SLACK, clock=clock)


def make_notify_handlers(clock: Clock) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    async def start(memo: kopf.Memo, **_: Any) -> None:
        config = memo[MEMO_SETTINGS]
        assert isinstance(config, Settings)
        notifier = notifier_from_settings(config, clock)
        if notifier is not None:
            notifier.task = asyncio.create_task(notifier.run())
            memo[MEMO_NOTIFIER] = notifier

    async def stop(memo: kopf.Memo, **_: Any) -> None:
        notifier = memo.get(MEMO_NOTIFIER)
        if isinstance(notifier, Notifier):
            if notifier.task is not None:
                notifier.task.cancel()
            await notifier.flush()
            await notifier.sink.close()
        client = memo.get(MEMO_KUBE)
        if isinstance(client, KubeClient):
            await client.close()

    async def on_mitigation(event: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> None:
        notifier = memo.get(MEMO_NOTIFIER)
        if not isinstance(notifier, Notifier) or event.get("type") == "DELETED":
            return
        notice = notice_for(event.get("object") or {}, clock())
        if notice is not None:
            notifier.outbox = offer(notifier.outbox, notice, clock(), notifier.limits)

    return start, stop, on_mitigation


# --- registration ---------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, metrics: Metrics, clock: Clock = _now) -> None:
    g, v = stanch.GROUP, stanch.VERSION
    validate = make_validate(clock)
    for plural in ("mitigationpolicies", "clustermitigationpolicies"):
        for handler_id, decorator in (
            ("policy-validate", kopf.on.create),
            ("policy-validate-on-update", kopf.on.update),
            ("policy-validate-on-resume", kopf.on.resume),
        ):
            decorator(g, v, plural, id=handler_id, registry=registry)(
                metrics.instrument(handler_id)(validate)
            )
    kopf.on.event(g, v, "incidents", id="incident-auto-mitigate", registry=registry)(
        metrics.instrument("incident-auto-mitigate")(make_auto_mitigate(clock))
    )
    kopf.on.create(g, v, "mitigations", id="mitigation-requested-by", registry=registry)(
        metrics.instrument("mitigation-requested-by")(record_requester)
    )
    start, stop, on_mitigation = make_notify_handlers(clock)
    kopf.on.startup(id="policy-notify-start", registry=registry)(start)
    kopf.on.cleanup(id="policy-notify-stop", registry=registry)(stop)
    kopf.on.event(g, v, "mitigations", id="mitigation-notify", registry=registry)(on_mitigation)


__all__ = ["register"]
