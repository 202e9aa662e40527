"""Suites and batteries: what is run, and the digests that pin it.

As in Inspect, each suite is a small, fixed triple: a dataset (items), a
solver (how items become probes) and a scorer, named by ``scoring`` (one of
``Scoring``; ``scorers.py`` holds the scorer of each). A battery is a list of
suites with one id, version and digest. The built-in suites and batteries are
declared in ``builtin.py``.

Digest schemes (fixed once; stored evidence depends on them):

* ``items`` (battery v1): SHA-256 of the canonical JSON list of the items, in
  order. This is the formula v1 has always used, so v1 digests never change.
* ``suites`` (battery v2 on): SHA-256 of the canonical JSON object
  ``{"id", "version", "suites": {name: suite digest}}``, where a suite digest
  covers its name, version, scoring, solver settings and items (``Suite.digest``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..evidence.hashing import json_digest
from .items import BatteryError, Item
from .probes import DrawnPrefill, Jailbreak, Plain, Prefill, Probe, ResponsePrefill

Scoring = Literal["refusal", "signposting", "attack", "capability"]
"""How a suite's outputs are scored, and so which metric it reports (``scorers.py``)."""
Solver = Plain | Prefill | DrawnPrefill | ResponsePrefill | Jailbreak


@dataclass(frozen=True)
class Suite:
    """One suite of the battery: dataset + solver + scorer."""

    name: str
    version: str
    items: tuple[Item, ...]
    solver: Solver
    scoring: Scoring
    """Which scorer judges the outputs and which metric the suite reports."""

    @property
    def digest(self) -> str:
        """SHA-256 over the suite's name, version, scoring, solver settings and items."""
        return json_digest({"name": self.name, "version": self.version, "scoring": self.scoring,
                            "solver": self.solver.settings, "items": [i.canonical() for i in self.items]})

    def limited(self, per_category: int | None) -> Suite:
        """The first ``per_category`` items of each category."""
        if per_category is None:
            return self
        counts: dict[str, int] = {}
        kept = []
        for item in self.items:
            counts[item.category] = counts.get(item.category, 0) + 1
            if counts[item.category] <= per_category:
                kept.append(item)
        return replace(self, items=tuple(kept))

    def probes(self, tokenizer=None) -> list[Probe]:
        return self.solver.probes(self.name, self.items, tokenizer)

    def n_probes(self) -> int:
        return len(self.items) * self.solver.n_variants


@dataclass(frozen=True)
class Battery:
    """A versioned set of suites with one digest over all of them."""

    id: str
    version: str
    suites: tuple[Suite, ...]
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

    def limited(self, per_category: int | None) -> Battery:
        """The first ``per_category`` items of each category in every suite (a recorded, reduced battery)."""
        if per_category is None:
            return self
        return replace(self, suites=tuple(s.limited(per_category) for s in self.suites))

    def select(self, names: list[str] | None = None, limits: dict[str, int] | None = None) -> Battery:
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
