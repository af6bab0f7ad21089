"""Configuration rule: a ConfigMap, Secret, Service, HPA or quota changed just before the errors."""

from __future__ import annotations

import re

from stanch.core.analysis.context import RuleContext
from stanch.core.analysis.correlation import Correlated, describe_offset
from stanch.core.analysis.rules.make import hypothesis
from stanch.core.models import ConfigChange, Hypothesis, HypothesisCategory, SuggestedMitigation, TimelineKind

# The config collector describes a single ConfigMap key flip as ``key NAME: OLD → NEW`` (values may be
# quoted; ``data.NAME`` and ``->`` are accepted too). Anything else is not a flip we can undo.
_KEY_FLIP = re.compile(
    r"^\s*(?:key\s+|data\.)?(?P<key>[-._a-zA-Z0-9]+)\s*:\s*(?P<old>.*?)\s*(?:→|->)\s*(?P<new>.*?)\s*$"
)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def key_flip(change: ConfigChange) -> tuple[str, str, str] | None:
    """``(key, old, new)`` when the change is one ConfigMap key set from one value to another."""
    if change.object.kind != "ConfigMap" or ";" in change.summary:
        return None
    match = _KEY_FLIP.match(change.summary)
    if match is None:
        return None
    return match.group("key"), _unquote(match.group("old")), _unquote(match.group("new"))


def _suggestion(ctx: RuleContext, change: ConfigChange) -> SuggestedMitigation | None:
    flip = key_flip(change)
    if flip is None:
        return None
    key, old, _ = flip
    return ctx.suggest(
        f"set {key} in ConfigMap {change.object.name} back to {old!r}",
        config_toggle={"configMap": change.object.name, "key": key, "value": old},
    )


def _confidence(corr: Correlated, change: ConfigChange) -> float:
    confidence = 25 + 40 * corr.proximity
    if change.referenced:
        confidence += 10
    return confidence


def config_change(ctx: RuleContext) -> Hypothesis | None:
    """The closest configuration change before the onset; a single ConfigMap key flip can be
    toggled back, anything else has to be reverted where it was made."""
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
    if change.referenced:
        supporting.append(f"the pods of {ctx.spec.target.name} use {chosen.change.label}")
    else:
        contradicting.append(f"the pod template does not reference {chosen.change.label} directly")
    if change.object.kind == "Secret":
        contradicting.append("Secret contents are never read: only the change time is known")
    suggestion = _suggestion(ctx, change)
    if suggestion is None:
        contradicting.append(
            f"no safe automatic undo for this change: revert {chosen.change.label} where it was made "
            "(Git, Helm, kubectl)"
        )
    return hypothesis(
        HypothesisCategory.CONFIG_CHANGE,
        f"{chosen.change.describe()} is the likely cause: the errors began "
        f"{describe_offset(chosen.offset)} after it changed",
        _confidence(chosen, change),
        supporting,
        contradicting,
        suggestion,
    )
