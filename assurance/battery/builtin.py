"""The built-in suites and batteries, declared once each.

The built-in suites of ``assurance-core`` v2:

* ``refusal``: harmful requests (must be refused) and benign borderline
  prompts (must be answered); scored by the refusal judge.
* ``signposting``: regulated-advice prompts (self-harm, medical, financial);
  the right answer points to UK help; keyword signposting judge.
* ``prefill``: a fixed sample of the harmful requests with k tokens of a
  compliant opener prefilled; attack success = continuation not refused.
* ``jailbreak``: a fixed sample of the harmful requests in each jailbreak
  template; attack success = output not refused.
* ``capability``: short items with exact answers (arithmetic, facts, format
  following) and multiple-choice items scored by log-likelihood.

A suite of an existing kind is its data file plus one entry in
``BUILTIN_SUITES``; the entry names its ``scoring``, which alone decides how
it is scored and reported. Old versions stay in ``data/`` and in
``BUILTIN_BATTERIES`` so old runs can be re-rendered and re-checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Literal

from .items import BatteryError, Item, read_items
from .probes import Jailbreak, Plain, Prefill, sample_per_category
from .suites import Battery, Suite

DATA_DIR = Path(__file__).parent / "data"
CORE_FILE = "assurance-core-v1.jsonl"
SIGNPOSTING_FILE = "assurance-signposting-v1.jsonl"
CAPABILITY_FILE = "assurance-capability-v1.jsonl"
ATTACKS_FILE = "assurance-attacks-v1.json"


@cache
def _items(file: str) -> tuple[Item, ...]:
    return read_items(DATA_DIR / file)


@cache
def _attacks() -> dict:
    path = DATA_DIR / ATTACKS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BatteryError(f"{path.name}: {err}") from None


def _attacked(attack: str) -> tuple[Item, ...]:
    """The battery version's fixed, seeded sample of the harmful core requests for one attack."""
    cfg = _attacks()[attack]
    harmful = [i for i in _items(CORE_FILE) if i.expected == "refuse"]
    return sample_per_category(harmful, cfg["per_category"], cfg["sample_seed"])


BUILTIN_SUITES: dict[str, Callable[[], Suite]] = {
    "refusal": lambda: Suite("refusal", "1", _items(CORE_FILE), Plain(), "refusal"),
    "signposting": lambda: Suite("signposting", "1", _items(SIGNPOSTING_FILE), Plain(), "signposting"),
    "prefill": lambda: Suite("prefill", "1", _attacked("prefill"), Prefill(
        tuple(_attacks()["prefill"]["openers"]), tuple(_attacks()["prefill"]["k_values"])), "attack"),
    "jailbreak": lambda: Suite("jailbreak", "1", _attacked("jailbreak"), Jailbreak(
        tuple(_attacks()["jailbreak"]["templates"].items())), "attack"),
    "capability": lambda: Suite("capability", "1", _items(CAPABILITY_FILE), Plain(), "capability"),
}
"""Every built-in suite, in battery order: name -> its declaration (built on use: files are read lazily)."""
SUITE_NAMES = tuple(BUILTIN_SUITES)

BUILTIN_BATTERIES = {
    ("assurance-core", "1"): ("refusal",),
    ("assurance-core", "2"): ("refusal", "signposting", "prefill", "jailbreak", "capability"),
}
"""(battery id, version) -> the suites it holds, in order."""
LATEST_VERSION = "2"


def builtin_suite(name: str) -> Suite:
    """A built-in suite by name, at full size."""
    if name not in BUILTIN_SUITES:
        raise BatteryError(f"unknown suite {name!r}")
    return BUILTIN_SUITES[name]()


def load_battery(battery_id: str = "assurance-core", version: str = LATEST_VERSION) -> Battery:
    """A built-in battery by id and version (all its suites, full size)."""
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
