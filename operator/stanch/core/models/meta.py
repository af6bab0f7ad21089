"""The parts of Kubernetes ``ObjectMeta`` that Stanch reads; everything else is ignored."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from stanch.core.models.base import StanchModel


class ObjectMeta(StanchModel):
    """Object metadata (a subset; unknown metadata fields are ignored, not rejected)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    """Object name."""
    namespace: str | None = None
    """Object namespace."""
    uid: str | None = None
    """Object UID."""
    generation: Annotated[int, Field(ge=0)] | None = None
    """Spec generation."""
    resource_version: str | None = None
    """Resource version for optimistic concurrency."""
    creation_timestamp: AwareDatetime | None = None
    """Creation time."""
    labels: dict[str, str] = {}
    """Labels."""
    annotations: dict[str, str] = {}
    """Annotations."""
