"""Human-labelled refusal data: our file format and loaders for public sets.

Our format (documented in ``tests/fixtures/README-refusal-labels.md``) is a
CSV or JSONL file with columns ``prompt``, ``response`` and ``label``, where
``label`` is ``refusal`` (the model did not give the help asked for) or
``compliance``; optional ``style`` and ``split`` columns are kept.

Public human-labelled sets map into it as follows (``format=`` names them;
without it the format is detected from the columns of the first row):

* ``xstest`` — the XSTest completion files (``xstest_v2_completions_*.csv``):
  ``prompt``, ``completion``, ``final_label``. ``1_full_compliance`` ->
  compliance; ``2_full_refusal`` and ``3_partial_refusal`` -> refusal.
  XSTest counts refuse-then-comply answers as partial refusals, so they map
  to refusal here, while refusal judge v2 calls them compliance when the
  requested content follows: expect disagreement on those rows.
* ``harmbench`` — HarmBench's classifier validation set
  (``text_behaviors_val_set.json``: behaviour id -> list of
  ``{test_case, generation, human_0, human_1, human_2, ...}``), or a flat
  CSV/JSONL with ``behavior``/``test_case``, ``generation`` and
  ``human_0..2`` or ``human_label``. The human label answers "is this
  generation an instance of the harmful behaviour?"; majority yes ->
  compliance, majority no -> refusal. "No" includes vague or off-topic
  answers that are not refusals in words, which matches our meaning of
  refusal (the help asked for was not given) but not a phrase-level one.
* ``wildguard`` — WildGuardTest (``prompt``, ``response``,
  ``response_refusal_label`` = ``refusal``/``compliance``). Rows without a
  response or a refusal label (prompt-only rows) are skipped and counted.

Any malformed row stops loading with one :class:`LabelFileError` naming the
file and the row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..evidence.hashing import file_digest

Label = Literal["refusal", "compliance"]
LabelFormat = Literal["ours", "xstest", "harmbench", "wildguard"]
FORMATS: tuple[str, ...] = ("ours", "xstest", "harmbench", "wildguard")
XSTEST_LABELS: dict[str, Label] = {
    "1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": "refusal",
}
_YES = {"1", "yes", "true", "y"}
_NO = {"0", "no", "false", "n"}


class LabelFileError(ValueError):
    """A labels file that cannot be read; the message names the file and row."""


class _RowError(Exception):
    pass


@dataclass(frozen=True)
class LabelRow:
    prompt: str
    response: str
    label: Label
    style: str | None = None
    split: str | None = None
    source: str = ""
    """Where the row came from (``file:row N``), for listing disagreements."""


@dataclass(frozen=True)
class LabelSet:
    rows: tuple[LabelRow, ...]
    path: str
    digest: str
    """``sha256:<hex>`` of the labels file's bytes."""
    format: LabelFormat
    skipped: int = 0
    """Rows the format defines as unlabelled (WildGuardTest prompt-only rows)."""
    splits: tuple[str, ...] = field(default=())

    def only(self, split: str) -> LabelSet:
        """The rows of one split (``dev``, ``heldout``...)."""
        rows = tuple(r for r in self.rows if r.split == split)
        return LabelSet(rows, self.path, self.digest, self.format, self.skipped, (split,))


# -- reading records ---------------------------------------------------------------------------

def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(row reference, record) pairs from a CSV, TSV, JSONL or JSON file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for i, rec in enumerate(reader, start=1):
                if None in rec or any(v is None for v in rec.values()):
                    raise LabelFileError(f"{path}: row {i} (line {reader.line_num}): wrong number of columns")
                yield f"row {i}", rec
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LabelFileError(f"{path}: line {i}: not JSON ({e.msg})") from None
                if not isinstance(rec, dict):
                    raise LabelFileError(f"{path}: line {i}: expected a JSON object")
                yield f"line {i}", rec
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LabelFileError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(data, dict):  # HarmBench: behaviour id -> list of labelled generations
            for key, items in data.items():
                if not isinstance(items, list):
                    raise LabelFileError(f"{path}: entry {key!r}: expected a list of records")
                for j, rec in enumerate(items):
                    if not isinstance(rec, dict):
                        raise LabelFileError(f"{path}: entry {key!r} item {j}: expected a JSON object")
                    yield f"entry {key!r} item {j}", {"behavior_id": key, **rec}
        elif isinstance(data, list):
            for i, rec in enumerate(data, start=1):
                if not isinstance(rec, dict):
                    raise LabelFileError(f"{path}: item {i}: expected a JSON object")
                yield f"item {i}", rec
        else:
            raise LabelFileError(f"{path}: expected a JSON list or object")
    else:
        raise LabelFileError(f"{path}: unknown file type {suffix!r} (use .csv, .tsv, .jsonl or .json)")


def detect_format(columns: set[str]) -> LabelFormat | None:
    """The format whose columns the first record has, or None."""
    if {"completion", "final_label"} <= columns:
        return "xstest"
    if "response_refusal_label" in columns:
        return "wildguard"
    if "generation" in columns and ({"human_0", "human_label"} & columns):
        return "harmbench"
    if {"prompt", "response", "label"} <= columns:
        return "ours"
    return None


# -- per-format mapping ------------------------------------------------------------------------

def _text(rec: dict[str, Any], *names: str) -> str:
    for name in names:
        value = rec.get(name)
        if isinstance(value, str):
            return value
    raise _RowError(f"missing text column {' or '.join(repr(n) for n in names)}")


def _ours(rec: dict[str, Any]) -> tuple[str, str, Label] | None:
    label = str(rec.get("label", "")).strip().lower()
    if label not in ("refusal", "compliance"):
        raise _RowError(f"label must be 'refusal' or 'compliance', got {rec.get('label')!r}")
    return _text(rec, "prompt"), _text(rec, "response"), label  # type: ignore[return-value]


def _xstest(rec: dict[str, Any]) -> tuple[str, str, Label] | None:
    final = str(rec.get("final_label", "")).strip()
    if final not in XSTEST_LABELS:
        raise _RowError(f"final_label must be one of {sorted(XSTEST_LABELS)}, got {rec.get('final_label')!r}")
    return _text(rec, "prompt"), _text(rec, "completion"), XSTEST_LABELS[final]


def _vote(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _RowError(f"human label must be yes/no or 1/0, got {value!r}")


def _harmbench(rec: dict[str, Any]) -> tuple[str, str, Label] | None:
    votes = [_vote(rec[k]) for k in ("human_0", "human_1", "human_2") if k in rec]
    if not votes and "human_label" in rec:
        votes = [_vote(rec["human_label"])]
    if not votes:
        raise _RowError("missing human_0..human_2 or human_label")
    harmful = sum(votes) * 2 > len(votes)
    return _text(rec, "test_case", "behavior", "prompt"), _text(rec, "generation"), \
        "compliance" if harmful else "refusal"


def _wildguard(rec: dict[str, Any]) -> tuple[str, str, Label] | None:
    label, response = rec.get("response_refusal_label"), rec.get("response")
    if label in (None, "") or response in (None, ""):
        return None
    label = str(label).strip().lower()
    if label not in ("refusal", "compliance"):
        raise _RowError(f"response_refusal_label must be 'refusal' or 'compliance', got {label!r}")
    return _text(rec, "prompt"), _text(rec, "response"), label  # type: ignore[return-value]


_MAPPERS: dict[str, Callable[[dict[str, Any]], tuple[str, str, Label] | None]] = {
    "ours": _ours, "xstest": _xstest, "harmbench": _harmbench, "wildguard": _wildguard,
}


def load_labels(path: str | Path, format: LabelFormat | None = None) -> LabelSet:
    """Rows of a labels file in our format or a public one (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise LabelFileError(f"{p}: no such file")
    if format is not None and format not in FORMATS:
        raise LabelFileError(f"{p}: unknown format {format!r} (one of {', '.join(FORMATS)})")
    rows: list[LabelRow] = []
    skipped, fmt = 0, format
    for ref, rec in _records(p):
        if fmt is None:
            fmt = detect_format(set(rec))
            if fmt is None:
                raise LabelFileError(f"{p}: {ref}: columns {sorted(rec)} match no known format "
                                     f"(ours needs prompt, response, label)")
        try:
            mapped = _MAPPERS[fmt](rec)
        except _RowError as e:
            raise LabelFileError(f"{p}: {ref}: {e}") from None
        if mapped is None:
            skipped += 1
            continue
        prompt, response, label = mapped
        style, split = rec.get("style"), rec.get("split")
        rows.append(LabelRow(prompt, response, label, str(style) if style else None, str(split) if split else None,
                             f"{p.name}:{ref}"))
    if not rows:
        raise LabelFileError(f"{p}: no labelled rows")
    splits = tuple(sorted({r.split for r in rows if r.split}))
    return LabelSet(tuple(rows), str(p), file_digest(p), fmt, skipped, splits)  # type: ignore[arg-type]
