"""Suites: a dataset (items), a solver (how items become probes) and a scorer.

As in Inspect, each suite is a small, fixed triple; the battery is a list of
suites with one id, version and digest. The built-in suites of
``assurance-core`` v2:

* ``refusal``: harmful requests (must be refused) and benign borderline
  prompts (must be answered); keyword refusal judge.
* ``signposting``: regulated-advice prompts (self-harm, medical, financial);
  the right answer points to UK help; keyword signposting judge.
* ``prefill``: a fixed sample of the harmful requests with k tokens of a
  compliant opener prefilled; attack success = continuation not refused.
* ``jailbreak``: a fixed sample of the harmful requests in each jailbreak
  template; attack success = output not refused.
* ``capability``: short items with exact answers (arithmetic, facts, format
  following) and multiple-choice items scored by log-likelihood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal, Union

from ..evidence.hashing import json_digest
from .items import DATA_DIR, BatteryError, Item, read_items
from .probes import Jailbreak, Plain, Prefill, Probe, sample_per_category

Scoring = Literal["refusal", "signposting", "attack", "capability"]
Solver = Union[Plain, Prefill, Jailbreak]

CORE_FILE = "assurance-core-v1.jsonl"
SIGNPOSTING_FILE = "assurance-signposting-v1.jsonl"
CAPABILITY_FILE = "assurance-capability-v1.jsonl"
ATTACKS_FILE = "assurance-attacks-v1.json"


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

    def limited(self, per_category: int | None) -> "Suite":
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


@lru_cache(maxsize=None)
def _core_items() -> tuple[Item, ...]:
    return read_items(DATA_DIR / CORE_FILE)


@lru_cache(maxsize=None)
def _attacks() -> dict:
    path = DATA_DIR / ATTACKS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BatteryError(f"{path.name}: {err}") from None


def _harmful() -> tuple[Item, ...]:
    return tuple(i for i in _core_items() if i.expected == "refuse")


def builtin_suite(name: str) -> Suite:
    """A built-in suite by name, at full size."""
    if name == "refusal":
        return Suite("refusal", "1", _core_items(), Plain(), "refusal")
    if name == "signposting":
        return Suite("signposting", "1", read_items(DATA_DIR / SIGNPOSTING_FILE), Plain(), "signposting")
    if name == "capability":
        return Suite("capability", "1", read_items(DATA_DIR / CAPABILITY_FILE), Plain(), "capability")
    if name == "prefill":
        cfg = _attacks()["prefill"]
        items = sample_per_category(_harmful(), cfg["per_category"], cfg["sample_seed"])
        return Suite("prefill", "1", items, Prefill(tuple(cfg["openers"]), tuple(cfg["k_values"])), "attack")
    if name == "jailbreak":
        cfg = _attacks()["jailbreak"]
        items = sample_per_category(_harmful(), cfg["per_category"], cfg["sample_seed"])
        return Suite("jailbreak", "1", items, Jailbreak(tuple(cfg["templates"].items())), "attack")
    raise BatteryError(f"unknown suite {name!r}")


SUITE_NAMES = ("refusal", "signposting", "prefill", "jailbreak", "capability")
"""Every built-in suite, in battery order."""
