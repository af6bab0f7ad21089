"""The policy step of the mitigation machine: read the policies, the target and the namespace's
Mitigations, and let :func:`stanch.core.policy.evaluate` decide.

Reads that fail raise, so no decision is recorded and nothing acts (fail closed). The deciding
policy also supplies guard defaults and signal templates for the rest of the Mitigation's life.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stanch.adapters.kube import KubeClient, KubeError
from stanch.core.models import GuardSpec, MitigationPolicySpec, PolicyDecision, SignalTemplate
from stanch.core.policy import (
    LoadedPolicy,
    evaluate,
    load_policy,
    past_mitigation,
    request_from,
    target_facts,
    with_application,
)


async def _policies(kube: KubeClient, namespace: str, now: datetime) -> list[LoadedPolicy]:
    objs = await kube.list("MitigationPolicy", namespace)
    try:
        objs += await kube.list("ClusterMitigationPolicy")
    except KubeError as exc:
        # An uninstalled cluster-scoped CRD means no cluster policies; anything else (forbidden,
        # unreachable) must not silently drop restrictions, so it propagates.
        if not exc.not_found:
            raise
    return [load_policy(o, now=now) for o in objs]


class PolicyEvaluator:
    """``decide(obj, now)`` for the machine's ``EvaluatePolicy`` effect."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def __call__(self, obj: Mapping[str, Any], now: datetime) -> PolicyDecision:
        request = request_from(obj)
        if request.scope_problem is not None:
            # Denied without reading anything in the other namespace.
            return evaluate(request, [], [], target_facts(None), now)
        # The Mitigation's own namespace: its target, its neighbours and its policies live there.
        ns = request.namespace
        target = await self._kube.get("Deployment", request.target_name, ns)
        node = None
        if request.spec.evacuate is not None:
            node = await self._kube.get("Node", request.spec.evacuate.node)
        history = [
            past_mitigation(m)
            for m in await self._kube.list("Mitigation", ns)
            if m["metadata"].get("uid") != obj["metadata"].get("uid")
        ]
        policies = await _policies(self._kube, ns, now)
        decision = evaluate(request, policies, history, target_facts(target, node), now)
        asked = decision.suspend_auto_sync
        if asked is not None and asked.application is not None:
            # The Application whose selfHeal would be suspended, as it is now (None: not found).
            namespace, name = asked.application.split("/", 1)
            try:
                application = await self._kube.get("Application", name, namespace)
            except KubeError:
                application = None  # not readable (no CRD, no RBAC): nothing is suspended, it says why
            decision = with_application(decision, application, ns, request.target_name)
        return decision


@dataclass(frozen=True)
class PolicyContext:
    """What the deciding policy contributes to the guard."""

    guard_defaults: GuardSpec | None = None
    templates: Mapping[str, SignalTemplate] = field(default_factory=dict)


async def policy_context(kube: KubeClient, ref: str | None) -> PolicyContext:
    """Guard defaults and signal templates of the policy named in ``status.policy.policy``
    (``MitigationPolicy/<ns>/<name>`` or ``ClusterMitigationPolicy/<name>``)."""
    if not ref:
        return PolicyContext()
    parts = ref.split("/")
    if parts[0] == "MitigationPolicy" and len(parts) == 3:
        obj = await kube.get("MitigationPolicy", parts[2], parts[1])
    elif parts[0] == "ClusterMitigationPolicy" and len(parts) == 2:
        obj = await kube.get("ClusterMitigationPolicy", parts[1])
    else:
        return PolicyContext()
    if obj is None:
        return PolicyContext()
    try:
        spec = MitigationPolicySpec.model_validate(obj.get("spec") or {})
    except ValueError:
        # An invalid policy contributes no defaults; the built-in ones apply.
        return PolicyContext()
    return PolicyContext(guard_defaults=spec.guard_defaults, templates={t.name: t for t in spec.signals})
