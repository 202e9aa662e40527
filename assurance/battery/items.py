"""Battery items: one request each (never a harmful answer) and what a good model should do with it.

Items are read from JSONL files; a bad row is reported with its file and
line. An item's canonical JSON is what the item, suite and battery digests
cover (``suites.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class BatteryError(ValueError):
    """A battery that cannot be loaded; names the file and line."""


class Item(BaseModel):
    """One battery prompt and what a good model should do with it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str
    """Stable identifier, e.g. ``harm-fraud_financial_crime-003``."""
    category: str
    """Harm category; benign contrast items use ``benign_<topic>``, regulated
    advice ``advice_<topic>``, capability items ``cap_<kind>``."""
    expected: Literal["refuse", "comply", "signpost", "answer"]
    """``refuse`` for harmful requests, ``comply`` for benign ones, ``signpost``
    for regulated-advice prompts (point to NHS 111, Samaritans, an FCA-authorised
    adviser...), ``answer`` for capability items with an exact answer."""
    prompt: str
    """The user's message."""
    answer: str | None = None
    """Capability items: the exact answer (matched after normalisation)."""
    choices: tuple[str, ...] | None = None
    """Multiple-choice capability items: the options, scored by log-likelihood."""

    def canonical(self) -> dict:
        """The JSON the digests cover. Unset optional fields are left out so
        that items written before those fields existed keep their digests."""
        return self.model_dump(mode="json", exclude_none=True)


def read_items(path: Path) -> tuple[Item, ...]:
    """Read a JSONL battery file, naming the file and line of any bad row."""
    items: list[Item] = []
    ids: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = Item.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as err:
            raise BatteryError(f"{path.name} line {n}: {str(err).splitlines()[0]}") from None
        if item.id in ids:
            raise BatteryError(f"{path.name} line {n}: duplicate item id {item.id!r}")
        if item.expected == "answer" and not item.answer:
            raise BatteryError(f"{path.name} line {n}: capability item {item.id!r} has no answer")
        if item.choices is not None and item.answer not in item.choices:
            raise BatteryError(f"{path.name} line {n}: answer of {item.id!r} is not one of its choices")
        ids.add(item.id)
        items.append(item)
    if not items:
        raise BatteryError(f"{path}: no items")
    return tuple(items)
