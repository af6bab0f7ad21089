"""Alertmanager's webhook payload (version 4), validated strictly: wrong types, missing fields and
oversized collections are refused with the field's path, never coerced.

Fields Alertmanager may add in a later version are ignored rather than refused, so a newer
Alertmanager keeps working; a different ``version`` is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

MAX_ALERTS = 1000
"""Alerts one notification may carry; Alertmanager's ``max_alerts`` should be lower (docs)."""
MAX_LABELS = 64
LabelText = Annotated[str, StringConstraints(max_length=4096)]
Labels = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], LabelText],
    Field(max_length=MAX_LABELS),
]


def _alias(name: str) -> str:
    # Alertmanager writes URL in capitals (generatorURL, externalURL).
    return to_camel(name).replace("Url", "URL")


class _Strict(BaseModel):
    model_config = ConfigDict(
        alias_generator=_alias, validate_by_alias=True, validate_by_name=False, strict=True, extra="ignore"
    )


class WebhookAlert(_Strict):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = {}
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    """Alertmanager sends ``0001-01-01T00:00:00Z`` for "not ended"; see :meth:`ended`."""
    generator_url: Annotated[str, StringConstraints(max_length=4096)] = ""
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-zA-Z]+$")]

    @property
    def ended(self) -> datetime | None:
        if self.ends_at is None or self.ends_at.year <= 1:
            return None
        return self.ends_at


class WebhookPayload(_Strict):
    version: Literal["4"]
    group_key: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    truncated_alerts: Annotated[int, Field(ge=0)] = 0
    status: Literal["firing", "resolved"]
    receiver: Annotated[str, StringConstraints(max_length=256)] = ""
    group_labels: Labels = {}
    common_labels: Labels = {}
    common_annotations: Labels = {}
    external_url: Annotated[str, StringConstraints(max_length=1024)] = ""
    alerts: Annotated[list[WebhookAlert], Field(min_length=1, max_length=MAX_ALERTS)]


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook payload; ``str()`` names the fields and the problems."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_payload(body: bytes) -> WebhookPayload:
    """The payload, or :class:`PayloadError` naming at most five offending fields."""
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False)[:5]:
            path = ""
            for part in err["loc"]:
                path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            problems.append(f"{path or 'body'}: {err['msg']}")
        raise PayloadError(problems) from None
