"""Per-sample results that travel: one row per sample record of a run, as JSON Lines, CSV, Parquet
or Inspect eval logs.

A row names the sample's ledger record (``seq``, ``record_digest``), what was asked (stage, suite, item,
variant, the prompt's SHA-256) and what came back (the output, masked by the packs' redaction rule unless
``unredacted``), with every judge's verdict. The primary judge's verdict is the sample's own
(``refused``, and ``attack_succeeded``, ``harmful``, ``signposted``, ``correct`` where its suite scores
those); a secondary judge's verdicts (``JudgeVerdictsRecord``) cover the greedy plain refusal-suite
samples of a stage and join them by item. Reading the ledger here needs no model and imports neither
torch nor WeasyPrint.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from .evidence.hashing import PREFIX, sha256_hex
from .evidence.records import JudgeVerdictsRecord, SampleRecord
from .evidence.store import Store, parse_payload
from .redaction import redact

ExportFormat = Literal["jsonl", "csv", "parquet", "inspect"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)

COLUMNS = ("run_id", "seq", "record_digest", "stage", "suite", "item_id", "category", "expected", "variant", "k",
           "seed", "prompt_digest", "prompt", "prefill", "output", "output_chars", "redacted", "primary_judge",
           "refused", "attack_succeeded", "harmful", "signposted", "signposts", "correct", "answer")
"""The columns every row has, in order; each judge then adds ``verdict:<judge>`` (and, for a secondary
judge, ``label:<judge>``) in CSV and Parquet, or an entry of ``judges`` in JSON Lines."""

PARQUET_EXTRA = "parquet"
"""The package extra that installs pyarrow."""


class ExportError(ValueError):
    """The export cannot be made as asked (unknown format, missing library, no output path)."""


def sample_rows(store: Store, run_id: str, *, unredacted: bool = False) -> list[dict[str, Any]]:
    """One row per sample record of the run, in ledger order (JSON-ready values, ``judges`` nested)."""
    samples: list[tuple[int, str, SampleRecord]] = []
    secondary: dict[tuple[str, str, str], dict[str, tuple[bool, str]]] = {}
    for row in store.rows(run_id):
        if row.kind == "sample":
            rec = parse_payload(row.payload)
            assert isinstance(rec, SampleRecord), "a sample row holds a sample record"
            samples.append((row.seq, row.record_digest, rec))
        elif row.kind == "judge_verdicts":
            jv = parse_payload(row.payload)
            assert isinstance(jv, JudgeVerdictsRecord), "a judge_verdicts row holds a judge_verdicts record"
            for item, refused, label in zip(jv.item_ids, jv.refused, jv.labels, strict=True):
                secondary.setdefault((jv.stage, jv.suite, item), {})[jv.judge_id] = (refused, label)
    return [_row(run_id, seq, digest, s, secondary, unredacted) for seq, digest, s in samples]


def _row(run_id: str, seq: int, digest: str, s: SampleRecord,
         secondary: dict[tuple[str, str, str], dict[str, tuple[bool, str]]], unredacted: bool) -> dict[str, Any]:
    output = redact(s.output, str(seq), enabled=not unredacted)
    judges: dict[str, dict[str, Any]] = {s.judge_id: {"refused": s.refused, "label": None}}
    # Secondary judges scored the greedy plain pass only: a variant or a sampled pass is not theirs.
    if s.variant is None and s.seed is None:
        for judge, (refused, label) in secondary.get((s.stage, s.suite, s.item_id), {}).items():
            judges[judge] = {"refused": refused, "label": label}
    return {
        "run_id": run_id, "seq": seq, "record_digest": digest, "stage": s.stage, "suite": s.suite,
        "item_id": s.item_id, "category": s.category, "expected": s.expected, "variant": s.variant, "k": s.k,
        "seed": s.seed, "prompt_digest": PREFIX + sha256_hex(s.prompt.encode("utf-8")),
        "prompt": s.prompt if unredacted else None, "prefill": s.prefill if unredacted else None,
        "output": output, "output_chars": len(s.output), "redacted": output != s.output,
        "primary_judge": s.judge_id, "refused": s.refused, "attack_succeeded": s.attack_succeeded,
        "harmful": s.harmful, "signposted": s.signposted, "signposts": list(s.signposts), "correct": s.correct,
        "answer": s.answer, "judges": judges,
    }


def judge_columns(rows: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Every judge that gave a verdict, in the order first met, and whether it ever judged as a secondary
    judge (then it has a label column too)."""
    seen: dict[str, bool] = {}
    for row in rows:
        for judge in row["judges"]:
            seen[judge] = seen.get(judge, False) or judge != row["primary_judge"]
    return list(seen.items())


def flat(row: dict[str, Any], judges: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """A row with one column per judge's verdict (and label), for tables; empty where it did not judge."""
    out = {c: row[c] for c in COLUMNS}
    for judge, labelled in judges:
        got = row["judges"].get(judge)
        out[f"verdict:{judge}"] = None if got is None else got["refused"]
        if labelled:
            out[f"label:{judge}"] = None if got is None else got["label"]
    return out


def to_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """RFC 4180 CSV with a header; booleans ``true``/``false``, lists joined by ``;``, None empty."""
    judges = judge_columns(rows)
    table = [flat(r, judges) for r in rows]
    header = list(table[0]) if table else list(COLUMNS)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: _cell(v) for k, v in r.items()})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(value)
    return "" if value is None else value


_ARROW_TYPES = {"seq": "int64", "k": "int64", "seed": "int64", "output_chars": "int64", "redacted": "bool",
                "refused": "bool", "attack_succeeded": "bool", "harmful": "bool", "signposted": "bool",
                "correct": "bool", "signposts": "list<string>"}


def write_parquet(rows: Sequence[dict[str, Any]], out: Path) -> None:
    """A Parquet file with typed columns (a verdict column is boolean; absent values are null)."""
    try:  # an optional dependency (no type stubs either), so looked up by name
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ExportError(f"Parquet export needs pyarrow: pip install 'assurance[{PARQUET_EXTRA}]' "
                          "(or pip install pyarrow)") from None
    judges = judge_columns(rows)
    table = [flat(r, judges) for r in rows]
    names = list(table[0]) if table else list(COLUMNS)
    kinds = {"int64": pa.int64(), "bool": pa.bool_(), "list<string>": pa.list_(pa.string())}

    def arrow_type(name: str):
        if name.startswith("verdict:"):
            return pa.bool_()
        return kinds.get(_ARROW_TYPES.get(name, ""), pa.string())

    schema = pa.schema([(n, arrow_type(n)) for n in names])
    pq.write_table(pa.Table.from_pylist(table, schema=schema), out)


def export_run(store: Store, run_id: str, fmt: str, out: Path | None, *, unredacted: bool = False) -> list[Path]:
    """Write the run's samples in ``fmt``; returns the files written (none when printed to stdout)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt in ("parquet", "inspect") and out is None:
        what = "a file" if fmt == "parquet" else "a folder (one Inspect log per stage goes in it)"
        raise ExportError(f"--format {fmt} writes binary or several files: give --out with {what}")
    rows = sample_rows(store, run_id, unredacted=unredacted)
    if fmt == "inspect":
        from .export_inspect import write_inspect_logs

        assert out is not None
        return write_inspect_logs(store, run_id, rows, out)
    if fmt == "parquet":
        assert out is not None
        write_parquet(rows, out)
        return [out]
    text = to_jsonl(rows) if fmt == "jsonl" else to_csv(rows)
    if out is None:
        print(text, end="")
        return []
    out.write_text(text, encoding="utf-8", newline="")
    return [out]
