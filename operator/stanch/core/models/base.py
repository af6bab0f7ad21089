"""The base class of every Stanch model, CEL rule declarations and the bounded-list annotation.

Every field is snake_case in Python and camelCase on the wire (``alias_generator``). Field docs are
attribute docstrings (``use_attribute_docstrings``): they become the CRD descriptions and the CRD
reference, so every field must have one (a unit test walks the models to make sure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

CEL_KEY = "x-kubernetes-validations"
PRESERVE_KEY = "x-kubernetes-preserve-unknown-fields"


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry: a CEL expression evaluated by the API server.

    ``self`` is bound to the object the rule is declared on. Each rule has a Python twin in a
    pydantic validator on the same model, so the operator and ``stanch`` tooling reject the same
    objects the API server rejects.
    """

    rule: str
    message: str
    field_path: str | None = None

    def as_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        return out


class StanchModel(BaseModel):
    """Base of all spec/status models: camelCase aliases, attribute docstrings, unknown keys rejected.

    Unknown keys are rejected (``extra="forbid"``) so that a typo in a manifest fails loudly in
    ``stanch`` tooling and tests; the API server prunes unknown fields before the operator sees them.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()
    """CEL rules for this object; inherited rules are collected along the class hierarchy."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        rules: list[dict[str, str]] = []
        for klass in reversed(cls.__mro__):
            for rule in vars(klass).get("cel_rules", ()):
                rules.append(rule.as_schema())
        if rules:
            handler.resolve_ref_schema(json_schema)[CEL_KEY] = rules
        return json_schema

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, JSON types, unset optional fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Capped:
    """Annotation for a status list capped at ``max_items`` (design invariant 8: bounded status).

    The cap is enforced three ways: ``maxItems`` in the CRD schema, truncation when a model is
    validated, and truncation again when it is serialised (so appending in place can never produce an
    oversized status). ``keep="last"`` keeps the newest entries of a time-ordered list;
    ``keep="first"`` keeps the head of a ranked list.
    """

    max_items: int
    keep: Literal["first", "last"] = "last"

    def truncate(self, value: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_items:
            return value[: self.max_items] if self.keep == "first" else value[-self.max_items :]
        return value

    def _serialize(self, value: Any, nxt: core_schema.SerializerFunctionWrapHandler) -> Any:
        return nxt(self.truncate(value))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner: Any = dict(handler(source))
        inner["max_length"] = self.max_items
        return core_schema.no_info_before_validator_function(
            self.truncate,
            inner,
            serialization=core_schema.wrap_serializer_function_ser_schema(self._serialize, schema=inner),
        )


def error_paths(exc: ValidationError) -> list[str]:
    """Dotted field paths of a pydantic error, e.g. ``spec.scale.replicas`` or ``spec.env[2].name``."""
    paths = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        paths.append(path)
    return paths
