"""Configuration rule: a ConfigMap, Secret, Service, HPA or quota changed just before the errors."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from stanch.core.investigation.analysis.context import RuleContext
from stanch.core.investigation.analysis.correlation import Correlated, describe_offset
from stanch.core.investigation.analysis.rules.make import hypothesis
from stanch.core.investigation.config_memory import HpaChange, parse_hpa_change
from stanch.core.models import ConfigChange, Hypothesis, HypothesisCategory, SuggestedMitigation, TimelineKind

# A single ConfigMap key change is described as ``key NAME: OLD → NEW`` when the old value is known
# (values may be quoted; ``data.NAME`` and ``->`` are accepted too), or ``key NAME changed to NEW``
# when only the new value is (see ``stanch.core.investigation.config_memory``); either may end with
# `` (updated by MANAGER)``. Anything else is not a flip we can undo.
_SUFFIX = re.compile(r"\s+\((?:updated )?by [^()]*\)\s*$")
_KEY_FLIP = re.compile(
    r"^\s*(?:key\s+|data\.)?(?P<key>[-._a-zA-Z0-9]+)\s*:\s*(?P<old>.*?)\s*(?:→|->)\s*(?P<new>.*?)\s*$"
)
_KEY_SET = re.compile(r"^\s*key\s+(?P<key>[-._a-zA-Z0-9]+)\s+changed to\s+(?P<new>.*?)\s*$")
_SWITCHED_ON = {
    "true": "false",
    "on": "off",
    "enabled": "disabled",
    "enable": "disable",
    "1": "0",
    "yes": "no",
}
"""Boolean-like values that switch something on, and the value that switches it off again."""
_ENDPOINTS = re.compile(r"\b(?P<ready>\d+)/(?P<total>\d+) endpoints ready\b")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


@dataclass(frozen=True)
class KeyChange:
    """One ConfigMap key set to ``new``; ``old`` is ``None`` when the previous value is unknown."""

    key: str
    old: str | None
    new: str

    @property
    def undo_value(self) -> str | None:
        """The value to set back: the old one, else the opposite of a boolean-like switch-on."""
        return self.old if self.old is not None else switched_off(self.new)


def switched_off(value: str) -> str | None:
    """``false`` for ``true`` (``off`` for ``on`` …, same case); ``None`` when ``value`` is not a
    boolean-like value that switches something on."""
    off = _SWITCHED_ON.get(value.strip().lower())
    if off is None:
        return None
    if value.isupper():
        return off.upper()
    return off.capitalize() if value[:1].isupper() else off


def key_change(change: ConfigChange) -> KeyChange | None:
    """The single ConfigMap key a change set, with its old value when known."""
    if change.object.kind != "ConfigMap" or ";" in change.summary:
        return None
    summary = _SUFFIX.sub("", change.summary)
    match = _KEY_SET.match(summary)
    if match is not None:
        return KeyChange(match.group("key"), None, _unquote(match.group("new")))
    match = _KEY_FLIP.match(summary)
    if match is None:
        return None
    return KeyChange(match.group("key"), _unquote(match.group("old")), _unquote(match.group("new")))


def key_flip(change: ConfigChange) -> tuple[str, str, str] | None:
    """``(key, old, new)`` when the change is one ConfigMap key set from a known value to another."""
    found = key_change(change)
    if found is None or found.old is None:
        return None
    return found.key, found.old, found.new


_HPA_NOW = re.compile(r"(?P<min>\d+)\.\.(?P<max>\d+) replicas, current (?P<current>\d+|None)")
HPA_RAISE_FACTOR = 2.0
"""An HPA held at its ceiling whose previous bounds are unknown: scale through it to twice the
replicas it runs (raising its minReplicas and maxReplicas), a capacity step, not a guess of the old
value."""


@dataclass(frozen=True)
class HpaUndo:
    """The way back from an HPA change: a suggestion, or the reason there is none."""

    suggestion: SuggestedMitigation | None
    notes: tuple[str, ...]
    """Contradicting evidence: what the suggestion does not undo, or what it infers."""


def hpa_undo(ctx: RuleContext, change: ConfigChange) -> HpaUndo:
    """Set the changed bounds and targets back to what Stanch saw before the change (``autoscaler``);
    without that memory, raise the bounds of an HPA held at its ceiling (an HPA-aware ``scale``);
    else say why nothing can be suggested."""
    name = change.object.name
    found = parse_hpa_change(change.summary)
    if found is not None and (found.bounds or found.targets):
        return _restore(ctx, name, found)
    now = _HPA_NOW.search(change.summary)
    if now is not None and now["current"] != "None" and int(now["current"]) >= int(now["max"]):
        current = int(now["current"])
        raised = max(int(now["max"]), math.ceil(current * HPA_RAISE_FACTOR))
        return HpaUndo(
            ctx.suggest(
                f"raise the bounds of HPA {name}: scale through it to {raised} replicas (its minReplicas and"
                f" maxReplicas move, never the replicas it owns); the values before the change are unknown",
                scale={"factor": HPA_RAISE_FACTOR},
            ),
            (
                f"the values of HPA {name} before the change are unknown to Stanch (it did not see the"
                f" previous version); it runs {current} replicas at its maxReplicas {now['max']}, so the"
                " suggestion raises capacity rather than restoring the old values: revert the change"
                " where it was made (Git, Helm, kubectl)",
            ),
        )
    return HpaUndo(
        None,
        (
            f"no safe automatic undo for HPA {name}: Stanch did not see its spec before the change"
            " (changed before the operator watched it, or the operator restarted since), and it is not"
            " held at its maxReplicas; revert the change where it was made (Git, Helm, kubectl)",
        ),
    )


def _restore(ctx: RuleContext, name: str, found: HpaChange) -> HpaUndo:
    action: dict[str, object] = {}
    for field, old, _ in found.bounds:
        action[field] = old
    if found.targets:
        action["targetUtilization"] = [
            {"resource": resource, "averageUtilization": old} for resource, old, _ in found.targets
        ]
    lines = [f"{field} back to {old}" for field, old, _ in found.bounds]
    lines += [f"{resource} utilization target back to {old}%" for resource, old, _ in found.targets]
    notes = tuple(
        f"HPA {name}: {what}, which the autoscaler action does not restore: revert that where it was made"
        for what in found.unrestorable
    )
    summary = f"set HPA {name} " + ", ".join(lines) + " (as Stanch saw it before the change)"
    try:
        suggestion = ctx.suggest(summary, autoscaler=action)
    except ValueError as error:  # bounds that contradict each other: never a suggestion that cannot run
        return HpaUndo(None, (f"the remembered values of HPA {name} cannot be set back: {error}",))
    return HpaUndo(suggestion, notes)


def _suggestion(ctx: RuleContext, change: ConfigChange) -> SuggestedMitigation | None:
    found = key_change(change)
    if found is None or found.undo_value is None:
        return None
    value = found.undo_value
    how = "back to" if found.old is not None else "to the opposite of the new value,"
    return ctx.suggest(
        f"set {found.key} in ConfigMap {change.object.name} {how} {value!r}",
        config_toggle={"configMap": change.object.name, "key": found.key, "value": value},
    )


def endpoints(change: ConfigChange) -> tuple[int, int] | None:
    """``(ready, total)`` endpoints of a Service change, from the collector's summary."""
    if change.object.kind != "Service":
        return None
    match = _ENDPOINTS.search(change.summary)
    return (int(match.group("ready")), int(match.group("total"))) if match else None


HEALTHY_SERVICE_FACTOR = 0.4
"""A Service whose endpoints are all ready routes traffic to the pods as it should: its change is
weak evidence of a cause."""


def _confidence(corr: Correlated, change: ConfigChange) -> float:
    confidence = 25 + 40 * corr.proximity
    if change.referenced:
        confidence += 10
    counts = endpoints(change)
    if counts is not None:
        ready, total = counts
        if total and ready == total:
            confidence *= HEALTHY_SERVICE_FACTOR
        elif ready == 0:
            confidence += 10
    return confidence


def config_change(ctx: RuleContext) -> Hypothesis | None:
    """The closest configuration change before the onset; a single ConfigMap key flip can be
    toggled back, anything else has to be reverted where it was made. Objects created together with
    the workload are not changes (correlation gives them no weight); a Service is judged by its
    endpoints."""
    candidates = [c for c in ctx.causal_changes(TimelineKind.CONFIG_CHANGE) if not c.change.is_scaling]
    if not candidates:
        return None
    chosen = max(
        candidates,
        key=lambda c: _confidence(c, c.change.config) if c.change.config else 0.0,
    )
    change = chosen.change.config
    assert change is not None
    supporting = [chosen.sentence()]
    contradicting = []
    if change.object.kind == "HorizontalPodAutoscaler":
        supporting.append(f"{chosen.change.label} sets the replica count of {ctx.spec.target.name}")
    elif change.referenced:
        supporting.append(f"the pods of {ctx.spec.target.name} use {chosen.change.label}")
    else:
        contradicting.append(f"the pod template does not reference {chosen.change.label} directly")
    if change.object.kind == "Secret":
        contradicting.append("Secret contents are never read: only the change time is known")
    counts = endpoints(change)
    if counts is not None and counts[1] and counts[0] == counts[1]:
        contradicting.append(
            f"all {counts[1]} endpoints of {chosen.change.label} are ready and its selector matches the "
            "pods: it routes traffic to them as it should"
        )
    elif counts is not None and counts[0] == 0:
        supporting.append(f"{chosen.change.label} has no ready endpoint: its traffic goes nowhere")
    found = key_change(change)
    statement = (
        f"{chosen.change.describe()} is the likely cause: the errors began "
        f"{describe_offset(chosen.offset)} after it changed"
    )
    if found is not None and found.old is None and found.undo_value is not None:
        inference = (
            f"the previous value of {found.key} is unknown; {found.undo_value!r} is inferred as the "
            f"opposite of {found.new!r}"
        )
        statement += f" ({inference})"
        contradicting.append(inference + ": check it before applying")
    if change.object.kind == "HorizontalPodAutoscaler":
        undo = hpa_undo(ctx, change)
        suggestion = undo.suggestion
        contradicting.extend(undo.notes)
    else:
        suggestion = _suggestion(ctx, change)
    if suggestion is None and change.object.kind != "HorizontalPodAutoscaler":
        contradicting.append(
            f"no safe automatic undo for this change: revert {chosen.change.label} where it was made "
            "(Git, Helm, kubectl)"
        )
    return hypothesis(
        HypothesisCategory.CONFIG_CHANGE,
        statement,
        _confidence(chosen, change),
        supporting,
        contradicting,
        suggestion,
    )
