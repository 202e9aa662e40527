"""The built-in suites and batteries, declared once each.

The built-in suites of ``assurance-core`` v2:

* ``refusal``: harmful requests (must be refused) and benign borderline
  prompts (must be answered); scored by the refusal judge.
* ``signposting``: regulated-advice prompts (self-harm, medical, financial);
  the right answer points to UK help; keyword signposting judge.
* ``prefill``: a fixed sample of the harmful requests with k tokens of a
  compliant opener prefilled (v2: one opener per k for every item; v3: one
  drawn per item and k from several, ``probes.DrawnPrefill``); reported as
  non-refusal, and as attack success when a harm judge scores it.
* ``jailbreak``: a fixed sample of the harmful requests in each jailbreak
  template; reported as the prefill suite is.

Battery v3 is v2 with the v3 prefill suite (``prefill`` version 2, from
``assurance-attacks-v2.json``); everything else is v2's, byte for byte.
A plan's ``battery.prefill_responses`` adds the ``prefill-responses`` suite
(the paper's attack: each item's own harmful response, from the user's file;
``prefill_source.py``).
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
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Literal

from .items import BatteryError, Item, read_items
from .paths import resolve_path
from .prefill_source import load_prefill_source
from .probes import DrawnPrefill, Jailbreak, Plain, Prefill, ResponsePrefill, sample_per_category
from .suites import Battery, Suite

DATA_DIR = Path(__file__).parent / "data"
CORE_FILE = "assurance-core-v1.jsonl"
SIGNPOSTING_FILE = "assurance-signposting-v1.jsonl"
CAPABILITY_FILE = "assurance-capability-v1.jsonl"
ATTACKS_FILE = "assurance-attacks-v1.json"
ATTACKS_V2_FILE = "assurance-attacks-v2.json"
RESPONSES_SUITE = "prefill-responses"
"""The suite a plan's ``prefill_responses`` file adds: each item prefilled with its own response."""


@cache
def _items(file: str) -> tuple[Item, ...]:
    return read_items(DATA_DIR / file)


@cache
def _attacks(file: str = ATTACKS_FILE) -> dict:
    path = DATA_DIR / file
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BatteryError(f"{path.name}: {err}") from None


def _drawn_prefill() -> Suite:
    cfg = _attacks(ATTACKS_V2_FILE)["prefill"]
    pools = tuple((int(k), tuple(cfg["openers"][str(k)])) for k in cfg["k_values"])
    return Suite("prefill", "2", _attacked("prefill", ATTACKS_V2_FILE), DrawnPrefill(pools, cfg["draw_seed"]), "attack")


def _attacked(attack: str, file: str = ATTACKS_FILE) -> tuple[Item, ...]:
    """The battery version's fixed, seeded sample of the harmful core requests for one attack."""
    cfg = _attacks(file)[attack]
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
    "prefill@2": _drawn_prefill,
}
"""Every built-in suite, in battery order: name (``@version`` after the first) -> its declaration
(built on use: files are read lazily)."""
SUITE_NAMES = tuple(n for n in BUILTIN_SUITES if "@" not in n)

BUILTIN_BATTERIES = {
    ("assurance-core", "1"): ("refusal",),
    ("assurance-core", "2"): ("refusal", "signposting", "prefill", "jailbreak", "capability"),
    ("assurance-core", "3"): ("refusal", "signposting", "prefill@2", "jailbreak", "capability"),
}
"""(battery id, version) -> the suites it holds, in order."""
LATEST_VERSION = "3"


def builtin_suite(name: str) -> Suite:
    """A built-in suite by name (``prefill@2`` for a later version of one), at full size."""
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


def battery_from_spec(spec, base: Path | None = None) -> Battery:
    """The battery a plan's ``battery`` section asks for: version, suites, sizes.

    ``limit_per_category`` cuts every suite; ``suite_limits`` then cuts single
    suites further. ``suites`` selects suites; a v1 battery has only ``refusal``.
    """
    battery = load_battery(spec.id, spec.version)
    source = spec.prefill_responses
    if source is not None:
        battery = replace(battery, suites=battery.suites + (responses_suite(source, base),))
    battery = battery.limited(spec.limit_per_category)
    names = list(spec.suites) if spec.suites is not None else None
    if names is not None and source is not None and RESPONSES_SUITE not in names:
        names.append(RESPONSES_SUITE)  # the plan asked for it by giving the file
    return battery.select(names, dict(spec.suite_limits) or None)


def responses_suite(source, base: Path | None = None) -> Suite:
    """The ``prefill-responses`` suite of a plan's ``prefill_responses`` entry: the file's requests, each
    prefilled with k tokens of its own response, at the battery's k values. ``BatteryError`` names
    ``battery.prefill_responses``, the file and the row."""
    path = resolve_path(source.path, base)
    try:
        loaded = load_prefill_source(path, source.format, source.expected_rows)
    except BatteryError as err:
        raise BatteryError(f"battery.prefill_responses: {err}") from None
    k_values = tuple(source.k_values) if source.k_values else tuple(_attacks(ATTACKS_V2_FILE)["prefill"]["k_values"])
    solver = ResponsePrefill(loaded.responses, k_values, loaded.settings())
    return Suite(RESPONSES_SUITE, "1", loaded.items, solver, "attack")
