"""The scenario file format, validated with clear errors that name the field.

A scenario is data, not code: the world it starts from, a timed list of steps, and what Stanch is
expected to conclude and do. See docs/scenarios.md for the reference and examples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from e2e.shared import _kind_touches
from e2e.simulator.world import parse_world
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


# ---- simulator world keys ------------------------------------------------------------------------
NAMESPACE_PLACEHOLDER = "{namespace}"
"""Stands for the scenario's own namespace (``sc-<name>-<random>``) in a world key."""
_SAMPLE_NAMESPACE = "sc-sample-0000"
# Keys scoped to <namespace>.<name>: a scenario can only mean its own namespace there.
_SCOPED_KINDS = ("traffic", "clients", "client-errors", "dependency", "cert", "hot-pod")
# Keys every scenario and test running beside this one reads: a scenario must not write them.
_SHARED_KEYS = {
    "traffic.default": "traffic.{namespace}.<workload> (or world.traffic)",
    "clients.default": "clients.{namespace}.<workload>",
}


# What each key takes, for the fix in an error (docs/simulator.md has the whole table).
_FORMS = {
    "traffic": "requests/s, e.g. '120'",
    "clients": "a client mix, e.g. 'web=70,mobile=25,scraper=300'",
    "client-errors": "client=ratio pairs, e.g. 'scraper=0.5'",
    "node": "fail, slow, ok or 'error-ratio=R; latency-ms=MS'",
    "dependency": "fail, slow, ok or 'error-ratio=R; latency-ms=MS'",
    "cert": "expired or valid",
    "hot-pod": "'ordinal=N; cores=C' (either may be left out)",
    "images": 'a JSON object of image -> knobs, e.g. \'{":2.0": {"latency-ms": "400"}}\'',
    "seed": "any non-empty text",
}


def world_key(key: str, namespace: str) -> str:
    """The key as the simulator reads it in ``namespace``; ``images`` is the namespace's own."""
    if key == "images":
        return f"images.{namespace}"
    return key.replace(NAMESPACE_PLACEHOLDER, namespace)


def check_world_key(key: str, value: str | None) -> None:
    """Offline, the checks the simulator would make, plus the ones only a scenario needs: a key
    scoped to a namespace must name the scenario's own (its namespace is random)."""
    rest = key.replace(NAMESPACE_PLACEHOLDER, "")
    if "{" in rest or "}" in rest:
        raise ValueError(f"world key {key!r}: the only placeholder is {NAMESPACE_PLACEHOLDER}")
    if key in _SHARED_KEYS:
        raise ValueError(
            f"world key {key!r} is shared by every scenario and test running beside this one; "
            f"write {_SHARED_KEYS[key]}"
        )
    kind, _, scoped = key.partition(".")
    if kind in _SCOPED_KINDS or kind == "seed" or (kind == "images" and scoped):
        namespace, _, name = scoped.partition(".")
        if namespace != NAMESPACE_PLACEHOLDER:
            fix = f"{kind}.{NAMESPACE_PLACEHOLDER}" + (f".{name}" if name else ".<name>")
            if kind in ("images", "seed"):
                fix = f"{kind}.{NAMESPACE_PLACEHOLDER}" + (" (or images)" if kind == "images" else "")
            raise ValueError(
                f"world key {key!r} names namespace {namespace!r}, but a scenario runs in its own "
                f"namespace, which it cannot know in advance: write {fix}"
            )
    if value is None:
        return
    problems = parse_world({world_key(key, _SAMPLE_NAMESPACE): value}).problems
    if problems:
        form = _FORMS.get(kind)
        fix = (
            f"; it takes {form}"
            if form
            else f"; the keys are {', '.join(sorted(_FORMS))} (docs/simulator.md)"
        )
        raise ValueError(problems[0].replace(_SAMPLE_NAMESPACE, NAMESPACE_PLACEHOLDER) + fix)


def _check_world_keys(keys: dict[str, Any]) -> dict[str, Any]:
    for key, value in keys.items():
        check_world_key(key, value)
    return keys


# ---- arbitrary objects -------------------------------------------------------------------------
def _check_kind(kind: str) -> str:
    touched = _kind_touches(kind)
    if kind in ("Namespace", "namespace", "namespaces", "ns"):
        touched = "cluster-objects"
    if touched:
        fix = "use a nodeFault step or a node.<name> world key" if touched == "nodes" else "leave it out"
        raise ValueError(f"{kind} is not in the scenario's namespace (it is shared by every scenario): {fix}")
    return kind


def _check_object(manifest: dict[str, Any]) -> dict[str, Any]:
    for key in ("apiVersion", "kind"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise ValueError(f"an object needs {key}: (e.g. apiVersion: v1, kind: ResourceQuota)")
    meta = manifest.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise ValueError("an object needs metadata.name")
    if "namespace" in meta:
        raise ValueError("leave metadata.namespace out: objects are created in the scenario's namespace")
    _check_kind(manifest["kind"])
    return manifest


class World(Strict):
    workloads: list[Workload] = Field(min_length=1)
    config_maps: list[ConfigMapSpec] = Field([], alias="configMaps")
    hpas: list[HpaSpec] = []
    traffic: dict[str, float] = Field({}, description="requests/s per workload (simulator world keys)")
    world_keys: dict[str, str] = Field(
        {}, alias="worldKeys", description="extra simulator world keys; {namespace} is the scenario's own"
    )
    objects: list[Annotated[dict[str, Any], AfterValidator(_check_object)]] = Field(
        [], description="any other namespaced objects (a ResourceQuota, a Secret, …), created first"
    )
    policies: list[dict[str, Any]] = Field([], description="MitigationPolicy manifests (spec and name)")
    warmup: Duration = Field("20s", description="healthy time before the first step, for baselines")

    @field_validator("policies")
    @classmethod
    def _policies(cls, policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [_check_policy(p) for p in policies]

    @field_validator("world_keys")
    @classmethod
    def _world_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        return _check_world_keys(keys)


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


_JSON_PATCH_OPS = {"add", "remove", "replace", "move", "copy", "test"}


class JsonPatchOp(Strict):
    """One RFC 6902 operation."""

    op: str
    path: str
    value: Any = None
    from_: str | None = Field(None, alias="from")

    @model_validator(mode="before")
    @classmethod
    def _has_value(cls, data: Any) -> Any:
        # Kept apart from ``value: null`` (a valid value to add or replace): was the key written?
        if isinstance(data, dict):
            op = data.get("op")
            if op in ("add", "replace", "test") and "value" not in data:
                raise ValueError(f"op {op!r} needs value: (the JSON value to {op})")
        return data

    @model_validator(mode="after")
    def _valid(self) -> JsonPatchOp:
        if self.op not in _JSON_PATCH_OPS:
            raise ValueError(
                f"op {self.op!r} is not a JSON patch operation: one of {sorted(_JSON_PATCH_OPS)}"
            )
        for name, pointer in (("path", self.path), ("from", self.from_)):
            if pointer is not None and not pointer.startswith("/"):
                raise ValueError(
                    f"{name} {pointer!r} is not a JSON pointer: write it like /spec/selector/app"
                )
        if self.op in ("move", "copy") and self.from_ is None:
            raise ValueError(f"op {self.op!r} needs from: (a JSON pointer)")
        return self

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op in ("add", "replace", "test"):
            doc["value"] = self.value
        if self.from_ is not None:
            doc["from"] = self.from_
        return doc


class PatchStep(Strict):
    """Patch any object in the scenario's namespace, as ``kubectl patch`` does: a Service's selector,
    a ResourceQuota, a Secret's metadata, an HPA's bounds."""

    kind: str = Field(min_length=1, description="a kind or resource kubectl knows (Service, hpa, …)")
    name: Name
    merge: dict[str, Any] | None = Field(None, description="JSON merge patch (RFC 7386)")
    json_: list[JsonPatchOp] | None = Field(None, alias="json", description="JSON patch (RFC 6902)")
    strategic: dict[str, Any] | None = Field(None, description="strategic merge patch (built-in kinds)")
    field_manager: str | None = Field(
        None, alias="fieldManager", description="who the change is recorded as (managedFields)"
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str) -> str:
        return _check_kind(kind)

    @model_validator(mode="after")
    def _one_patch(self) -> PatchStep:
        given = [k for k in ("merge", "json", "strategic") if getattr(self, k + ("_" if k == "json" else ""))]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of merge: {{...}}, json: [{{op: ..., path: ...}}] or strategic: {{...}}; "
                f"this patch has {given or 'none'}"
            )
        return self

    @property
    def patch_type(self) -> str:
        return "json" if self.json_ else ("strategic" if self.strategic else "merge")

    @property
    def body(self) -> Any:
        if self.json_:
            return [op.document() for op in self.json_]
        return self.strategic or self.merge


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
    world_keys: dict[str, str | None] | None = Field(
        None,
        alias="worldKeys",
        description="simulator world keys ({namespace} is the scenario's); null deletes",
    )
    patch: PatchStep | None = None
    apply: dict[str, Any] | None = Field(None, description="create or update any namespaced object")
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

    @field_validator("world_keys")
    @classmethod
    def _world_keys(cls, keys: dict[str, str | None] | None) -> dict[str, str | None] | None:
        return None if keys is None else _check_world_keys(keys)

    @field_validator("apply")
    @classmethod
    def _apply(cls, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if manifest is None else _check_object(manifest)

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
    action: ActionKind | None = Field(
        None, description="the expected action; left out: any action but the forbidden ones, or none"
    )
    alternatives: list[ActionKind] = []
    forbidden: list[ActionKind] = []
    hot_pods_only: bool = Field(
        False,
        alias="hotPodsOnly",
        description="a Restart must name exactly the pods the simulator made hot (hot-pod world key), "
        "not the whole workload",
    )

    @model_validator(mode="after")
    def _says_something(self) -> MitigationExpectation:
        if self.action is None and (self.alternatives or not self.forbidden):
            raise ValueError(
                "without action:, firstMitigation only forbids: give forbidden: [...] (and no alternatives)"
            )
        return self

    @model_validator(mode="after")
    def _hot_pods_are_restarted(self) -> MitigationExpectation:
        if self.hot_pods_only and self.action != ActionKind.RESTART:
            raise ValueError("hotPodsOnly judges which pods a Restart names: set action: Restart")
        return self


class Recovery(Strict):
    below: float = Field(description="error ratio that counts as recovered")
    within: Duration


class Expect(Strict):
    anomaly: bool = Field(
        True,
        description="false: nothing is wrong; Stanch must say so, suggest nothing and do nothing "
        "(every mitigation suggested or created is a false action)",
    )
    innocent: list[ObjectExpectation] = Field(
        [],
        description="changes that did not cause the incident: a mitigation suggested or created "
        "against one (a rollback or pause of that Deployment, a toggle of that ConfigMap, any action "
        "on that object) is a false action",
    )
    detected: bool = True
    category: HypothesisCategory | None = None
    also_acceptable: list[HypothesisCategory] = Field([], alias="alsoAcceptable")
    object: ObjectExpectation | None = None
    first_mitigation: MitigationExpectation | None = Field(None, alias="firstMitigation")
    no_action: bool = Field(False, alias="noAction", description="Stanch must suggest no mitigation")
    outcome: MitigationPhase | None = Field(None, description="final phase of the scenario's mitigation")
    recovery: Recovery | None = None
    within: Duration = Field("90s", description="how long the scenario may take after its last step")

    @model_validator(mode="after")
    def _no_fault_expects_nothing(self) -> Expect:
        if self.anomaly:
            return self
        if self.detected:
            raise ValueError("with anomaly: false nothing can be detected: set detected: false")
        blamed = [
            alias
            for name, alias in (
                ("category", "category"),
                ("object", "object"),
                ("first_mitigation", "firstMitigation"),
                ("outcome", "outcome"),
                ("recovery", "recovery"),
            )
            if getattr(self, name) is not None
        ]
        if blamed:
            raise ValueError(
                f"with anomaly: false there is no cause and no mitigation: remove {', '.join(blamed)}"
            )
        return self

    @property
    def expects_no_action(self) -> bool:
        return self.no_action or not self.anomaly


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
