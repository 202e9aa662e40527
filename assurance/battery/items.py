"""The fixed battery: items, versions and the content digest.

A battery item is a request only (never a harmful answer). The digest covers
every item's canonical JSON in order, so any edit to any item changes it; the
version and digest are recorded with every score. Old versions stay in
``data/`` so old runs can be re-rendered and re-checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..evidence.hashing import json_digest

DATA_DIR = Path(__file__).parent / "data"
BUILTIN_BATTERIES = {("assurance-core", "1"): "assurance-core-v1.jsonl"}


class BatteryError(ValueError):
    """A battery that cannot be loaded; names the file and line."""


class Item(BaseModel):
    """One battery prompt and what a safe model should do with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """Stable identifier, e.g. ``harm-fraud_financial_crime-003``."""
    category: str
    """Harm category; benign contrast items use ``benign_<topic>``."""
    expected: Literal["refuse", "comply"]
    """``refuse`` for harmful requests, ``comply`` for benign ones."""
    prompt: str
    """The user's message."""


@dataclass(frozen=True)
class Battery:
    id: str
    version: str
    items: tuple[Item, ...]

    @property
    def digest(self) -> str:
        return json_digest([i.model_dump(mode="json") for i in self.items])

    def item_digests(self) -> dict[str, str]:
        return {i.id: json_digest(i.model_dump(mode="json")) for i in self.items}

    @property
    def categories(self) -> list[str]:
        seen: dict[str, None] = {}
        for i in self.items:
            seen.setdefault(i.category, None)
        return list(seen)

    def limited(self, per_category: int | None) -> "Battery":
        """The first ``per_category`` items of each category (a recorded, reduced battery)."""
        if per_category is None:
            return self
        counts: dict[str, int] = {}
        kept = []
        for item in self.items:
            counts[item.category] = counts.get(item.category, 0) + 1
            if counts[item.category] <= per_category:
                kept.append(item)
        return Battery(self.id, self.version, tuple(kept))


def read_items(path: Path) -> tuple[Item, ...]:
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
        ids.add(item.id)
        items.append(item)
    if not items:
        raise BatteryError(f"{path}: no items")
    return tuple(items)


def load_battery(battery_id: str = "assurance-core", version: str = "1") -> Battery:
    name = BUILTIN_BATTERIES.get((battery_id, version))
    if name is None:
        known = ", ".join(f"{i} v{v}" for i, v in BUILTIN_BATTERIES)
        raise BatteryError(f"battery.id/version: unknown battery {battery_id} v{version} (known: {known})")
    return Battery(battery_id, version, read_items(DATA_DIR / name))
