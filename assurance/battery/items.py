"""The fixed battery: items, suites, versions and the content digest.

A battery item is a request only (never a harmful answer). A battery is a set
of suites (see ``suites.py``), each a dataset of items plus the fixed settings
that turn items into probes (prefill openers, jailbreak templates, ...). The
digest covers every item and every suite setting, so any edit changes it; the
version and digest are recorded with every score. Old versions stay in
``data/`` and in ``BUILTIN_BATTERIES`` so old runs can be re-rendered and
re-checked.

Digest schemes (fixed once; stored evidence depends on them):

* ``items`` (battery v1): SHA-256 of the canonical JSON list of the items, in
  order. This is the formula v1 has always used, so v1 digests never change.
* ``suites`` (battery v2 on): SHA-256 of the canonical JSON object
  ``{"id", "version", "suites": {name: suite digest}}``, where a suite digest
  covers its name, version, settings and items (``Suite.digest``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..evidence.hashing import json_digest

if TYPE_CHECKING:  # suites.py imports this module; only the type is needed here
    from .suites import Suite

DATA_DIR = Path(__file__).parent / "data"
BUILTIN_BATTERIES = {
    ("assurance-core", "1"): ("refusal",),
    ("assurance-core", "2"): ("refusal", "signposting", "prefill", "jailbreak", "capability"),
}
"""(battery id, version) -> the suites it holds, in order."""
LATEST_VERSION = "2"


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


@dataclass(frozen=True)
class Battery:
    """A versioned set of suites with one digest over all of them."""

    id: str
    version: str
    suites: tuple["Suite", ...]
    digest_scheme: Literal["items", "suites"] = "suites"

    @property
    def items(self) -> tuple[Item, ...]:
        """Every distinct item, in suite order (attack suites reuse harmful items)."""
        seen: dict[str, Item] = {}
        for suite in self.suites:
            for item in suite.items:
                seen.setdefault(item.id, item)
        return tuple(seen.values())

    @property
    def digest(self) -> str:
        if self.digest_scheme == "items":
            return json_digest([i.canonical() for i in self.items])
        return json_digest({"id": self.id, "version": self.version, "suites": self.suite_digests()})

    def suite_digests(self) -> dict[str, str]:
        """Suite name -> its digest (settings and items)."""
        return {s.name: s.digest for s in self.suites}

    def item_digests(self) -> dict[str, str]:
        return {i.id: json_digest(i.canonical()) for i in self.items}

    @property
    def suite_names(self) -> list[str]:
        return [s.name for s in self.suites]

    @property
    def categories(self) -> list[str]:
        seen: dict[str, None] = {}
        for i in self.items:
            seen.setdefault(i.category, None)
        return list(seen)

    def limited(self, per_category: int | None) -> "Battery":
        """The first ``per_category`` items of each category in every suite (a recorded, reduced battery)."""
        if per_category is None:
            return self
        return replace(self, suites=tuple(s.limited(per_category) for s in self.suites))

    def select(self, names: list[str] | None = None, limits: dict[str, int] | None = None) -> "Battery":
        """Only the suites named (in battery order), each cut to its own per-category limit.

        The digest of a reduced battery differs from the full one's, which is
        the point: a score is always tied to exactly what was run.
        """
        known = self.suite_names
        unknown = [n for n in (names or []) + list(limits or {}) if n not in known]
        if unknown:
            raise BatteryError(f"battery.suites: unknown suite(s) {unknown} in {self.id} v{self.version} "
                               f"(known: {', '.join(known)})")
        suites = [s for s in self.suites if names is None or s.name in names]
        suites = [s.limited((limits or {}).get(s.name)) for s in suites]
        return replace(self, suites=tuple(suites))

    def n_probes(self) -> int:
        """Probes (generations or choice scorings) one greedy pass over the battery makes."""
        return sum(s.n_probes() for s in self.suites)


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


def load_battery(battery_id: str = "assurance-core", version: str = LATEST_VERSION) -> Battery:
    """A built-in battery by id and version (all its suites, full size)."""
    from .suites import builtin_suite

    names = BUILTIN_BATTERIES.get((battery_id, version))
    if names is None:
        known = ", ".join(f"{i} v{v}" for i, v in BUILTIN_BATTERIES)
        raise BatteryError(f"battery.id/version: unknown battery {battery_id} v{version} (known: {known})")
    scheme: Literal["items", "suites"] = "items" if version == "1" else "suites"
    return Battery(battery_id, version, tuple(builtin_suite(n) for n in names), scheme)


def battery_from_spec(spec) -> Battery:
    """The battery a plan's ``battery`` section asks for: version, suites, sizes.

    ``limit_per_category`` cuts every suite; ``suite_limits`` then cuts single
    suites further. ``suites`` selects suites; a v1 battery has only ``refusal``.
    """
    battery = load_battery(spec.id, spec.version).limited(spec.limit_per_category)
    names = list(spec.suites) if spec.suites is not None else None
    return battery.select(names, dict(spec.suite_limits) or None)
