"""Public safety benchmarks read from the user's own files.

We ship none of these datasets: a plan points at the user's copy, and each
loader turns it into battery ``Item``s so it can run as an extra suite beside
our battery. Every loader

* reads with the ``csv`` module (HarmBench contexts span several lines),
  UTF-8 with or without a BOM;
* checks the required columns and every row, and names the file and the row
  (1-based data row, plus the line it starts on) of anything malformed;
* can check the file's data-row count (``expected_rows``) against the
  published count, so a truncated or edited copy is caught;
* gives stable ids: the upstream id where the benchmark has a meaningful one
  (HarmBench ``BehaviorID``), otherwise ``<name>-<row:04d>`` by position in
  the file, which does not move when rows are filtered out.

Categories are ``<name>:<upstream category slug>`` so they never collide with
the battery's own categories.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .items import Item


class BenchmarkFormatError(ValueError):
    """A benchmark file that does not have the expected shape; names file and row."""


@dataclass(frozen=True)
class Row:
    number: int
    """1-based data row (the header is row 0)."""
    line: int
    """Line of the file the row starts on (rows can span lines)."""
    values: dict[str, str]

    def where(self, path: Path) -> str:
        return f"{path.name} row {self.number} (line {self.line})"


def slug(text: str) -> str:
    """``Harassment/Discrimination`` -> ``harassment_discrimination``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "uncategorised"


def read_rows(path: str | Path, columns: Sequence[str], *, nonempty: Sequence[str] | None = None,
              expected_rows: int | None = None) -> list[Row]:
    """Rows of a CSV as dicts, checked for the header's columns and each row's shape.

    ``columns`` must all be in the header; ``nonempty`` (default: all of
    ``columns``) must have a value in every row. Blank lines are skipped; a
    row with too many or too few fields is a ``BenchmarkFormatError``.
    """
    required = tuple(columns if nonempty is None else nonempty)
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: no such file")
    rows: list[Row] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise BenchmarkFormatError(f"{path.name}: empty file (no header)") from None
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                raise BenchmarkFormatError(f"{path.name}: missing column(s) {missing}; header is {header}")
            number = 0
            start = reader.line_num + 1
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    raise BenchmarkFormatError(f"{path.name} row {number + 1} (line {start}): {err}") from None
                line, start = start, reader.line_num + 1
                if not fields or all(not f.strip() for f in fields):
                    continue
                number += 1
                row = Row(number, line, {})
                if len(fields) != len(header):
                    raise BenchmarkFormatError(
                        f"{row.where(path)}: {len(fields)} fields, header has {len(header)}")
                values = dict(zip(header, fields, strict=True))
                empty = [c for c in required if not values[c].strip()]
                if empty:
                    raise BenchmarkFormatError(f"{row.where(path)}: empty {', '.join(empty)}")
                rows.append(Row(number, line, values))
    except UnicodeDecodeError as err:
        raise BenchmarkFormatError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if expected_rows is not None and len(rows) != expected_rows:
        raise BenchmarkFormatError(f"{path.name}: {len(rows)} data rows, expected {expected_rows}")
    return rows


def _check_choice(row: Row, path: Path, column: str, allowed: Sequence[str]) -> str:
    value = row.values[column].strip()
    if value not in allowed:
        raise BenchmarkFormatError(f"{row.where(path)}: {column} is {value!r}, expected one of {list(allowed)}")
    return value


def _positional(name: str, row: Row) -> str:
    return f"{name}-{row.number:04d}"


def _check_ids(path: Path, items: list[Item]) -> list[Item]:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise BenchmarkFormatError(f"{path.name}: duplicate item id {item.id!r}")
        seen.add(item.id)
    return items


# -- the loaders -------------------------------------------------------------

def load_advbench(path: str | Path, *, expected_rows: int | None = None) -> list[Item]:
    """AdvBench ``harmful_behaviors.csv`` (``goal``, ``target``): every goal should be refused.

    ``target`` (the "Sure, here is" attack string) is checked for presence but
    not used: we never feed an affirmative answer to the model from here.
    """
    path = Path(path)
    rows = read_rows(path, ("goal", "target"), expected_rows=expected_rows)
    return _check_ids(path, [Item(id=_positional("advbench", r), category="advbench:harmful_behaviors",
                                  expected="refuse", prompt=r.values["goal"].strip()) for r in rows])


HARMBENCH_FUNCTIONAL = ("standard", "contextual", "copyright")


def harmbench_prompt(behavior: str, context: str) -> str:
    """HarmBench's own layout for a contextual behaviour: context, a rule, then the request."""
    return f"{context}\n\n---\n\n{behavior}" if context.strip() else behavior


def load_harmbench(path: str | Path, *, functional_categories: Sequence[str] = HARMBENCH_FUNCTIONAL,
                   expected_rows: int | None = None) -> list[Item]:
    """HarmBench text behaviours (``_all``, ``_test`` or ``_val`` CSV), filtered by functional category.

    Contextual rows must carry a ``ContextString``; it is joined to the
    behaviour as HarmBench does. ``expected_rows`` counts the file's rows
    before filtering. Ids are ``harmbench-<BehaviorID>``, shared by the
    test/val/all files so the same behaviour has one id everywhere.
    """
    path = Path(path)
    unknown = sorted(set(functional_categories) - set(HARMBENCH_FUNCTIONAL))
    if unknown:
        raise BenchmarkFormatError(f"harmbench functional_categories: unknown {unknown} "
                                   f"(known: {list(HARMBENCH_FUNCTIONAL)})")
    columns = ("Behavior", "FunctionalCategory", "SemanticCategory", "Tags", "ContextString", "BehaviorID")
    rows = read_rows(path, columns, nonempty=("Behavior", "FunctionalCategory", "BehaviorID"),
                     expected_rows=expected_rows)
    items = []
    for r in rows:
        functional = _check_choice(r, path, "FunctionalCategory", HARMBENCH_FUNCTIONAL)
        context = r.values["ContextString"]
        if functional == "contextual" and not context.strip():
            raise BenchmarkFormatError(f"{r.where(path)}: contextual behaviour without a ContextString")
        if functional not in functional_categories:
            continue
        semantic = r.values["SemanticCategory"].strip() or functional
        items.append(Item(id=f"harmbench-{r.values['BehaviorID'].strip()}", category=f"harmbench:{slug(semantic)}",
                          expected="refuse", prompt=harmbench_prompt(r.values["Behavior"].strip(), context.strip())))
    return _check_ids(path, items)


XSTEST_LABELS = ("safe", "unsafe")


def load_xstest(path: str | Path, *, labels: Sequence[str] = XSTEST_LABELS,
                expected_rows: int | None = None) -> list[Item]:
    """XSTest prompts: ``safe`` ones should be answered (over-refusal if not), ``unsafe`` ones refused.

    Category is ``xstest:<type>`` (e.g. ``xstest:homonyms``,
    ``xstest:contrast_homonyms``); ids use the file's numeric ``id``.
    """
    path = Path(path)
    unknown = sorted(set(labels) - set(XSTEST_LABELS))
    if unknown:
        raise BenchmarkFormatError(f"xstest labels: unknown {unknown} (known: {list(XSTEST_LABELS)})")
    rows = read_rows(path, ("id", "prompt", "type", "label"), expected_rows=expected_rows)
    items = []
    for r in rows:
        label = _check_choice(r, path, "label", XSTEST_LABELS)
        if label not in labels:
            continue
        raw_id = r.values["id"].strip()
        item_id = f"xstest-{int(raw_id):04d}" if raw_id.isdigit() else f"xstest-{slug(raw_id)}"
        items.append(Item(id=item_id, category=f"xstest:{slug(r.values['type'])}",
                          expected="comply" if label == "safe" else "refuse", prompt=r.values["prompt"].strip()))
    return _check_ids(path, items)


def load_strongreject(path: str | Path, *, expected_rows: int | None = None) -> list[Item]:
    """StrongREJECT ``strongreject_dataset.csv`` (``category``, ``source``, ``forbidden_prompt``)."""
    path = Path(path)
    rows = read_rows(path, ("category", "source", "forbidden_prompt"), nonempty=("category", "forbidden_prompt"),
                     expected_rows=expected_rows)
    return _check_ids(path, [Item(id=_positional("strongreject", r),
                                  category=f"strongreject:{slug(r.values['category'])}", expected="refuse",
                                  prompt=r.values["forbidden_prompt"].strip()) for r in rows])


def load_jailbreakbench(path: str | Path, *, expected_rows: int | None = None) -> list[Item]:
    """JailbreakBench JBB-Behaviors, harmful split (``Goal``, ``Target``, ``Behavior``, ``Category``, ``Source``).

    The unnamed first column (a pandas index) may be present or not. The
    benign split has the same columns but must be answered, so it is not this
    loader's business; load it as its own suite when a loader exists for it.
    """
    path = Path(path)
    rows = read_rows(path, ("Goal", "Target", "Behavior", "Category"), nonempty=("Goal", "Category"),
                     expected_rows=expected_rows)
    return _check_ids(path, [Item(id=_positional("jailbreakbench", r),
                                  category=f"jailbreakbench:{slug(r.values['Category'])}", expected="refuse",
                                  prompt=r.values["Goal"].strip()) for r in rows])


def load_simplesafetytests(path: str | Path, *, expected_rows: int | None = None) -> list[Item]:
    """SimpleSafetyTests (``id``, ``harm_area``, ``counter``, ``category``, ``prompts_final``): all refused."""
    path = Path(path)
    rows = read_rows(path, ("id", "harm_area", "prompts_final"), expected_rows=expected_rows)
    return _check_ids(path, [Item(id=_positional("simplesafetytests", r),
                                  category=f"simplesafetytests:{slug(r.values['harm_area'])}", expected="refuse",
                                  prompt=r.values["prompts_final"].strip()) for r in rows])


@dataclass(frozen=True)
class BenchmarkSpec:
    """A loader and what is known about the official files it reads."""

    load: Callable[..., list[Item]]
    file: str
    """Upstream file name(s) the loader expects."""
    official_rows: dict[str, int]
    """Data-row counts of the published files, by file name (for ``expected_rows``)."""
    citation: str


LOADERS: dict[str, BenchmarkSpec] = {
    "advbench": BenchmarkSpec(load_advbench, "harmful_behaviors.csv", {"harmful_behaviors.csv": 520},
                              "Zou et al. 2023, llm-attacks data/advbench"),
    "harmbench": BenchmarkSpec(
        load_harmbench, "harmbench_behaviors_text_{all,test,val}.csv",
        {"harmbench_behaviors_text_all.csv": 400, "harmbench_behaviors_text_test.csv": 320,
         "harmbench_behaviors_text_val.csv": 80}, "Mazeika et al. 2024, HarmBench data/behavior_datasets"),
    "xstest": BenchmarkSpec(load_xstest, "xstest_prompts.csv", {"xstest_prompts.csv": 450},
                            "Röttger et al. 2024, paul-rottger/exaggerated-safety"),
    "strongreject": BenchmarkSpec(load_strongreject, "strongreject_dataset.csv", {"strongreject_dataset.csv": 313},
                                  "Souly et al. 2024, alexandrasouly/strongreject"),
    "jailbreakbench": BenchmarkSpec(load_jailbreakbench, "behaviors.csv (harmful)", {"behaviors.csv": 100},
                                    "Chao et al. 2024, JailbreakBench JBB-Behaviors"),
    "simplesafetytests": BenchmarkSpec(load_simplesafetytests, "SimpleSafetyTests - test cases.csv",
                                       {"SimpleSafetyTests - test cases.csv": 100},
                                       "Vidgen et al. 2023, bertiev/SimpleSafetyTests"),
}
"""Benchmark name -> loader; the names a plan's ``extra_suites`` may use."""


def load_benchmark(name: str, path: str | Path, **options: Any) -> list[Item]:
    """Items of the named benchmark read from ``path``; ``options`` go to its loader.

    ``expected_rows`` is accepted by every loader; the others are
    loader-specific (``functional_categories`` for HarmBench, ``labels`` for
    XSTest). An unknown name or option is a clear error, not a silent default.
    """
    spec = LOADERS.get(name)
    if spec is None:
        raise BenchmarkFormatError(f"unknown benchmark {name!r} (known: {', '.join(LOADERS)})")
    try:
        return spec.load(path, **options)
    except TypeError as exc:
        raise BenchmarkFormatError(f"benchmark {name}: {exc}") from None
