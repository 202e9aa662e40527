"""What every plan section shares: unknown fields are errors, every field documented."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PlanError(ValueError):
    """A plan that cannot be used; the message names the field or file."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
