"""Mitigation actions: the eight things Stanch can do to a workload, exactly one per Mitigation."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from stanch.core.models.base import CelRule, StanchModel
from stanch.core.models.common import (
    CONFIG_KEY_PATTERN,
    DNS_LABEL_PATTERN,
    ImageRef,
    LongText,
    ObjectName,
)


class ActionKind(StrEnum):
    """The kind of a mitigation action; also the key of per-action policy rules."""

    ROLLBACK = "Rollback"
    SCALE = "Scale"
    RESTART = "Restart"
    CANARY = "Canary"
    CONFIG_TOGGLE = "ConfigToggle"
    EVACUATE = "Evacuate"
    PAUSE = "Pause"
    AUTOSCALER = "Autoscaler"


class RollbackAction(StanchModel):
    """Roll the Deployment back with ``kubectl rollout undo`` semantics."""

    to_revision: Annotated[int, Field(ge=1)] | None = None
    """``deployment.kubernetes.io/revision`` to roll back to; default the previous revision."""


class ScaleAction(StanchModel):
    """Scale the workload, absolutely or by a factor (an HPA's minReplicas is raised instead when one
    targets the workload). Exactly one of ``replicas`` and ``factor``."""

    replicas: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Absolute replica count."""
    factor: Annotated[float, Field(ge=0.1, le=10)] | None = None
    """Multiply the current replica count (rounded up), e.g. 1.5."""

    cel_rules = (
        CelRule(
            rule="has(self.replicas) != has(self.factor)",
            message="scale needs exactly one of replicas or factor",
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ScaleAction:
        if (self.replicas is None) == (self.factor is None):
            raise ValueError("scale needs exactly one of replicas or factor")
        return self


class RestartAction(StanchModel):
    """Restart pods: ``kubectl rollout restart`` semantics, or delete only the named pods."""

    pods: Annotated[list[ObjectName], Field(max_length=50)] = []
    """Pods to restart; empty restarts the whole workload with a rolling restart."""


class EnvVar(StanchModel):
    """A literal environment variable (no secret references: canaries never carry secret data)."""

    name: Annotated[
        str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    ]
    """Variable name."""
    value: LongText = ""
    """Variable value."""


class CanaryAction(StanchModel):
    """Run a fix as a canary Deployment (owned by the Mitigation) next to the stable pods, compare,
    then promote it into the workload or abort it. Needs ``image``, ``env`` or ``args``."""

    image: ImageRef | None = None
    """Image for the workload's first container (or ``container``)."""
    container: Annotated[str, StringConstraints(max_length=63)] | None = None
    """Container to patch; default the first container."""
    env: Annotated[list[EnvVar], Field(max_length=32)] = []
    """Environment variables to set (added or overridden) in the patched container."""
    args: Annotated[list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=64)] | None = (
        None
    )
    """Replace the container's args."""
    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Canary replicas; traffic share is roughly replicas / (replicas + stable replicas)."""

    cel_rules = (
        CelRule(
            rule="has(self.image) || (has(self.env) && size(self.env) > 0) || has(self.args)",
            message="canary needs an image, an env patch or args",
        ),
    )

    @model_validator(mode="after")
    def _has_patch(self) -> CanaryAction:
        if self.image is None and not self.env and self.args is None:
            raise ValueError("canary needs an image, an env patch or args")
        return self


class ConfigToggleAction(StanchModel):
    """Set one key of a ConfigMap (a feature flag off, a rate limit down); revert restores it."""

    config_map: ObjectName
    """ConfigMap in the target's namespace."""
    key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=CONFIG_KEY_PATTERN)]
    """Key to set."""
    value: LongText
    """New value."""
    restart: bool = False
    """Rolling-restart the workload afterwards (for apps that read config only at start)."""


class EvacuateAction(StanchModel):
    """Move the workload's pods off a node: cordon it, then evict those pods through the Eviction
    API (PodDisruptionBudgets apply; a refusal is retried within the bake time, never forced). The
    revert uncordons only a node Stanch cordoned. Gated hard by policy."""

    node: ObjectName
    """The node to move pods away from."""


class PauseAction(StanchModel):
    """Pause a rollout in progress (or resume a paused one)."""

    resume: bool = False
    """Resume instead of pause."""


class ResourceTarget(StanchModel):
    """The utilization target of one resource metric the HPA already has (``type: Resource``,
    ``target.type: Utilization``)."""

    resource: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    """The resource the metric measures (``cpu``, ``memory``)."""
    average_utilization: Annotated[int, Field(ge=1, le=1000)]
    """Target average utilization, percent of the pods' requests."""


class AutoscalerAction(StanchModel):
    """Set the bounds or utilization targets of the HorizontalPodAutoscaler that targets the workload
    (typically back to what they were before a bad change); the revert restores what the snapshot
    recorded. Only fields that are set are written; at least one must be."""

    min_replicas: Annotated[int, Field(ge=1, le=10000)] | None = None
    """New ``spec.minReplicas``."""
    max_replicas: Annotated[int, Field(ge=1, le=10000)] | None = None
    """New ``spec.maxReplicas``."""
    target_utilization: Annotated[list[ResourceTarget], Field(max_length=4)] = []
    """New utilization targets of resource metrics the HPA already has (a target is changed, never
    added: a metric the HPA does not use is refused at planning)."""

    cel_rules = (
        CelRule(
            rule="has(self.minReplicas) || has(self.maxReplicas)"
            " || (has(self.targetUtilization) && size(self.targetUtilization) > 0)",
            message="autoscaler needs minReplicas, maxReplicas or targetUtilization",
        ),
        CelRule(
            rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            message="autoscaler minReplicas must not exceed maxReplicas",
        ),
    )

    @model_validator(mode="after")
    def _something_to_set(self) -> AutoscalerAction:
        if self.min_replicas is None and self.max_replicas is None and not self.target_utilization:
            raise ValueError("autoscaler needs minReplicas, maxReplicas or targetUtilization")
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError("autoscaler minReplicas must not exceed maxReplicas")
        resources = [t.resource for t in self.target_utilization]
        if len(set(resources)) != len(resources):
            raise ValueError("autoscaler targetUtilization names a resource twice")
        return self


ACTION_FIELDS: dict[ActionKind, str] = {
    ActionKind.ROLLBACK: "rollback",
    ActionKind.SCALE: "scale",
    ActionKind.RESTART: "restart",
    ActionKind.CANARY: "canary",
    ActionKind.CONFIG_TOGGLE: "config_toggle",
    ActionKind.EVACUATE: "evacuate",
    ActionKind.PAUSE: "pause",
    ActionKind.AUTOSCALER: "autoscaler",
}
"""Python attribute of :class:`ActionSet` holding each action."""

_ONE_ACTION_RULE = (
    " + ".join(
        f"(has(self.{wire}) ? 1 : 0)"
        for wire in (
            "rollback",
            "scale",
            "restart",
            "canary",
            "configToggle",
            "evacuate",
            "pause",
            "autoscaler",
        )
    )
    + " == 1"
)


class ActionSet(StanchModel):
    """Exactly one action. Shared by a Mitigation's spec and a hypothesis' suggested mitigation."""

    rollback: RollbackAction | None = None
    """Roll back to the previous (or a named) revision."""
    scale: ScaleAction | None = None
    """Scale absolutely or by a factor."""
    restart: RestartAction | None = None
    """Restart the workload or named pods."""
    canary: CanaryAction | None = None
    """Canary a fix, then promote or abort."""
    config_toggle: ConfigToggleAction | None = None
    """Set a ConfigMap key."""
    evacuate: EvacuateAction | None = None
    """Move pods off a node."""
    pause: PauseAction | None = None
    """Pause or resume a rollout."""
    autoscaler: AutoscalerAction | None = None
    """Set the HorizontalPodAutoscaler's bounds or utilization targets."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(rule=_ONE_ACTION_RULE, message="exactly one action must be set"),
    )

    @model_validator(mode="after")
    def _exactly_one_action(self) -> ActionSet:
        count = sum(getattr(self, attr) is not None for attr in ACTION_FIELDS.values())
        if count != 1:
            raise ValueError(f"exactly one action must be set, found {count}")
        return self

    @property
    def action(self) -> ActionKind:
        """Which action is set."""
        for kind, attr in ACTION_FIELDS.items():
            if getattr(self, attr) is not None:
                return kind
        raise ValueError("no action set")  # unreachable after validation
