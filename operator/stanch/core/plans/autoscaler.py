"""Autoscaler: set the bounds or utilization targets of the HPA that owns the target's replicas.

The way back from a bad autoscaler change (``maxReplicas`` lowered under load, a utilization target
raised, ``minReplicas`` lowered): the Deployment's replicas belong to the HPA, which overwrites
anything written there within one sync, so the HPA's spec is what Stanch changes, as ``kubectl
patch hpa`` would. One conditional JSON patch on the HPA: each field it writes is tested on the
value the snapshot recorded, each utilization target also on the metric's resource name (metrics are
addressed by index), and the uid. The revert writes the recorded values back, conditional on the
HPA still holding ours, so a later change by anyone else is drift, never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stanch.core.effects import JsonPatchOp, ObjectKey, Patch, Precondition, Step
from stanch.core.models import ActionKind, MitigationSpec
from stanch.core.plans.base import BaseAction
from stanch.core.plans.common import ActionPlan, MutatingEffect, PlanError, meta
from stanch.core.plans.snapshot import ActionSnapshot, Snapshot, SnapshotPart
from stanch.core.world import World


def _hpa_key(name: str, namespace: str | None) -> ObjectKey:
    return ObjectKey("autoscaling/v2", "HorizontalPodAutoscaler", name, namespace)


def metric_path(index: int, *rest: str) -> str:
    return "/".join(("/spec/metrics", str(index), "resource", *rest))


def utilization_targets(hpa: Mapping[str, Any]) -> dict[str, tuple[int, int | None]]:
    """Resource metrics with a Utilization target: resource → (index in ``spec.metrics``, percent)."""
    out: dict[str, tuple[int, int | None]] = {}
    for index, metric in enumerate((hpa.get("spec") or {}).get("metrics") or ()):
        resource = (metric or {}).get("resource") or {}
        target = resource.get("target") or {}
        if metric.get("type") == "Resource" and target.get("type") == "Utilization" and resource.get("name"):
            value = target.get("averageUtilization")
            out.setdefault(str(resource["name"]), (index, int(value) if value is not None else None))
    return out


class MetricTarget(SnapshotPart):
    """One utilization target as it was."""

    index: int
    resource: str
    average_utilization: int | None = None


class HpaBounds(SnapshotPart):
    """The HPA as the change needs it: identity, bounds, and the targets the spec names."""

    name: str
    namespace: str | None = None
    uid: str | None = None
    min_replicas: int | None = None
    max_replicas: int
    targets: list[MetricTarget] = []

    def key(self) -> ObjectKey:
        return _hpa_key(self.name, self.namespace)


class AutoscalerSnapshot(ActionSnapshot):
    autoscaler: HpaBounds


def _field_ops(
    before: HpaBounds, min_replicas: int | None, max_replicas: int | None, targets: Mapping[str, int]
) -> tuple[list[JsonPatchOp], list[tuple[str, Any]], list[str]]:
    """The ops that move ``before`` to the wanted values (only fields that differ), their tests on
    ``before``'s values, and one line per field for humans."""
    ops: list[JsonPatchOp] = []
    tests: list[tuple[str, Any]] = []
    lines: list[str] = []
    if min_replicas is not None and min_replicas != before.min_replicas:
        ops.append({"op": "add", "path": "/spec/minReplicas", "value": min_replicas})
        tests.append(("/spec/minReplicas", before.min_replicas))
        lines.append(
            f"minReplicas {before.min_replicas if before.min_replicas is not None else 1} → {min_replicas}"
        )
    if max_replicas is not None and max_replicas != before.max_replicas:
        ops.append({"op": "replace", "path": "/spec/maxReplicas", "value": max_replicas})
        tests.append(("/spec/maxReplicas", before.max_replicas))
        lines.append(f"maxReplicas {before.max_replicas} → {max_replicas}")
    for target in before.targets:
        want = targets.get(target.resource)
        if want is None or want == target.average_utilization:
            continue
        path = metric_path(target.index, "target", "averageUtilization")
        ops.append({"op": "add", "path": path, "value": want})
        tests.append((metric_path(target.index, "name"), target.resource))
        tests.append((path, target.average_utilization))
        lines.append(f"{target.resource} utilization target {target.average_utilization}% → {want}%")
    return ops, tests, lines


class Autoscaler(BaseAction[AutoscalerSnapshot]):
    kind = ActionKind.AUTOSCALER
    part = AutoscalerSnapshot

    def take(self, spec: MitigationSpec, world: World, *, mitigation: str) -> AutoscalerSnapshot:
        want = spec.autoscaler
        assert want is not None
        hpa = world.hpa
        if hpa is None:
            raise PlanError(
                f"spec.autoscaler: no HorizontalPodAutoscaler targets {spec.target.display()}; there are no"
                " autoscaler bounds to set: use spec.scale to change its replicas"
            )
        hspec = hpa.get("spec") or {}
        have = utilization_targets(hpa)
        targets: list[MetricTarget] = []
        for i, target in enumerate(want.target_utilization):
            found = have.get(target.resource)
            if found is None:
                listed = ", ".join(sorted(have)) or "none"
                raise PlanError(
                    f"spec.autoscaler.targetUtilization[{i}].resource {target.resource!r}: HPA"
                    f" {meta(hpa).get('name')} has no Utilization target for it (it has: {listed}); the"
                    " action changes an existing target, never adds a metric: name one of those"
                )
            targets.append(
                MetricTarget(index=found[0], resource=target.resource, average_utilization=found[1])
            )
        old_min = hspec.get("minReplicas")
        old_max = int(hspec["maxReplicas"])
        new_min = want.min_replicas if want.min_replicas is not None else (old_min or 1)
        new_max = want.max_replicas if want.max_replicas is not None else old_max
        if new_min > new_max:
            which = (
                "spec.autoscaler.minReplicas" if want.max_replicas is None else "spec.autoscaler.maxReplicas"
            )
            raise PlanError(
                f"{which}: the HPA would end with minReplicas {new_min} above maxReplicas {new_max};"
                " set both spec.autoscaler.minReplicas and spec.autoscaler.maxReplicas"
            )
        return AutoscalerSnapshot(
            autoscaler=HpaBounds(
                name=str(meta(hpa)["name"]),
                namespace=meta(hpa).get("namespace"),
                uid=meta(hpa).get("uid"),
                min_replicas=None if old_min is None else int(old_min),
                max_replicas=old_max,
                targets=targets,
            )
        )

    def _wanted(self, spec: MitigationSpec) -> tuple[int | None, int | None, dict[str, int]]:
        want = spec.autoscaler
        assert want is not None
        return (
            want.min_replicas,
            want.max_replicas,
            {t.resource: t.average_utilization for t in want.target_utilization},
        )

    def starts_pods(self, spec: MitigationSpec, snapshot: Snapshot[AutoscalerSnapshot]) -> bool:
        """A higher floor than the replicas running, a higher ceiling or a lower utilization target
        lets (or makes) the HPA add pods, whose cold start the guard lets settle."""
        before = snapshot.action.autoscaler
        new_min, new_max, targets = self._wanted(spec)
        replicas = int(snapshot.target.spec.get("replicas", 1))
        lower_target = any(
            t.average_utilization is not None
            and t.resource in targets
            and targets[t.resource] < t.average_utilization
            for t in before.targets
        )
        return (
            (new_min is not None and new_min > replicas)
            or (new_max is not None and new_max > before.max_replicas)
            or lower_target
        )

    def plan(
        self,
        spec: MitigationSpec,
        snapshot: Snapshot[AutoscalerSnapshot],
        *,
        mitigation: str,
        mitigation_uid: str,
    ) -> ActionPlan:
        before = snapshot.action.autoscaler
        key = before.key()
        ops, tests, lines = _field_ops(before, *self._wanted(spec))
        if not ops:
            return ActionPlan(
                f"nothing to do: {key.display()} already has the bounds and targets asked for",
                (),
                (),
                "already applied",
            )
        patch = Patch(
            key=key,
            ops=tuple(ops),
            precondition=Precondition(uid=before.uid, tests=tuple(tests)),
            step=Step.APPLY,
            description=f"{key.display()}: " + ", ".join(lines),
        )
        return ActionPlan(
            summary=f"set {key.display()} (autoscaling {spec.target.display()}): " + ", ".join(lines),
            changes=tuple(lines),
            apply=(patch,),
            revert_note=f"restores {key.display()}: "
            + ", ".join(line.split(" → ")[0] for line in lines)
            + " as recorded in the snapshot",
        )

    def revert(
        self,
        plan: ActionPlan,
        snapshot: Snapshot[AutoscalerSnapshot],
        *,
        applied_generation: int | None,
        at: datetime,
    ) -> tuple[MutatingEffect, ...]:
        before = snapshot.action.autoscaler
        out: list[MutatingEffect] = []
        for effect in plan.apply:
            assert isinstance(effect, Patch)
            ops: list[JsonPatchOp] = []
            tests: list[tuple[str, Any]] = []
            for op in effect.ops:
                path = op["path"]
                old = _recorded(before, path)
                tests.append((path, op["value"]))
                ops.append(
                    {"op": "remove", "path": path}
                    if old is None
                    else {"op": "add", "path": path, "value": old}
                )
            # The resource name at each index, as in the apply: metrics reordered since is drift.
            tests.extend((p, v) for p, v in effect.precondition.tests if p.endswith("/resource/name"))
            out.append(
                Patch(
                    key=effect.key,
                    ops=tuple(ops),
                    precondition=Precondition(uid=effect.precondition.uid, tests=tuple(tests)),
                    step=Step.REVERT,
                    description=f"revert: {effect.description}",
                )
            )
        return tuple(out)


def _recorded(before: HpaBounds, path: str) -> int | None:
    """The snapshot's value of a field the apply wrote."""
    if path == "/spec/minReplicas":
        return before.min_replicas
    if path == "/spec/maxReplicas":
        return before.max_replicas
    for target in before.targets:
        if path == metric_path(target.index, "target", "averageUtilization"):
            return target.average_utilization
    raise ValueError(f"the autoscaler plan never writes {path}")
