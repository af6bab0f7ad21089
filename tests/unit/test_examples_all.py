"""Every example under manifests/examples/, including subdirectories (policies/), passes what the API
server would check: the structural schema, the CEL rules (after defaulting) and the pydantic model.

test_crdgen.py covers the top-level examples with schema and model; the policy guide's examples in
policies/ are shipped for admins to copy, so they get the same checks plus the CEL rules here.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema  # type: ignore[import-untyped]  # no stubs pinned
import pytest
import yaml
from celpy.adapter import json_to_cel

from stanch.core import crdgen
from stanch.core.models import (
    ClusterMitigationPolicy,
    Incident,
    Mitigation,
    MitigationApproval,
    MitigationPolicy,
    StanchModel,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
MODELS: dict[str, type[StanchModel]] = {
    "Incident": Incident,
    "Mitigation": Mitigation,
    "MitigationApproval": MitigationApproval,
    "MitigationPolicy": MitigationPolicy,
    "ClusterMitigationPolicy": ClusterMitigationPolicy,
}
ENV = celpy.Environment()


@functools.cache
def schema_of(kind: str) -> dict[str, Any]:
    (resource,) = [r for r in crdgen.RESOURCES if r.kind == kind]
    return crdgen.resource_schema(resource)


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((str(path.relative_to(EXAMPLES)), doc))
    return docs


def defaulted(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting, as the API server does it before running the CEL rules."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = defaulted(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [defaulted(schema["items"], v) for v in value]
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: defaulted(schema["additionalProperties"], v) for k, v in value.items()}
    return value


def rule_sites(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, str], Any]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in value:
                yield from rule_sites(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from rule_sites(schema["items"], item, f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield from rule_sites(schema["additionalProperties"], item, f"{path}[{key}]")


def cel_failures(doc: dict[str, Any]) -> list[str]:
    schema = schema_of(doc["kind"])
    failures = []
    for path, rule, value in rule_sites(schema, defaulted(schema, copy.deepcopy(doc)), ""):
        if "oldSelf" in rule["rule"]:
            continue  # transition rules only run on update; an example is always a create
        result = ENV.program(ENV.compile(rule["rule"])).evaluate({"self": json_to_cel(value)})
        if not result:
            failures.append(f"{path.lstrip('.')}: {rule['message']}")
    return failures


def test_every_example_directory_is_covered() -> None:
    names = {name for name, _ in documents()}
    assert any(name.startswith("policies/") for name in names), names
    assert {doc["kind"] for _, doc in documents()} == set(MODELS)


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_example_passes_schema_cel_and_model(name: str, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "stanch.dev/v1alpha1", name
    jsonschema.validate(doc, schema_of(doc["kind"]), cls=jsonschema.Draft4Validator)
    assert cel_failures(doc) == [], name
    MODELS[doc["kind"]].model_validate(doc)


def test_the_cel_check_here_does_reject() -> None:
    """Guard against this file's harness passing everything: a broken example must fail it."""
    ((_, doc),) = [(n, d) for n, d in documents() if n == "mitigation-rollback.yaml"]
    broken = copy.deepcopy(doc)
    broken["spec"]["pause"] = {}
    assert cel_failures(broken) == ["spec: exactly one action must be set"]
