"""Config toggle: set one key of a ConfigMap (a feature flag), optionally with a rolling restart."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import ObjectKey, Patch, Precondition, Reads, Step, pointer
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction, revert_patch, with_generation
from stanch.core.plans.common import ActionPlan, MutatingEffect, PlanError, deployment_key, meta, rfc3339
from stanch.core.plans.restart import restart_patch
from stanch.core.plans.snapshot import ActionSnapshot, Snapshot, SnapshotPart
from stanch.core.redaction import is_sensitive_key, redact_text, shown_value
from stanch.core.world import World


class ConfigKey(SnapshotPart):
    """The toggled key as it was."""

    name: str
    uid: str | None = None
    key: str
    has_data: bool
    """Whether the ConfigMap had a ``data`` map at all."""
    present: bool
    value: str | None = None


class ConfigToggleSnapshot(ActionSnapshot):
    config_map: ConfigKey


class ConfigToggle(BaseAction[ConfigToggleSnapshot]):
    kind = ActionKind.CONFIG_TOGGLE
    part = ConfigToggleSnapshot

    def reads(
        self, spec: MitigationSpec, target: ObjectKey, snapshot: Snapshot[ConfigToggleSnapshot] | None
    ) -> Reads:
        assert spec.config_toggle is not None
        return Reads(
            target=target,
            hpa=True,
            config_map=ObjectKey("v1", "ConfigMap", spec.config_toggle.config_map, target.namespace),
        )

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> ConfigToggleSnapshot:
        assert spec.config_toggle is not None
        cm = world.config_map
        if cm is None:
            raise PlanError(
                f"spec.configToggle.configMap {spec.config_toggle.config_map!r} not found in the target's "
                "namespace; name an existing ConfigMap (kubectl get configmaps)"
            )
        data = cm.get("data")
        key = spec.config_toggle.key
        if is_sensitive_key(key):
            # The revert needs the old value, and status keeps no secret-looking value (nor can it
            # be restored from the cluster once overwritten): refuse rather than keep or lose it.
            raise PlanError(
                f"spec.configToggle.key {key!r} looks like a credential: Stanch keeps no secret values"
                " in status, so it could not restore this one exactly; keep credentials in a Secret,"
                " and toggle flags under names that are not credential-like"
            )
        if key not in (data or {}):
            have = ", ".join(sorted(data or {})[:20]) or "none"
            raise PlanError(
                f"spec.configToggle.key {key!r} is not in ConfigMap {spec.config_toggle.config_map!r} "
                f"(keys: {have}); a toggle changes an existing key: fix the key's spelling, or add the key "
                "to the ConfigMap first"
            )
        current = (data or {}).get(key)
        if isinstance(current, str) and redact_text(current) != current:
            # Same reason: the old value carries a credential (a URL with a password, a token), so
            # the snapshot could not keep it, and the revert could not restore it.
            raise PlanError(
                f"spec.configToggle.key {key!r}: its current value in ConfigMap"
                f" {spec.config_toggle.config_map!r} looks like it holds a credential, which Stanch keeps"
                " nowhere, so it could not put it back; move the credential to a Secret first"
            )
        return ConfigToggleSnapshot(
            config_map=ConfigKey(
                name=meta(cm)["name"],
                uid=meta(cm).get("uid"),
                key=key,
                has_data=data is not None,
                present=data is not None and key in data,
                value=(data or {}).get(key),
            )
        )

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[ConfigToggleSnapshot]) -> bool:
        return spec.config_toggle is not None and spec.config_toggle.restart

    def before(self, snapshot: Snapshot[ConfigToggleSnapshot], key: ObjectKey) -> Mapping[str, Any]:
        if key.kind != "ConfigMap":
            return super().before(snapshot, key)
        cm = snapshot.action.config_map
        if not cm.has_data:
            return {}
        return {"data": {cm.key: cm.value} if cm.present else {}}

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[ConfigToggleSnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        ct = spec.config_toggle
        assert ct is not None
        target = snapshot.target_object()
        cm = snapshot.action.config_map
        cm_key = ObjectKey("v1", "ConfigMap", cm.name, deployment_key(target).namespace)
        path = pointer("data", ct.key)
        # Values are shown by the one redaction rule: a secret-looking key's values never appear.
        old_shown, new_shown = repr(shown_value(ct.key, cm.value)), repr(shown_value(ct.key, ct.value))
        if cm.present and cm.value == ct.value:
            return ActionPlan(f"nothing to do: {ct.key} is already {new_shown}", (), (), "already applied")
        op = (
            {"op": "add", "path": path, "value": ct.value}
            if cm.has_data
            else {"op": "add", "path": "/data", "value": {ct.key: ct.value}}
        )
        tests = ((path, cm.value),) if cm.has_data else (("/data", None),)
        effects: list[MutatingEffect] = [
            Patch(
                key=cm_key,
                ops=(op,),
                precondition=Precondition(uid=cm.uid, tests=tests),
                step=Step.APPLY,
                description=f"{cm_key.display()} {ct.key}: {old_shown} → {new_shown}",
            )
        ]
        if ct.restart:
            effects.append(restart_patch(target, snapshot.taken_at, Step.APPLY))
        before = old_shown if cm.present else "(absent)"
        return ActionPlan(
            summary=f"set {cm_key.display()} key {ct.key}: {before} → {new_shown}"
            + (" and restart" if ct.restart else ""),
            changes=tuple(e.description for e in effects),
            apply=tuple(effects),
            revert_note=f"restores {ct.key} to {before}" + (" and restarts again" if ct.restart else ""),
        )

    def revert(
        self,
        plan: ActionPlan,
        snapshot: Snapshot[ConfigToggleSnapshot],
        *,
        applied_generation: int | None,
        at: datetime,
    ) -> tuple[MutatingEffect, ...]:
        out: list[MutatingEffect] = []
        for effect in plan.apply:
            assert isinstance(effect, Patch)
            if effect.key.kind == "Deployment":
                # The restart that came with the toggle: a new restart picks the old value up again.
                target = with_generation(snapshot.target.as_object(), applied_generation)
                out.append(restart_patch(target, rfc3339(at), Step.REVERT))
            else:
                out.append(
                    revert_patch(
                        effect, self.before(snapshot, effect.key), applied_generation=applied_generation
                    )
                )
        return tuple(out)
