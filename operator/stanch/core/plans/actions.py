"""Plans for every action: snapshot, apply, "is it applied?", revert, promote, drift.

Everything after :func:`take_snapshot` is computed from the persisted snapshot alone, never from the
live object, so re-running a step after a crash produces byte-identical effects: a scale by a factor
is computed from the snapshot's replicas, a restart's timestamp is the snapshot's ``takenAt``.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import Create, Delete, Evict, ObjectKey, Patch, Precondition, pointer
from stanch.core.label_selectors import selects
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.autosync import HELD
from stanch.core.plans.common import (
    CANARY_LABEL,
    CORDONED_BY,
    RESTARTED_AT,
    ActionPlan,
    MutatingEffect,
    PlanError,
    deployment_key,
    meta,
    rfc3339,
    strip_object,
)
from stanch.core.plans.jsonpatch import apply_ops, get_path, prune_empty
from stanch.core.plans.rollback import equal_ignore_hash, rollback_patch, snapshot_rollback
from stanch.core.world import World

DIFF_MAX = 8000


def canary_name(target: str, mitigation: str) -> str:
    name = f"{target}-canary-{mitigation}"
    if len(name) > 253:
        raise PlanError(f"canary name {name[:60]}... exceeds 253 characters; shorten the Mitigation's name")
    return name


# --- snapshot -------------------------------------------------------------------------------------


def take_snapshot(spec: MitigationSpec, world: World, *, mitigation: str, now: datetime) -> dict[str, Any]:
    """The pre-change record persisted before anything is touched. Raises PlanError."""
    target = world.target
    if target is None:
        raise PlanError(
            f"spec.target: {spec.target.display()} not found (kubectl get deployments -n <namespace>); "
            "spec.target is immutable, so delete this Mitigation and create one naming an existing workload"
        )
    # The HPA is kept for every action: it owns spec.replicas, which drift checks must then ignore.
    snap: dict[str, Any] = {
        "takenAt": rfc3339(now),
        "target": strip_object(target),
        "hpa": strip_object(world.hpa),
    }
    action = spec.action
    paused = bool((target.get("spec") or {}).get("paused"))
    if action == ActionKind.ROLLBACK:
        assert spec.rollback is not None
        snap["rollback"] = snapshot_rollback(target, world.replica_sets, spec.rollback.to_revision)
    elif action == ActionKind.RESTART:
        assert spec.restart is not None
        if spec.restart.pods and not world.pods:
            raise PlanError(
                f"spec.restart.pods: none of {', '.join(spec.restart.pods)} exist (they may have been "
                "replaced already); name current pods (kubectl get pods) or leave pods empty for a "
                "rolling restart"
            )
        if not spec.restart.pods and paused:
            raise PlanError(
                "can't restart a paused Deployment (spec.paused: true), as kubectl refuses too; "
                "resume it first"
            )
        selector = (target.get("spec") or {}).get("selector") or {}
        foreign = sorted(
            str(meta(p).get("name"))
            for p in world.pods
            if meta(p).get("name") in spec.restart.pods and not selects(selector, meta(p).get("labels") or {})
        )
        if foreign:
            raise PlanError(
                f"spec.restart.pods: {', '.join(foreign)} not selected by {spec.target.display()}'s "
                "selector (pods of another workload); name pods of the target only "
                "(kubectl get pods -l <its selector>)"
            )
        snap["pods"] = [
            {"name": meta(p).get("name"), "uid": meta(p).get("uid")}
            for p in world.pods
            if meta(p).get("name") in spec.restart.pods
        ]
    elif action == ActionKind.CONFIG_TOGGLE:
        assert spec.config_toggle is not None
        cm = world.config_map
        if cm is None:
            raise PlanError(
                f"spec.configToggle.configMap {spec.config_toggle.config_map!r} not found in the target's "
                "namespace; name an existing ConfigMap (kubectl get configmaps)"
            )
        data = cm.get("data")
        key = spec.config_toggle.key
        if key not in (data or {}):
            have = ", ".join(sorted(data or {})[:20]) or "none"
            raise PlanError(
                f"spec.configToggle.key {key!r} is not in ConfigMap {spec.config_toggle.config_map!r} "
                f"(keys: {have}); a toggle changes an existing key: fix the key's spelling, or add the key "
                "to the ConfigMap first"
            )
        snap["configMap"] = {
            "name": meta(cm).get("name"),
            "uid": meta(cm).get("uid"),
            "key": key,
            "hasData": data is not None,
            "present": data is not None and key in data,
            "value": (data or {}).get(key),
        }
    elif action == ActionKind.EVACUATE:
        assert spec.evacuate is not None
        node = world.node
        if node is None:
            raise PlanError(
                f"spec.evacuate.node {spec.evacuate.node!r}: no such node; name an existing node "
                "(kubectl get nodes)"
            )
        unschedulable = (node.get("spec") or {}).get("unschedulable")
        snap["node"] = {
            "name": meta(node).get("name"),
            "uid": meta(node).get("uid"),
            "unschedulable": unschedulable,
            "hasAnnotations": meta(node).get("annotations") is not None,
            # Write-ahead: whether *we* cordon it (then, and only then, the revert uncordons).
            "cordonedBy": None if unschedulable else f"{meta(target).get('namespace')}/{mitigation}",
        }
        snap["pods"] = [
            {"name": meta(p).get("name"), "uid": meta(p).get("uid")}
            for p in world.pods_on_node
            if not meta(p).get("deletionTimestamp")
        ]
    elif action == ActionKind.CANARY:
        snap["canary"] = canary_name(spec.target.name, mitigation)
    return snap


# --- apply ----------------------------------------------------------------------------------------


def _restart_patch(target: Mapping[str, Any], at: str, step: str) -> Patch:
    tmpl_meta = ((target.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if tmpl_meta.get("annotations") is not None:
        op: dict[str, Any] = {
            "op": "add",
            "path": pointer("spec", "template", "metadata", "annotations", RESTARTED_AT),
            "value": at,
        }
    else:
        op = {"op": "add", "path": "/spec/template/metadata/annotations", "value": {RESTARTED_AT: at}}
    key = deployment_key(target)
    return Patch(
        key=key,
        ops=(op,),
        precondition=Precondition(generation=meta(target).get("generation")),
        step=step,
        description=f"rolling restart of {key.display()} (restartedAt {at})",
    )


def _hpa_key(hpa: Mapping[str, Any]) -> ObjectKey:
    return ObjectKey(
        "autoscaling/v2", "HorizontalPodAutoscaler", meta(hpa)["name"], meta(hpa).get("namespace")
    )


def _scale_target(spec: MitigationSpec, current: int) -> int:
    assert spec.scale is not None
    if spec.scale.replicas is not None:
        return spec.scale.replicas
    assert spec.scale.factor is not None
    return math.ceil(current * spec.scale.factor)


def _container_index(template: Mapping[str, Any], name: str | None) -> int:
    containers = (template.get("spec") or {}).get("containers") or []
    if name is None:
        if not containers:
            raise PlanError("the target's pod template has no containers")
        return 0
    for i, c in enumerate(containers):
        if c.get("name") == name:
            return i
    have = ", ".join(str(c.get("name")) for c in containers)
    raise PlanError(f"spec.canary.container {name!r} not in the pod template (containers: {have})")


def _patched_container(spec: MitigationSpec, container: Mapping[str, Any]) -> dict[str, Any]:
    assert spec.canary is not None
    out = copy.deepcopy(dict(container))
    if spec.canary.image is not None:
        out["image"] = spec.canary.image
    if spec.canary.env:
        env = [e for e in out.get("env") or [] if e.get("name") not in {v.name for v in spec.canary.env}]
        env.extend({"name": v.name, "value": v.value} for v in spec.canary.env)
        out["env"] = env
    if spec.canary.args is not None:
        out["args"] = list(spec.canary.args)
    return out


def starts_pods(spec: MitigationSpec, snapshot: Mapping[str, Any]) -> bool:
    """Whether the action makes new pods start (whose cold start the guard lets settle): a new
    template, a canary, evicted pods replaced elsewhere, or more replicas. A scale-down, a pause or
    a config change without restart starts none, and is judged from its first check."""
    action = spec.action
    if action in (ActionKind.ROLLBACK, ActionKind.RESTART, ActionKind.CANARY, ActionKind.EVACUATE):
        return True
    if action == ActionKind.CONFIG_TOGGLE:
        return spec.config_toggle is not None and spec.config_toggle.restart
    if action == ActionKind.SCALE:
        current = int((snapshot["target"].get("spec") or {}).get("replicas", 1))
        return _scale_target(spec, current) > current
    return False


def plan(
    spec: MitigationSpec, snapshot: Mapping[str, Any], *, mitigation: str, mitigation_uid: str
) -> ActionPlan:
    """The change, from the snapshot alone."""
    target: Mapping[str, Any] = snapshot["target"]
    locked = snapshot.get("lockedGeneration")
    if locked is not None:
        # Our lock annotation bumped the Deployment's generation (annotation changes do); every
        # precondition of the plan is on the Deployment as we locked it, not as we first read it.
        target = _with_generation(target, locked)
    tspec = target.get("spec") or {}
    key = deployment_key(target)
    gen = meta(target).get("generation")
    action = spec.action
    if action == ActionKind.ROLLBACK:
        chosen = snapshot["rollback"]
        if equal_ignore_hash(chosen["template"], tspec.get("template")):
            return ActionPlan(
                summary=f"nothing to do: the current template already matches revision {chosen['revision']}",
                changes=(),
                apply=(),
                noop_reason=f"current template already matches revision {chosen['revision']}",
            )
        patch = rollback_patch(target, chosen, mitigation, snapshot.get(HELD))
        return ActionPlan(
            summary=f"roll back {key.display()} to revision {chosen['revision']} ({chosen['replicaSet']})",
            changes=tuple(_diff_lines(tspec.get("template"), patch.ops[0]["value"], "spec.template")),
            apply=(patch,),
            revert_note="restores the snapshot's pod template and annotations",
        )
    if action == ActionKind.SCALE:
        hpa = snapshot.get("hpa")
        current = int(tspec.get("replicas", 1))
        desired = _scale_target(spec, current)
        if hpa is not None:
            hspec = hpa.get("spec") or {}
            old_min, old_max = hspec.get("minReplicas"), int(hspec["maxReplicas"])
            eff_min = 1 if old_min is None else int(old_min)
            if desired < 1:
                raise PlanError(
                    f"{_hpa_key(hpa).display()} targets this workload and cannot go below 1 replica"
                )
            new_min = desired if desired >= eff_min else min(eff_min, desired)
            new_max = max(old_max, desired) if desired >= eff_min else desired
            if (new_min, new_max) == (eff_min, old_max) and old_min is not None:
                return ActionPlan(
                    f"nothing to do: HPA already at min {new_min} max {new_max}", (), (), "already applied"
                )
            hpa_patch = Patch(
                key=_hpa_key(hpa),
                ops=(
                    {"op": "add", "path": "/spec/minReplicas", "value": new_min},
                    {"op": "replace", "path": "/spec/maxReplicas", "value": new_max},
                ),
                precondition=Precondition(
                    uid=meta(hpa).get("uid"),
                    tests=(("/spec/minReplicas", old_min), ("/spec/maxReplicas", old_max)),
                ),
                step="Apply",
                description=(
                    f"raise the HPA instead of fighting it: min {eff_min} → {new_min}, "
                    f"max {old_max} → {new_max}"
                ),
            )
            return ActionPlan(
                summary=f"scale {key.display()} to {desired} via {_hpa_key(hpa).display()}",
                changes=(
                    f"hpa.spec.minReplicas: {old_min} → {new_min}",
                    f"hpa.spec.maxReplicas: {old_max} → {new_max}",
                ),
                apply=(hpa_patch,),
                revert_note=f"restores minReplicas {old_min} and maxReplicas {old_max}",
            )
        if desired == current:
            return ActionPlan(
                f"nothing to do: {key.display()} already has {current} replicas", (), (), "already applied"
            )
        patch = Patch(
            key=key,
            ops=({"op": "replace", "path": "/spec/replicas", "value": desired},),
            precondition=Precondition(generation=gen, tests=(("/spec/replicas", current),)),
            step="Apply",
            description=f"replicas {current} → {desired}",
        )
        return ActionPlan(
            summary=f"scale {key.display()}: replicas {current} → {desired}",
            changes=(f"spec.replicas: {current} → {desired}",),
            apply=(patch,),
            revert_note=f"restores replicas {current}",
        )
    if action == ActionKind.RESTART:
        assert spec.restart is not None
        if spec.restart.pods:
            deletes = tuple(
                Delete(
                    key=ObjectKey("v1", "Pod", p["name"], key.namespace),
                    precondition=Precondition(uid=p["uid"]),
                    step="Apply",
                    description=f"delete pod {p['name']}",
                )
                for p in snapshot.get("pods", [])
            )
            missing = sorted(set(spec.restart.pods) - {p["name"] for p in snapshot.get("pods", [])})
            return ActionPlan(
                summary=f"restart pods {', '.join(spec.restart.pods)}"
                + (f" (not found, skipped: {', '.join(missing)})" if missing else ""),
                changes=tuple(d.description for d in deletes),
                apply=deletes,
                revert_note="a restart cannot be undone: the pods were replaced; nothing to revert",
                reversible=False,
            )
        patch = _restart_patch(target, snapshot["takenAt"], "Apply")
        return ActionPlan(
            summary=f"rolling restart of {key.display()} (kubectl rollout restart)",
            changes=(f"spec.template.metadata.annotations[{RESTARTED_AT}] = {snapshot['takenAt']}",),
            apply=(patch,),
            revert_note="a restart cannot be undone: the pods were replaced; nothing to revert",
            reversible=False,
        )
    if action == ActionKind.CONFIG_TOGGLE:
        ct = spec.config_toggle
        assert ct is not None
        cm = snapshot["configMap"]
        cm_key = ObjectKey("v1", "ConfigMap", cm["name"], key.namespace)
        path = pointer("data", ct.key)
        if cm["present"] and cm["value"] == ct.value:
            return ActionPlan(f"nothing to do: {ct.key} is already {ct.value!r}", (), (), "already applied")
        op = (
            {"op": "add", "path": path, "value": ct.value}
            if cm["hasData"]
            else {"op": "add", "path": "/data", "value": {ct.key: ct.value}}
        )
        tests = ((path, cm["value"]),) if cm["hasData"] else (("/data", None),)
        effects: list[MutatingEffect] = [
            Patch(
                key=cm_key,
                ops=(op,),
                precondition=Precondition(uid=cm["uid"], tests=tests),
                step="Apply",
                description=f"{cm_key.display()} {ct.key}: {cm['value']!r} → {ct.value!r}",
            )
        ]
        if ct.restart:
            effects.append(_restart_patch(target, snapshot["takenAt"], "Apply"))
        before = repr(cm["value"]) if cm["present"] else "(absent)"
        return ActionPlan(
            summary=f"set {cm_key.display()} key {ct.key}: {before} → {ct.value!r}"
            + (" and restart" if ct.restart else ""),
            changes=tuple(e.description for e in effects),
            apply=tuple(effects),
            revert_note=f"restores {ct.key} to {before}" + (" and restarts again" if ct.restart else ""),
        )
    if action == ActionKind.EVACUATE:
        return _evacuate_plan(snapshot, key.namespace)
    if action == ActionKind.PAUSE:
        assert spec.pause is not None
        want = not spec.pause.resume
        if bool(tspec.get("paused")) == want:
            return ActionPlan(f"nothing to do: spec.paused is already {want}", (), (), "already applied")
        patch = Patch(
            key=key,
            ops=({"op": "add", "path": "/spec/paused", "value": want},),
            precondition=Precondition(generation=gen),
            step="Apply",
            description=f"spec.paused → {want}",
        )
        return ActionPlan(
            summary=f"{'pause' if want else 'resume'} the rollout of {key.display()}",
            changes=(f"spec.paused: {bool(tspec.get('paused'))} → {want}",),
            apply=(patch,),
            revert_note=f"restores spec.paused {bool(tspec.get('paused'))}",
        )
    assert action == ActionKind.CANARY
    manifest = canary_manifest(spec, target, snapshot["canary"], mitigation, mitigation_uid)
    template = tspec.get("template") or {}
    index = _container_index(template, spec.canary.container if spec.canary else None)
    container = template["spec"]["containers"][index]
    fixed = _patched_container(spec, container)
    promote_ops = tuple(
        {
            "op": "add",
            "path": pointer("spec", "template", "spec", "containers", index, field),
            "value": fixed[field],
        }
        for field in ("image", "env", "args")
        if field in fixed and fixed.get(field) != container.get(field)
    )
    canary_key = ObjectKey("apps/v1", "Deployment", snapshot["canary"], key.namespace)
    promote: tuple[MutatingEffect, ...] = (
        Patch(
            key=key,
            ops=promote_ops,
            precondition=Precondition(
                generation=gen,
                tests=(
                    (pointer("spec", "template", "spec", "containers", index, "name"), container.get("name")),
                ),
            ),
            step="Promote",
            description=f"promote the fix into {key.display()}",
        ),
        Delete(key=canary_key, precondition=Precondition(), step="Promote", description="remove the canary"),
    )
    return ActionPlan(
        summary=f"canary {canary_key.display()} with {spec.canary.replicas if spec.canary else 1} replica(s)",
        changes=tuple(_diff_lines(container, fixed, f"containers[{index}]")),
        apply=(
            Create(
                manifest=manifest, owner_uid=mitigation_uid, step="Apply", description="create the canary"
            ),
        ),
        promote=promote,
        revert_note="deletes the canary (abort); the stable Deployment was never touched",
    )


def _evacuate_plan(snapshot: Mapping[str, Any], namespace: str | None) -> ActionPlan:
    """Cordon (unless it already was) in ``Apply``, then evict the workload's pods in ``Evict``.

    The cordon patch also sets :data:`CORDONED_BY` to the snapshot's ``cordonedBy``, atomically and
    conditional on the node being schedulable with no such annotation: the annotation proves the
    cordon is ours, and only then does a revert uncordon (conditional on both). A node that was
    already cordoned gets no patch, so its revert changes nothing.
    """
    node = snapshot["node"]
    node_key = ObjectKey("v1", "Node", node["name"])
    by = node.get("cordonedBy")
    apply: list[MutatingEffect] = []
    if not node["unschedulable"]:
        mark = pointer("metadata", "annotations", CORDONED_BY)
        ops: tuple[Mapping[str, Any], ...] = (
            {"op": "add", "path": "/spec/unschedulable", "value": True},
            {"op": "add", "path": mark, "value": by}
            if node.get("hasAnnotations", True)
            else {"op": "add", "path": "/metadata/annotations", "value": {CORDONED_BY: by}},
        )
        tests = (
            ("/spec/unschedulable", node["unschedulable"]),
            (mark, None) if node.get("hasAnnotations", True) else ("/metadata/annotations", None),
        )
        apply.append(
            Patch(
                key=node_key,
                ops=ops,
                precondition=Precondition(uid=node["uid"], tests=tests),
                step="Apply",
                description=f"cordon {node['name']}",
            )
        )
    evict = tuple(
        Evict(
            key=ObjectKey("v1", "Pod", p["name"], namespace),
            precondition=Precondition(uid=p["uid"]),
            step="Evict",
            description=f"evict pod {p['name']} from {node['name']}",
        )
        for p in snapshot["pods"]
    )
    return ActionPlan(
        summary=f"evacuate Deployment/{namespace}/{snapshot['target']['metadata']['name']} from node "
        f"{node['name']}: "
        + ("cordon, " if apply else "already cordoned, ")
        + f"evict {len(evict)} pod(s) (PodDisruptionBudgets apply)",
        changes=tuple(e.description for e in (*apply, *evict)),
        apply=tuple(apply),
        evict=evict,
        revert_note=(
            "uncordons the node (Stanch cordoned it); evicted pods are not moved back"
            if apply
            else "leaves the node cordoned (it was cordoned before); evicted pods are not moved back"
        ),
    )


def _uncordon_patch(snapshot: Mapping[str, Any], cordon: Patch) -> Patch:
    """Undo our cordon: conditional on the node still being cordoned *with our mark*, so a node
    someone else cordoned (or re-cordoned) meanwhile stays as they left it."""
    node = snapshot["node"]
    mark = pointer("metadata", "annotations", CORDONED_BY)
    previous = node["unschedulable"]
    return Patch(
        key=cordon.key,
        ops=(
            {"op": "remove", "path": "/spec/unschedulable"}
            if previous is None
            else {"op": "add", "path": "/spec/unschedulable", "value": previous},
            {"op": "remove", "path": mark},
        ),
        precondition=Precondition(
            uid=node["uid"], tests=(("/spec/unschedulable", True), (mark, node["cordonedBy"]))
        ),
        step="Revert",
        description=f"uncordon {node['name']}",
    )


def canary_manifest(
    spec: MitigationSpec, target: Mapping[str, Any], name: str, mitigation: str, mitigation_uid: str
) -> dict[str, Any]:
    """The canary Deployment.

    Pods: the target's pod labels (so the Service selects them and they get a share of traffic by
    replica ratio) plus ``stanch.dev/canary``. Selector: the target's selector plus the canary label.
    No adoption either way: a ReplicaSet adopts only pods with no controller that match its selector,
    and a Deployment only such ReplicaSets. Canary pods are controlled by the canary's ReplicaSet
    and carry its own ``pod-template-hash`` (the stable ReplicaSets' selectors include theirs); stable
    pods lack the canary label. The one hazard is an *orphaned* canary ReplicaSet (deleted with
    ``propagationPolicy: Orphan``): its labels match the stable Deployment's selector, which would
    adopt it into its rollout history. Stanch deletes the canary with background propagation only.
    Owned by the Mitigation only: nothing of ours ever owns the user's workload.
    """
    assert spec.canary is not None
    tspec = target.get("spec") or {}
    template = copy.deepcopy(tspec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {})
    labels.pop("pod-template-hash", None)
    labels[CANARY_LABEL] = mitigation
    tmeta["labels"] = labels
    index = _container_index(template, spec.canary.container)
    template["spec"]["containers"][index] = _patched_container(spec, template["spec"]["containers"][index])
    selector = copy.deepcopy(tspec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), CANARY_LABEL: mitigation}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta(target).get("namespace"),
            "labels": {**(meta(target).get("labels") or {}), CANARY_LABEL: mitigation},
            "ownerReferences": [
                {
                    "apiVersion": "stanch.dev/v1alpha1",
                    "kind": "Mitigation",
                    "name": mitigation,
                    "uid": mitigation_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"replicas": spec.canary.replicas, "selector": selector, "template": template},
    }


# --- verify, revert, drift ------------------------------------------------------------------------


def _live(world: World, key: ObjectKey) -> Mapping[str, Any] | None:
    """The live object for ``key`` from what ``ObserveTarget`` read (None = absent)."""
    candidates: list[Mapping[str, Any] | None]
    if key.kind == "Deployment":
        candidates = [world.target, world.canary]
    elif key.kind == "HorizontalPodAutoscaler":
        candidates = [world.hpa]
    elif key.kind == "ConfigMap":
        candidates = [world.config_map]
    elif key.kind == "Node":
        candidates = [world.node]
    else:
        candidates = [*world.pods, *world.pods_on_node]
    return next((c for c in candidates if c is not None and meta(c).get("name") == key.name), None)


def _effect_done(effect: MutatingEffect, world: World) -> bool:
    live = _live(world, effect.key)
    if isinstance(effect, Delete | Evict):
        return (
            live is None
            or (effect.precondition.uid is not None and meta(live).get("uid") != effect.precondition.uid)
            or bool(meta(live).get("deletionTimestamp"))
        )
    if isinstance(effect, Create):
        return live is not None and any(
            ref.get("uid") == effect.owner_uid for ref in meta(live).get("ownerReferences") or ()
        )
    if live is None:
        return False
    for op in effect.ops:
        if op["path"] == "/metadata/annotations":
            continue  # the controller keeps rewriting the revision annotations
        value = get_path(live, op["path"])
        if op["op"] == "remove":
            if value is not None:
                return False
        elif op["path"] == "/spec/template":
            if not equal_ignore_hash(value, op["value"]):
                return False
        elif prune_empty(value) != prune_empty(as_stored(op["value"])):
            return False
    return True


def as_stored(value: Any) -> Any:
    """A value as the API server stores what we wrote: ``false`` in an omitempty boolean
    (``spec.paused``, ``spec.unschedulable``) is dropped and reads back absent. A resume writes
    ``paused: false``; comparing that with the live object must not see a change (false drift), and a
    test op on it must expect absence (``null``), not ``false``."""
    return None if value is False else value


def _stored(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if as_stored(v) is not None}


def is_applied(effects: tuple[MutatingEffect, ...], world: World) -> bool:
    """Whether the live objects already are in the end state of ``effects`` (detects a step that
    landed before a crash, so it is never applied twice)."""
    return all(_effect_done(e, world) for e in effects)


def revert_effects(
    plan_: ActionPlan, snapshot: Mapping[str, Any], *, applied_generation: int | None, at: datetime
) -> tuple[MutatingEffect, ...]:
    """Undo ``plan_.apply`` back to the snapshot, each conditional on the values we wrote."""
    if not plan_.reversible:
        return ()
    out: list[MutatingEffect] = []
    for effect in plan_.apply:
        if isinstance(effect, Create):
            out.append(
                Delete(
                    key=effect.key,
                    precondition=Precondition(),
                    step="Revert",
                    description="delete the canary",
                )
            )
            continue
        if isinstance(effect, Delete | Evict):
            continue  # deleted or evicted pods are replaced by their controller, not restored
        if effect.key.kind == "Node":
            out.append(_uncordon_patch(snapshot, effect))
            continue
        before = _snapshot_object(snapshot, effect.key)
        if effect.key.kind == "Deployment" and any(
            op["path"].startswith("/spec/template/metadata/annotations") and RESTARTED_AT in json.dumps(op)
            for op in effect.ops
        ):
            out.append(_restart_patch(_with_generation(before, applied_generation), rfc3339(at), "Revert"))
            continue
        ops: list[Mapping[str, Any]] = []
        tests: list[tuple[str, Any]] = []
        for op in effect.ops:
            path = op["path"]
            old = get_path(before, path)
            if path == "/metadata/annotations":
                after = op["value"]
                for k in sorted(set(after) | set(old or {})):
                    if (
                        k.startswith("deployment.kubernetes.io/")
                        or k == "stanch.dev/active-mitigation"
                        or k in (snapshot.get(HELD) or {})
                    ):
                        continue  # released at the end, not by the revert
                    p = pointer("metadata", "annotations", k)
                    if (old or {}).get(k) is None and k in after:
                        ops.append({"op": "remove", "path": p})
                    elif (old or {}).get(k) != after.get(k):
                        ops.append({"op": "add", "path": p, "value": old[k]})
                continue
            tests.append(
                (path, as_stored(op["value"]))
                if path != "/spec/template"
                else (path + "/spec", op["value"].get("spec"))
            )
            ops.append(
                {"op": "remove", "path": path} if old is None else {"op": "add", "path": path, "value": old}
            )
        generation = applied_generation if effect.key.kind == "Deployment" else None
        out.append(
            Patch(
                key=effect.key,
                ops=tuple(ops),
                precondition=Precondition(
                    uid=effect.precondition.uid, generation=generation, tests=tuple(tests)
                ),
                step="Revert",
                description=f"revert: {effect.description}",
            )
        )
    return tuple(out)


def _with_generation(obj: Mapping[str, Any], generation: int | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    out.setdefault("metadata", {})["generation"] = generation
    return out


def _snapshot_object(snapshot: Mapping[str, Any], key: ObjectKey) -> Mapping[str, Any]:
    if key.kind == "Deployment":
        return snapshot["target"]  # type: ignore[no-any-return]
    if key.kind == "HorizontalPodAutoscaler":
        return snapshot["hpa"]  # type: ignore[no-any-return]
    if key.kind == "ConfigMap":
        cm = snapshot["configMap"]
        if not cm["hasData"]:
            return {}
        return {"data": {cm["key"]: cm["value"]} if cm["present"] else {}}
    if key.kind == "Node":
        return {"spec": {"unschedulable": snapshot["node"]["unschedulable"]}}
    return {}


def expected_after(plan_: ActionPlan, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The target as our apply left it, from the snapshot (for drift diffs)."""
    ops = [op for e in plan_.apply if isinstance(e, Patch) and e.key.kind == "Deployment" for op in e.ops]
    return apply_ops(snapshot["target"], ops)


def _dump(value: Any) -> list[str]:
    return json.dumps(prune_empty(value), indent=1, sort_keys=True, default=str).splitlines()


def unified_diff(expected: Any, live: Any, label: str) -> str:
    lines = difflib.unified_diff(
        _dump(expected),
        _dump(live),
        fromfile=f"{label} (as Stanch left it)",
        tofile=f"{label} (live)",
        lineterm="",
        n=2,
    )
    text = "\n".join(lines)
    return text if len(text) <= DIFF_MAX else text[:DIFF_MAX] + "\n... (truncated)"


def _diff_lines(before: Any, after: Any, label: str) -> list[str]:
    return [line for line in unified_diff(before, after, label).splitlines() if line[:1] in "+-"][:20]


def detect_drift(
    spec: MitigationSpec,
    snapshot: Mapping[str, Any],
    plan_: ActionPlan,
    world: World,
    *,
    promoted: bool = False,
) -> str | None:
    """A readable diff when someone else changed what we manage since we acted, else None.

    Deployments: the whole spec against what our patch left (a generation bump means someone changed
    the spec; the diff says what), ignoring ``spec.replicas`` when an HPA owns it. Other objects: each
    field we wrote. A canary: the stable spec must be untouched and the canary must still exist.
    """
    problems: list[str] = []
    target = world.target
    if target is None:
        return f"target {spec.target.display()} was deleted"
    expected = (
        expected_after(plan_, snapshot)
        if not promoted
        else apply_ops(
            snapshot["target"], [op for e in plan_.promote if isinstance(e, Patch) for op in e.ops]
        )
    )
    want = dict(expected.get("spec") or {})
    have = dict(target.get("spec") or {})
    if snapshot.get("hpa") is not None:
        want.pop("replicas", None)
        have.pop("replicas", None)
    if prune_empty(_stored(want)) != prune_empty(_stored(have)):
        problems.append(unified_diff(want, have, f"{spec.target.display()} spec"))
    for effect in plan_.apply:
        if isinstance(effect, Patch) and effect.key.kind != "Deployment":
            live = _live(world, effect.key)
            for op in effect.ops:
                if op["op"] in ("add", "replace") and get_path(live or {}, op["path"]) != as_stored(
                    op["value"]
                ):
                    problems.append(
                        f"{effect.key.display()} {op['path']}: Stanch wrote {op['value']!r}, "
                        f"now {get_path(live or {}, op['path'])!r}"
                    )
        if isinstance(effect, Create) and not promoted and not _effect_done(effect, world):
            problems.append(f"{effect.key.display()}: the canary Stanch created is gone or no longer ours")
    return "\n".join(problems)[:DIFF_MAX] if problems else None
