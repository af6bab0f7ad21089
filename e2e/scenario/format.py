"""The scenario file format, validated with clear errors that name the field.

A scenario is data, not code: the world it starts from, a timed list of steps, and what Stanch is
expected to conclude and do. See docs/scenarios.md for the reference and examples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stanch.core.models import (
    ActionKind,
    HypothesisCategory,
    MitigationPhase,
    MitigationPolicy,
    MitigationSpec,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]


def seconds(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 500ms, 20s or 2m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


Duration = Annotated[str, Field(pattern=_DURATION.pattern)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# ---- the world ---------------------------------------------------------------------------------
class Workload(Strict):
    name: Name
    replicas: int = Field(3, ge=0, le=200)
    image: str = "registry.example/app:1.0.0"
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    memory_limit: str = Field("256Mi", alias="memoryLimit")
    node_selector: dict[str, str] = Field({}, alias="nodeSelector")
    service: bool = True
    config_map: str | None = Field(None, alias="configMap", description="mounted as env from; referenced")
    change_cause: str | None = Field(None, alias="changeCause")


class ConfigMapSpec(Strict):
    name: Name
    data: dict[str, str] = {}


class HpaSpec(Strict):
    workload: Name
    min: int = Field(ge=1)
    max: int = Field(ge=1)


def _check_policy(manifest: dict[str, Any]) -> dict[str, Any]:
    MitigationPolicy.model_validate(manifest)
    return manifest


class World(Strict):
    workloads: list[Workload] = Field(min_length=1)
    config_maps: list[ConfigMapSpec] = Field([], alias="configMaps")
    hpas: list[HpaSpec] = []
    traffic: dict[str, float] = Field({}, description="requests/s per workload (simulator world keys)")
    world_keys: dict[str, str] = Field({}, alias="worldKeys", description="extra simulator world keys")
    policies: list[dict[str, Any]] = Field([], description="MitigationPolicy manifests (spec and name)")
    warmup: Duration = Field("20s", description="healthy time before the first step, for baselines")

    @field_validator("policies")
    @classmethod
    def _policies(cls, policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_check_policy(p) for p in policies]


# ---- steps -------------------------------------------------------------------------------------
class Rollout(Strict):
    workload: Name
    image: str | None = None
    annotations: dict[str, str] | None = Field(None, description="replaces the template annotations")
    env: dict[str, str] | None = None
    memory_limit: str | None = Field(None, alias="memoryLimit")
    node_selector: dict[str, str] | None = Field(None, alias="nodeSelector")
    change_cause: str | None = Field(None, alias="changeCause")


class Scale(Strict):
    workload: Name
    replicas: int = Field(ge=0, le=200)


class IncidentStep(Strict):
    name: Name
    target: Name
    mode: Literal["Suggest", "Auto"] = "Suggest"
    severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] = "SEV2"
    summary: str = ""


class MitigateStep(Strict):
    """Create a Mitigation: the one Stanch suggested (``suggested: true``) or an explicit one."""

    name: Name | None = None
    incident: Name | None = None
    suggested: bool = False
    target: Name | None = None
    action: dict[str, Any] | None = Field(None, description="e.g. {scale: {replicas: 1}}")
    guard: dict[str, Any] = {}
    dry_run: bool = Field(False, alias="dryRun")
    approve: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> MitigateStep:
        if self.suggested == (self.action is not None):
            raise ValueError("give exactly one of suggested: true or action: {...}")
        if self.action is not None and self.target is None:
            raise ValueError("an explicit action needs target: <workload>")
        if self.action is not None:
            # The same model the CRD is generated from: a typo fails here, not in the cluster.
            MitigationSpec.model_validate(
                {
                    "target": {"kind": "Deployment", "name": self.target},
                    **self.action,
                    "guard": self.guard,
                    **({"incidentRef": {"name": self.incident}} if self.incident else {}),
                }
            )
        return self


class Step(Strict):
    at: Duration = Field(description="time since the end of the warm-up")
    rollout: Rollout | None = None
    scale: Scale | None = None
    config_map: ConfigMapSpec | None = Field(None, alias="configMap")
    hpa: HpaSpec | None = None
    node_fault: dict[str, str] | None = Field(None, alias="nodeFault", description="{node: NotReady|Ready}")
    traffic: dict[str, float] | None = None
    world_keys: dict[str, str | None] | None = Field(None, alias="worldKeys")
    pod_kill: dict[str, int] | None = Field(None, alias="podKill", description="{workload: count}")
    operator_restart: bool = Field(False, alias="operatorRestart")
    prometheus_outage: Duration | None = Field(None, alias="prometheusOutage")
    incident: IncidentStep | None = None
    resolve: Name | None = Field(None, description="mark this Incident resolved")
    mitigate: MitigateStep | None = None
    approve: Name | None = Field(None, description="approve this Mitigation")
    policy: dict[str, Any] | None = None

    @field_validator("policy")
    @classmethod
    def _policy(cls, policy: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if policy is None else _check_policy(policy)

    wait_for_phase: dict[str, list[MitigationPhase]] | None = Field(
        None, alias="waitForPhase", description="{mitigation: [phases]}: hold later steps until reached"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        actions = [k for k, v in self if k != "at" and v not in (None, False)]
        if len(actions) != 1:
            raise ValueError(f"a step does exactly one thing; this one has {actions or 'nothing'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self if k != "at" and v not in (None, False))


# ---- expectations ------------------------------------------------------------------------------
class ObjectExpectation(Strict):
    kind: str
    name: Name
    revision: int | None = None


class MitigationExpectation(Strict):
    action: ActionKind
    alternatives: list[ActionKind] = []
    forbidden: list[ActionKind] = []


class Recovery(Strict):
    below: float = Field(description="error ratio that counts as recovered")
    within: Duration


class Expect(Strict):
    detected: bool = True
    category: HypothesisCategory | None = None
    also_acceptable: list[HypothesisCategory] = Field([], alias="alsoAcceptable")
    object: ObjectExpectation | None = None
    first_mitigation: MitigationExpectation | None = Field(None, alias="firstMitigation")
    no_action: bool = Field(False, alias="noAction", description="Stanch must suggest no mitigation")
    outcome: MitigationPhase | None = Field(None, description="final phase of the scenario's mitigation")
    recovery: Recovery | None = None
    within: Duration = Field("90s", description="how long the scenario may take after its last step")


class Scenario(Strict):
    name: Name
    title: str
    description: str = ""
    world: World
    steps: list[Step] = Field(min_length=1)
    expect: Expect

    @field_validator("steps")
    @classmethod
    def _ordered(cls, steps: list[Step]) -> list[Step]:
        times = [seconds(s.at) for s in steps]
        if times != sorted(times):
            raise ValueError("steps must be in time order (their `at` values must not decrease)")
        return steps

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        names = {w.name for w in self.world.workloads}
        for i, step in enumerate(self.steps):
            for ref in _workload_refs(step):
                if ref not in names:
                    raise ValueError(f"steps.{i}.{step.kind} names workload {ref!r}, not in world.workloads")
        return self


def _workload_refs(step: Step) -> list[str]:
    refs: list[str] = []
    for part in (step.rollout, step.scale, step.hpa):
        if part is not None:
            refs.append(part.workload)
    if step.incident:
        refs.append(step.incident.target)
    if step.mitigate and step.mitigate.target:
        refs.append(step.mitigate.target)
    refs += list((step.pod_kill or {}).keys())
    return refs


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and field."""


def load(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with name, title, world, steps, expect")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"  {loc}: {err['msg']}")
        raise ScenarioError(f"{path}: invalid scenario\n" + "\n".join(problems)) from None


def discover(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ScenarioError(f"{directory}: not a directory of scenarios")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
