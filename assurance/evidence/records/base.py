"""The base of every evidence record: strict, frozen, documented, versioned."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1

Stage = Literal["base", "tuned", "stress"]
"""Which model an evaluation looked at: the base model, the safety-tuned model,
or the tuned model after the benign persistence-stress fine-tune."""


class BaseRecord(BaseModel):
    """What every record kind shares: strict (unknown fields are refused), frozen, and with a
    docstring under every field that becomes its description in the published JSON Schema.

    The class name appears in no payload or schema, so renaming it left every digest as it was."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    schema_version: int = SCHEMA_VERSION
    """Version of the record encoding; bumped only together with a migration."""

