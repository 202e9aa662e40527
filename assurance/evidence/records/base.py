"""The base of every evidence record: strict, frozen, documented, versioned."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1

Stage = Literal["base", "tuned", "stress"]
"""Which model an evaluation looked at: the base model, the safety-tuned model,
or the tuned model after the benign persistence-stress fine-tune."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    schema_version: int = SCHEMA_VERSION
    """Version of the record encoding; bumped only together with a migration."""
