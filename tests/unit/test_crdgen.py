"""CRD generation: complete, structural, bounded, deterministic, and in sync with `crds/` on disk."""

from __future__ import annotations

import functools
import pathlib
import types
import typing
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs pinned
import pytest
import yaml
from pydantic import BaseModel

from stanch.core import crdgen
from stanch.core.crdschema import CrdSchemaError, structural_schema
from stanch.core.models import (
    ClusterMitigationPolicy,
    Incident,
    Mitigation,
    MitigationApproval,
    MitigationPolicy,
    StanchModel,
)
from stanch.core.models.common import preserve_unknown
from stanch.wiring.crds_command import crds_command

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
RESOURCES = {r.kind: r for r in crdgen.RESOURCES}
MODELS: dict[str, type[StanchModel]] = {
    "Incident": Incident,
    "Mitigation": Mitigation,
    "MitigationApproval": MitigationApproval,
    "MitigationPolicy": MitigationPolicy,
    "ClusterMitigationPolicy": ClusterMitigationPolicy,
}

# Where a free-form subtree is deliberate (and why): Kopf's own progress storage, a pre-change copy of
# an arbitrary object, and a merge patch against an arbitrary object.
PRESERVE_ALLOWED = {"status.kopf", "status.snapshot", "status.plan.patch"}

FORBIDDEN_KEYS = {
    "$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "const", "propertyNames",
    "patternProperties", "dependencies", "additionalItems", "uniqueItems", "exclusiveMinimum",
    "exclusiveMaximum", "nullable", "title", "$schema", "id",
}  # fmt: skip


@functools.cache
def schema_of(kind: str) -> dict[str, Any]:
    return crdgen.resource_schema(RESOURCES[kind])


def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def structural_violations(schema: dict[str, Any]) -> list[str]:
    """A checker for the structural-schema rules of apiextensions.k8s.io/v1 plus our own bounds."""
    problems = []
    for path, node in walk(schema, ""):
        where = path or "<root>"
        for key in FORBIDDEN_KEYS & set(node):
            problems.append(f"{where}: forbidden keyword {key}")
        preserve = node.get("x-kubernetes-preserve-unknown-fields")
        if preserve:
            if path not in PRESERVE_ALLOWED:
                problems.append(f"{where}: preserve-unknown-fields outside the allowed places")
            if node.get("properties"):
                problems.append(f"{where}: preserve-unknown-fields with properties")
        if "type" not in node and not preserve:
            problems.append(f"{where}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties together")
        if isinstance(node.get("additionalProperties"), bool):
            problems.append(f"{where}: boolean additionalProperties")
        if path.startswith("metadata.") or (path == "metadata" and node != {"type": "object"}):
            problems.append(f"{where}: metadata may not be constrained")
        kind = node.get("type")
        if kind == "array":
            if "items" not in node:
                problems.append(f"{where}: array without items")
            if "maxItems" not in node:
                problems.append(f"{where}: unbounded list")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            problems.append(f"{where}: unbounded map")
        if kind == "string" and not ({"maxLength", "enum"} & set(node) or node.get("format") == "date-time"):
            problems.append(f"{where}: unbounded string")
        for rule in node.get("x-kubernetes-validations", []):
            fp = rule.get("fieldPath")
            if fp and fp.lstrip(".").split(".")[0] not in node.get("properties", {}):
                problems.append(f"{where}: fieldPath {fp} does not exist")
            if not rule.get("message"):
                problems.append(f"{where}: rule without message")
        keys = node.get("x-kubernetes-list-map-keys")
        if keys:
            item = node["items"]
            for key in keys:
                if key not in item.get("required", []):
                    problems.append(f"{where}: list-map key {key} must be required")
    return problems


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_schema_is_structural_and_bounded(kind: str) -> None:
    schema = schema_of(kind)
    # the root apiVersion/kind/metadata are exempt from our own bounds (Kubernetes validates them)
    problems = [p for p in structural_violations(schema) if not p.startswith(("apiVersion:", "kind:"))]
    assert problems == []


def test_checker_catches_violations() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"type": "array", "items": {"type": "string", "maxLength": 3}},
            "c": {"type": "string"},
            "status": {"type": "object", "properties": {"x": {"type": "object",
                       "x-kubernetes-preserve-unknown-fields": True}}},
        },
    }  # fmt: skip
    problems = structural_violations(bad)
    assert any("a: forbidden keyword anyOf" in p for p in problems)
    assert any("a: no type" in p for p in problems)
    assert any("b: unbounded list" in p for p in problems)
    assert any("c: unbounded string" in p for p in problems)
    assert any("status.x: preserve-unknown-fields outside" in p for p in problems)


# --- every model field appears in the schema ----------------------------------------------------


def nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from nested_models(typing.get_args(annotation)[0])
        return
    if origin in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from nested_models(arg)


def model_paths(model: type[BaseModel], path: str) -> Iterator[tuple[str, bool]]:
    """(schema path, is free-form) for every field of `model`, recursively."""
    for name, info in model.model_fields.items():
        alias = info.alias or name
        field_path = f"{path}.{alias}"
        extra = info.json_schema_extra
        free = isinstance(extra, dict) and extra.get("x-kubernetes-preserve-unknown-fields") is True
        yield field_path, free
        if free:
            continue
        annotation = info.annotation
        container = ""
        origin = typing.get_origin(annotation)
        for arg in [annotation, *typing.get_args(annotation)]:
            if typing.get_origin(arg) is list or origin is list:
                container = "[]"
        for sub in nested_models(annotation):
            yield from model_paths(sub, field_path + container)


def schema_paths(schema: dict[str, Any]) -> set[str]:
    return {path for path, _ in walk(schema, "")}


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_every_model_field_appears_in_the_schema(kind: str) -> None:
    resource = RESOURCES[kind]
    present = schema_paths(schema_of(kind))
    expected = [
        *model_paths(resource.spec_model, "spec"),
        *(model_paths(resource.status_model, "status") if resource.status_model else ()),
    ]
    assert len(expected) > (5 if resource.status_model is None else 10)
    missing = [p for p, _ in expected if p not in present]
    assert missing == []
    # and nothing in the schema that is not a model field (besides the envelope)
    envelope = {"", "apiVersion", "kind", "metadata", "spec", "status"}
    stray = {p for p in present - envelope - {p for p, _ in expected} if not p.endswith(("[]", "{}"))}
    assert stray == set()


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_every_field_is_documented(kind: str) -> None:
    for path, node in walk(schema_of(kind), ""):
        if path.endswith(("[]", "{}")) or path == "metadata":
            continue
        assert node.get("description"), f"{path} has no description"


# --- the CRD envelope ---------------------------------------------------------------------------


def test_names_scope_and_subresources() -> None:
    crds = {r.kind: crdgen.custom_resource_definition(r) for r in crdgen.RESOURCES}
    assert crds["Incident"]["spec"]["names"]["shortNames"] == ["inc"]
    assert crds["Mitigation"]["spec"]["names"]["shortNames"] == ["mit"]
    assert crds["MitigationPolicy"]["spec"]["names"]["shortNames"] == ["mpol"]
    assert crds["ClusterMitigationPolicy"]["spec"]["names"]["shortNames"] == ["cmpol"]
    assert crds["ClusterMitigationPolicy"]["spec"]["scope"] == "Cluster"
    assert crds["MitigationApproval"]["spec"]["names"]["shortNames"] == ["mapproval"]
    for kind, crd in crds.items():
        assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.stanch.dev"
        assert crd["spec"]["names"]["categories"] == ["stanch"]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1"
        if kind == "MitigationApproval":
            # Stanch never writes to an approval: no status, no status subresource.
            assert "subresources" not in version
            assert "status" not in version["schema"]["openAPIV3Schema"]["properties"]
        else:
            assert version["subresources"] == {"status": {}}
        columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
        assert "Age" in columns, kind
        for column in columns.values():
            assert column["type"] in ("string", "integer", "boolean", "date")


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("Incident", ["Phase", "Severity", "Target", "Top-Hypothesis", "Age"]),
        ("Mitigation", ["Phase", "Action", "Target", "Verdict", "Age"]),
        ("MitigationPolicy", ["Ready", "Age"]),
    ],
)
def test_printer_columns_point_at_real_fields(kind: str, columns: list[str]) -> None:
    crd = crdgen.custom_resource_definition(RESOURCES[kind])
    printed = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in printed if not c.get("priority")] == columns
    paths = schema_paths(schema_of(kind))
    for column in printed:
        json_path = column["jsonPath"].lstrip(".").split("[")[0]
        if json_path.startswith("metadata."):
            continue
        assert json_path in paths, column


def test_spec_keeps_scalar_defaults_and_status_none() -> None:
    inc = schema_of("Incident")
    spec = inc["properties"]["spec"]["properties"]
    assert spec["severity"]["default"] == "SEV3"
    assert spec["lookback"]["default"] == "30m"
    assert spec["mitigation"]["properties"]["mode"]["default"] == "Suggest"
    assert not any("default" in node for _, node in walk(inc["properties"]["status"], "status"))


def test_untyped_objects_are_refused() -> None:
    class Loose(StanchModel):
        """Loose."""

        blob: dict[str, Any] = {}
        """Untyped."""

    with pytest.raises(CrdSchemaError, match="untyped object"):
        structural_schema(Loose, keep_defaults=True)

    class Marked(StanchModel):
        """Marked."""

        blob: dict[str, Any] | None = None
        """Free-form on purpose."""

    Marked.model_fields["blob"].json_schema_extra = preserve_unknown()
    Marked.model_rebuild(force=True)
    node = structural_schema(Marked, keep_defaults=True)["properties"]["blob"]
    assert node == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "Free-form on purpose.",
    }


def test_unions_and_undocumented_fields_are_refused() -> None:
    class Union(StanchModel):
        """U."""

        value: int | str = 0
        """Either."""

    with pytest.raises(CrdSchemaError, match="union"):
        structural_schema(Union, keep_defaults=True)

    class Undocumented(StanchModel):
        """U."""

        value: int = 0

    with pytest.raises(CrdSchemaError, match="missing description"):
        structural_schema(Undocumented, keep_defaults=True)


# --- examples validate against the generated schemas --------------------------------------------


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


def test_examples_exist() -> None:
    names = {name for name, _ in example_documents()}
    assert {
        "incident.yaml",
        "mitigation-rollback.yaml",
        "mitigation-scale.yaml",
        "mitigationpolicy.yaml",
    } <= names


@pytest.mark.parametrize(("name", "doc"), example_documents(), ids=[n for n, _ in example_documents()])
def test_example_validates_against_schema_and_model(name: str, doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    jsonschema.validate(doc, schema_of(kind), cls=jsonschema.Draft4Validator)
    MODELS[kind].model_validate(doc)


def test_scale_example_is_a_dry_run() -> None:
    doc = yaml.safe_load((EXAMPLES / "mitigation-scale.yaml").read_text(encoding="utf-8"))
    assert doc["spec"]["dryRun"] is True


def test_schema_rejects_what_it_should() -> None:
    schema = schema_of("Mitigation")
    bad = {"spec": {"target": {"name": "x"}, "scale": {"replicas": -1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft4Validator)
    bad = {"spec": {"target": {"name": "x"}, "restart": {}, "extra": 1}}
    # unknown fields are pruned by the API server, not rejected by the schema: nothing to assert there
    jsonschema.validate(
        {"spec": {"target": {"name": "x"}, "restart": {}}}, schema, cls=jsonschema.Draft4Validator
    )


# --- determinism and drift ------------------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    assert crdgen.generated_files() == crdgen.generated_files()
    assert crdgen.reference_markdown() == crdgen.reference_markdown()


def test_generated_yaml_parses_back_to_the_crd() -> None:
    files = crdgen.generated_files()
    for resource in crdgen.RESOURCES:
        assert yaml.safe_load(files[resource.file_name]) == crdgen.custom_resource_definition(resource)
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    assert kustomization["resources"] == sorted(r.file_name for r in crdgen.RESOURCES)


def test_crds_on_disk_match_the_models() -> None:
    """CRD drift: run `stanch crds` (or the crds_command) and commit the result if this fails."""
    for name, text in crdgen.generated_files().items():
        assert (REPO / "crds" / name).read_text(encoding="utf-8") == text, name
    on_disk = {p.name for p in (REPO / "crds").glob("*.stanch.dev.yaml")}
    assert on_disk == {r.file_name for r in crdgen.RESOURCES}
    assert (REPO / "docs" / "crd-reference.md").read_text(encoding="utf-8") == crdgen.reference_markdown()


def test_reference_mentions_every_kind_and_rule() -> None:
    text = crdgen.reference_markdown()
    for kind in RESOURCES:
        assert f"## {kind}\n" in text
    assert "exactly one action must be set" in text
    assert "`spec.scale`" in text


def test_crds_command_writes_checks_and_reports_drift(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crds"
    assert crds_command(out, check=True) == 1  # everything missing
    assert "+++ b/" in capsys.readouterr().out
    assert not out.exists()  # check writes nothing

    assert crds_command(out, check=False) == 0
    assert (tmp_path / "docs" / "crd-reference.md").is_file()
    assert crds_command(out, check=True) == 0
    assert capsys.readouterr().out == ""

    stale = out / "mitigations.stanch.dev.yaml"
    stale.write_text(
        stale.read_text(encoding="utf-8").replace("maxItems: 60", "maxItems: 61"), encoding="utf-8"
    )
    (out / "old.stanch.dev.yaml").write_text("kind: Gone\n", encoding="utf-8")
    (out / "README.yaml").write_text("not ours\n", encoding="utf-8")
    assert crds_command(out, check=True) == 1
    diff = capsys.readouterr().out
    assert any(line.startswith("-") and "maxItems: 61" in line for line in diff.splitlines())
    assert "old.stanch.dev.yaml" in diff
    assert "README.yaml" not in diff

    assert crds_command(out, check=False) == 0
    assert not (out / "old.stanch.dev.yaml").exists()
    assert (out / "README.yaml").exists()
    assert crds_command(out, check=True) == 0
