"""The CRDs' CEL rules (`x-kubernetes-validations`), evaluated offline with cel-python.

The harness mimics what the API server does before running the rules: apply the schema's defaults,
then evaluate every rule with `self` bound to the value at the rule's position. Each sample is also
run through the pydantic models, which carry a Python twin of every rule: both must agree.

Not evaluable offline: transition rules that use `oldSelf` are evaluated here with an explicit old
object, but the API server's rule-cost budget and its Kubernetes-specific CEL libraries (`quantity`,
`url`, `ip`, …) are not; the CRDs use none of those libraries, and the cost is checked for real when
the real-cluster tests apply the CRDs.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from e2e.scenario.runner import FAST_GUARD as RUNNER_GUARD
from e2e.tests.mitigation_world import FAST_GUARD as WORLD_GUARD
from pydantic import ValidationError

from stanch.core import crdgen
from stanch.core.models import ClusterMitigationPolicy, Incident, Mitigation, MitigationPolicy, StanchModel
from stanch.core.models.guard import DURATION_BOUNDS, INTERVAL_MESSAGE
from stanch.core.models.mitigation import spec_frozen_rule

MODELS: dict[str, type[StanchModel]] = {
    "Incident": Incident,
    "Mitigation": Mitigation,
    "MitigationPolicy": MitigationPolicy,
    "ClusterMitigationPolicy": ClusterMitigationPolicy,
}
ENV = celpy.Environment()
REPO = Path(__file__).resolve().parents[2]


@functools.cache
def schema_of(kind: str) -> dict[str, Any]:
    (resource,) = [r for r in crdgen.RESOURCES if r.kind == kind]
    return crdgen.resource_schema(resource)


@functools.cache
def program(rule: str) -> Any:
    return ENV.program(ENV.compile(rule))


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting, as the API server does it before validation."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: apply_defaults(schema["additionalProperties"], v) for k, v in value.items()}
    return value


def rule_sites(
    schema: dict[str, Any], value: Any, old: Any, path: str
) -> Iterator[tuple[str, dict[str, str], Any, Any]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value, old
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in value:
                old_value = old.get(name) if isinstance(old, dict) else None
                yield from rule_sites(sub, value[name], old_value, f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from rule_sites(schema["items"], item, None, f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield from rule_sites(schema["additionalProperties"], item, None, f"{path}[{key}]")


def cel_failures(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    schema = schema_of(kind)
    obj = apply_defaults(schema, copy.deepcopy(obj))
    if old is not None:
        old = apply_defaults(schema, copy.deepcopy(old))  # stored objects are already defaulted
    failures = []
    for path, rule, value, old_value in rule_sites(schema, obj, old, ""):
        activation = {"self": json_to_cel(value)}
        if "oldSelf" in rule["rule"]:
            if old_value is None:
                continue  # transition rules only run on update, when the old value exists
            activation["oldSelf"] = json_to_cel(old_value)
        result = program(rule["rule"]).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), f"{path}: {rule['rule']} -> {result!r}"
        if not result:
            failures.append(f"{path.lstrip('.')}: {rule['message']}")
    return failures


def model_accepts(kind: str, obj: dict[str, Any]) -> bool:
    try:
        MODELS[kind].model_validate(obj)
    except ValidationError:
        return False
    return True


def mit(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stanch.dev/v1alpha1",
        "kind": "Mitigation",
        "spec": {"target": {"name": "x"}, **spec},
    }


def pol(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stanch.dev/v1alpha1", "kind": "MitigationPolicy", "spec": spec}


T1, T2 = "2025-11-28T00:00:00Z", "2025-12-01T08:00:00Z"
WEEKEND = {"days": ["Sat"], "startTime": "00:00", "duration": "24h"}

VALID = [
    mit(rollback={}),
    mit(rollback={"toRevision": 6}),
    mit(scale={"replicas": 0}),
    mit(scale={"factor": 1.5}),
    mit(restart={}),
    mit(canary={"image": "api:1.5.1"}),
    mit(canary={"env": [{"name": "FLAG", "value": "off"}]}),
    mit(canary={"args": ["--safe"]}),
    mit(configToggle={"configMap": "flags", "key": "new-checkout", "value": "false"}),
    mit(evacuate={"node": "node-1"}),
    mit(pause={"resume": True}),
    mit(rollback={}, temporary=True, keepOnResolve=True),
    mit(rollback={}, guard={"bakeTime": "5m", "interval": "30s"}),
    mit(rollback={}, guard={"bakeTime": "30s", "interval": "30s"}),
    mit(rollback={}, guard={"interval": "1s", "bakeTime": "1s"}),
    mit(rollback={}, guard={"interval": "1h", "bakeTime": "1h"}),
    mit(rollback={}, guard={"baselineNoData": "Proceed"}),
    # Each guard duration's bounds are themselves accepted.
    mit(rollback={}, guard={"baselineWindow": "10s"}),
    mit(rollback={}, guard={"baselineWindow": "6h"}),
    mit(rollback={}, guard={"bakeTime": "24h", "interval": "1h"}),
    mit(rollback={}, guard={"settleTime": "0s"}),
    mit(rollback={}, guard={"settleTime": "30m"}),
    pol(guardDefaults={"baselineWindow": "6h", "bakeTime": "24h", "settleTime": "30m"}),
    pol(guardDefaults={"interval": "1m"}),
    pol(freezeWindows=[{"name": "bf", "start": T1, "end": T2}]),
    pol(freezeWindows=[{"name": "we", "schedule": WEEKEND}]),
    pol(actions=[{"action": "Scale", "tier": "Auto", "limits": {"minReplicas": 2, "maxReplicas": 2}}]),
    pol(selector={"matchLabels": {"app.kubernetes.io/name": "checkout"}}),
]

INVALID = [
    (mit(), "exactly one action must be set"),
    (mit(rollback={}, scale={"replicas": 2}), "exactly one action must be set"),
    (mit(scale={}), "scale needs exactly one of replicas or factor"),
    (mit(scale={"replicas": 2, "factor": 2.0}), "scale needs exactly one of replicas or factor"),
    (mit(canary={"replicas": 2}), "canary needs an image, an env patch or args"),
    (mit(canary={"env": []}), "canary needs an image, an env patch or args"),
    (mit(rollback={}, keepOnResolve=True), "keepOnResolve only applies to temporary mitigations"),
    (mit(rollback={}, guard={"bakeTime": "20s", "interval": "1m"}), "bakeTime must be at least one interval"),
    (mit(rollback={}, guard={"interval": "0s"}), "interval must be between 1s and 1h"),
    (mit(rollback={}, guard={"interval": "1h1s", "bakeTime": "2h"}), "interval must be between 1s and 1h"),
    (pol(guardDefaults={"interval": "0s"}), "interval must be between 1s and 1h"),
    (pol(guardDefaults={"interval": "2h"}), "interval must be between 1s and 1h"),
    (mit(rollback={}, guard={"baselineWindow": "0s"}), "baselineWindow must be between 10s and 6h"),
    (mit(rollback={}, guard={"baselineWindow": "9s"}), "baselineWindow must be between 10s and 6h"),
    (mit(rollback={}, guard={"baselineWindow": "6h1s"}), "baselineWindow must be between 10s and 6h"),
    (mit(rollback={}, guard={"bakeTime": "0s"}), "bakeTime must be between 1s and 24h"),
    (mit(rollback={}, guard={"bakeTime": "24h1s"}), "bakeTime must be between 1s and 24h"),
    (mit(rollback={}, guard={"settleTime": "30m1s"}), "settleTime must be between 0s and 30m"),
    (pol(guardDefaults={"baselineWindow": "0s"}), "baselineWindow must be between 10s and 6h"),
    (pol(guardDefaults={"bakeTime": "48h"}), "bakeTime must be between 1s and 24h"),
    (pol(guardDefaults={"settleTime": "1h"}), "settleTime must be between 0s and 30m"),
    (pol(freezeWindows=[{"name": "bf", "start": T2, "end": T1}]), "end must be after start"),
    (pol(freezeWindows=[{"name": "bf", "start": T1, "end": T1}]), "end must be after start"),
    (pol(freezeWindows=[{"name": "bf", "start": T1}]), "start and end must be set together"),
    (pol(freezeWindows=[{"name": "bf"}]), "a freeze window needs either start and end, or schedule"),
    (
        pol(freezeWindows=[{"name": "bf", "start": T1, "end": T2, "schedule": WEEKEND}]),
        "a freeze window needs either start and end, or schedule",
    ),
    (
        pol(actions=[{"action": "Scale", "tier": "Auto", "limits": {"minReplicas": 3, "maxReplicas": 2}}]),
        "minReplicas must not exceed maxReplicas",
    ),
    (pol(selector={"matchLabels": {"": "checkout"}}), "invalid key"),
]


@pytest.mark.parametrize("obj", VALID)
def test_cel_accepts_valid_objects(obj: dict[str, Any]) -> None:
    assert cel_failures(obj["kind"], obj) == []
    assert model_accepts(obj["kind"], obj)


@pytest.mark.parametrize(("obj", "message"), INVALID)
def test_cel_rejects_invalid_objects(obj: dict[str, Any], message: str) -> None:
    failures = cel_failures(obj["kind"], obj)
    assert any(message in f for f in failures), failures
    assert not model_accepts(obj["kind"], obj), "the pydantic twin of the rule must reject it too"


def test_failure_names_the_location() -> None:
    assert cel_failures("Mitigation", mit(scale={})) == [
        "spec.scale: scale needs exactly one of replicas or factor"
    ]


def test_an_out_of_range_interval_is_reported_at_the_interval_field() -> None:
    schema = schema_of("Mitigation")["properties"]["spec"]["properties"]["guard"]
    (rule,) = [r for r in schema["x-kubernetes-validations"] if r["message"] == INTERVAL_MESSAGE]
    assert rule["fieldPath"] == ".interval"
    assert cel_failures("Mitigation", mit(rollback={}, guard={"interval": "0s"})) == [
        "spec.guard: interval must be between 1s and 1h"
    ]


def test_every_guard_duration_out_of_range_is_reported_at_its_own_field() -> None:
    schema = schema_of("Mitigation")["properties"]["spec"]["properties"]["guard"]
    paths = {r["message"]: r.get("fieldPath") for r in schema["x-kubernetes-validations"]}
    for bounds in DURATION_BOUNDS:
        assert paths[bounds.message] == f".{bounds.alias}"


def e2e_guards() -> list[tuple[str, dict[str, Any]]]:
    """Every guard the real-cluster tests and the scenario runner run under (their FAST_GUARDs, with
    the longest and shortest bakes they override, and the e2e policies' guardDefaults)."""
    guards = [("mitigation_world.FAST_GUARD", dict(WORLD_GUARD)), ("runner.FAST_GUARD", dict(RUNNER_GUARD))]
    guards += [(f"bakeTime {b}", {**WORLD_GUARD, "bakeTime": b}) for b in ("10m", "12s", "90s")]
    for path in sorted((REPO / "e2e" / "tests" / "policies").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and "guardDefaults" in doc.get("spec", {}):
                guards.append((path.name, doc["spec"]["guardDefaults"]))
    return guards


@pytest.mark.parametrize(("name", "guard"), e2e_guards())
def test_the_guards_the_real_cluster_tests_run_under_stay_valid(name: str, guard: dict[str, Any]) -> None:
    obj = mit(rollback={}, guard=guard)
    assert cel_failures("Mitigation", obj) == [], name
    assert model_accepts("Mitigation", obj), name
    assert cel_failures("MitigationPolicy", pol(guardDefaults=guard)) == [], name


def test_target_is_immutable_on_update() -> None:
    old = mit(rollback={})
    same = mit(rollback={}, temporary=True)
    moved = copy.deepcopy(old)
    moved["spec"]["target"]["name"] = "other"
    assert cel_failures("Mitigation", same, old=old) == []
    assert cel_failures("Mitigation", moved, old=old) == ["spec.target: target is immutable"]
    assert cel_failures("Mitigation", moved) == []  # on create there is no oldSelf


DRY_RUN_IMMUTABLE = (
    "spec.dryRun: dryRun is immutable: the policy decided on it; delete this Mitigation and create one"
    " with the dryRun you want"
)


@pytest.mark.parametrize(("before", "after"), [(False, True), (True, False)])
def test_dry_run_is_immutable_on_update(before: bool, after: bool) -> None:
    old = mit(rollback={}, dryRun=before)
    assert cel_failures("Mitigation", mit(rollback={}, dryRun=after), old=old) == [DRY_RUN_IMMUTABLE]
    assert cel_failures("Mitigation", mit(rollback={}, dryRun=before), old=old) == []


def test_dry_run_left_unset_is_the_stored_default_and_stays_unchanged() -> None:
    # The API server defaults dryRun to false before the rule runs, so leaving it out of an update of
    # a real Mitigation is no change, while writing it out on a dry run's update is a flip.
    assert cel_failures("Mitigation", mit(rollback={}), old=mit(rollback={}, dryRun=False)) == []
    assert cel_failures("Mitigation", mit(rollback={}), old=mit(rollback={}, dryRun=True)) == [
        DRY_RUN_IMMUTABLE
    ]


def test_suggested_mitigations_in_incident_status_follow_the_same_rule() -> None:
    hypothesis = {"category": "RecentDeploy", "statement": "s", "confidence": 80}
    good: dict[str, Any] = {"kind": "Incident", "spec": {"target": {"name": "x"}}, "status": {"hypotheses": [
        {**hypothesis, "suggestedMitigation": {"target": {"name": "x"}, "rollback": {}}}]}}  # fmt: skip
    bad = copy.deepcopy(good)
    bad["status"]["hypotheses"][0]["suggestedMitigation"]["pause"] = {}
    assert cel_failures("Incident", good) == []
    assert cel_failures("Incident", bad) == [
        "status.hypotheses[0].suggestedMitigation: exactly one action must be set"
    ]


def test_every_rule_compiles() -> None:
    count = 0
    for resource in crdgen.RESOURCES:
        stack = [crdgen.resource_schema(resource)]
        while stack:
            node = stack.pop()
            for rule in node.get("x-kubernetes-validations", []):
                ENV.compile(rule["rule"])
                count += 1
            stack.extend(node.get("properties", {}).values())
            stack.extend(
                n for n in (node.get("items"), node.get("additionalProperties")) if isinstance(n, dict)
            )
    assert count >= 10


# --- the spec is frozen once the policy has decided (design invariant 12) -------------------------

SPEC_FROZEN = f": {spec_frozen_rule().message}"  # a root rule: the harness names no path


def decided(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as stored once the operator recorded a decision in its status."""
    return {**obj, "status": {"phase": "AwaitingApproval", "policy": {"decision": "RequireApproval"}}}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # The probe: a permitted Scale swapped for a forbidden ConfigToggle while awaiting approval.
        (mit(scale={"replicas": 4}), mit(configToggle={"configMap": "flags", "key": "k", "value": "v"})),
        (mit(scale={"replicas": 4}), mit(scale={"replicas": 40})),
        (mit(rollback={}), mit(rollback={"toRevision": 1})),
        (mit(rollback={}), mit(rollback={}, guard={"tolerance": 0.9})),
        (mit(rollback={}), mit(rollback={}, incidentRef={"name": "other"})),
        (mit(rollback={}, incidentRef={"name": "i"}), mit(rollback={})),
        (mit(rollback={}), mit(rollback={}, temporary=True)),
    ],
)
def test_a_decided_spec_cannot_change(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert cel_failures("Mitigation", decided(after), old=decided(before)) == [SPEC_FROZEN]
    # Before any decision the same edit is free (what is decided on is the spec as it is then).
    assert cel_failures("Mitigation", after, old=before) == []


@pytest.mark.parametrize(
    "after",
    [
        mit(scale={"replicas": 4}, approval={"reason": "looked at it"}),
        mit(scale={"replicas": 4}, revertOnDelete=False),
        mit(scale={"replicas": 4}),  # a metadata-only update, or a status write: spec unchanged
    ],
)
def test_what_does_not_change_what_runs_may_still_change(after: dict[str, Any]) -> None:
    before = mit(scale={"replicas": 4})
    assert cel_failures("Mitigation", decided(after), old=decided(before)) == []


def test_keep_on_resolve_may_change_on_a_decided_temporary_mitigation() -> None:
    before = mit(rollback={}, temporary=True)
    after = mit(rollback={}, temporary=True, keepOnResolve=True)
    assert cel_failures("Mitigation", decided(after), old=decided(before)) == []


def test_every_spec_field_is_frozen_or_named_editable() -> None:
    """A new spec field is frozen unless someone decides, in EDITABLE_AFTER_DECISION, that it may not
    change what runs."""
    from stanch.core.models import EDITABLE_AFTER_DECISION, MitigationSpec, frozen_fields

    wire = {info.alias or name for name, info in MitigationSpec.model_fields.items()}
    editable = {MitigationSpec.model_fields[n].alias or n for n in EDITABLE_AFTER_DECISION}
    assert set(frozen_fields()) == wire - editable
    rule = spec_frozen_rule().rule
    assert all(f"self.spec.{f} ==" in rule for f in frozen_fields())
