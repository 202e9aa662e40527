"""What every plan section shares: unknown fields are errors, every field documented, numbers finite.

A plan is recorded as canonical JSON (RFC 8785), which has no infinity or NaN and no integer beyond
2**53 - 1: such a value would pass validation and then fail when the run is recorded, so every section
refuses them here, naming the field (``finetune.lr: Input should be a finite number``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

MAX_JSON_INT = 2**53 - 1
"""The largest integer canonical JSON (RFC 8785, IEEE doubles) records exactly."""

MAX_SEED = 2**32 - 1
"""Seeds are non-negative and fit numpy's 32-bit seed, which every seeded library accepts."""

MAX_STEPS = 10_000_000
"""Upper bound on optimizer and warm-up steps: far beyond any fine-tune this tool runs, and a typo (an extra
few zeros) is refused rather than a run that never ends."""


class PlanError(ValueError):
    """A plan that cannot be used; the message names the field or file."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _json_safe_ints(cls, value: Any) -> Any:
        _check_ints(value)
        return value


def _check_ints(value: Any) -> None:
    """Refuse an integer (also inside a list or mapping) that canonical JSON cannot record."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_JSON_INT:
            raise ValueError(f"{value} is too large to record (at most {MAX_JSON_INT} in absolute value)")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_ints(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
