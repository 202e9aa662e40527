"""The evidence a pack carries inside itself (PDF/A-3 embedded files), so a pack checks out offline.

A pack is rendered from the ledger rows its run holds at that moment; it embeds exactly those rows, so
``assure verify PACK.pdf`` (``pack_verify.py``) can recompute their hash chain, check the seal's
signature and re-render the pack from them to compare every page, with no database:

* ``records.jsonl``: every row the pack was rendered from, seq 0 onwards, one RFC 8785 JSON object a
  line with all the chain columns (the payload as the exact canonical text its ``record_digest``
  covers). On a run's first render it ends on the evidence seal; a pack rendered later also holds the
  packs, seals and sign-offs recorded before it, because it prints them.
* ``manifest.json``: the payload of the latest seal among those rows (its bytes hash to its row's
  ``record_digest``).
* ``verdict.json``: the payload of the latest verdict row.
* ``attestation.dsse.json``: the run's in-toto statement (``attest.py``) in a DSSE envelope, signed with
  the run's key when the caller has it, else with no signatures (its description says so).
* ``render.json``: what the pack was rendered with beyond the rows (regime, redaction, report settings,
  the comparison run's head), and ``comparison.jsonl`` (the comparison run's records, without samples,
  which the comparison never reads) when the pack compares with another run.

Everything here comes from the ledger, dates included, so the same ledger state gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from .attest import AttestError, envelope, load_key, statement_of
from .hashing import canonical_json
from .records import Record
from .store import LedgerEntry, Store

RECORDS = "records.jsonl"
MANIFEST = "manifest.json"
VERDICT = "verdict.json"
ATTESTATION = "attestation.dsse.json"
RENDER = "render.json"
COMPARISON = "comparison.jsonl"

CHAIN_COLUMNS = ("run_id", "seq", "kind", "payload", "record_digest", "prev_digest", "digest", "created_at")
"""The ledger columns a ``records.jsonl`` line holds: all that the chain digest and the record digest cover."""

Relationship = Literal["Source", "Data", "Supplement"]


@dataclass(frozen=True)
class PackAttachment:
    """One embedded file of a pack."""

    name: str
    """File name inside the PDF (``records.jsonl``...)."""
    data: bytes
    """The file's bytes."""
    description: str
    """What the file is, as a PDF reader's attachment panel shows it."""
    relationship: Relationship
    """PDF/A-3 ``AFRelationship``: ``Source`` for the rows the pack was rendered from, ``Data`` for the
    figures it prints, ``Supplement`` for the rest."""
    when: datetime | None
    """The attachment's creation and modification date: the last attached row's time, never the clock."""


@dataclass(frozen=True)
class SealRow:
    """The latest seal among a pack's attached rows, as the pack prints it."""

    seq: int
    """Its ledger row."""
    digest: str
    """The row's chain digest: the "manifest digest" that sign-off statements name."""


def seal_row(attachments: Sequence[PackAttachment]) -> SealRow | None:
    """The latest manifest row in the attached ``records.jsonl``, or None when none is attached."""
    data = next((a.data for a in attachments if a.name == RECORDS), b"")
    for line in reversed(data.splitlines()):
        row = json.loads(line)
        if row.get("kind") == "manifest":
            return SealRow(row["seq"], row["digest"])
    return None


def row_line(entry: LedgerEntry) -> bytes:
    """One ``records.jsonl`` line (without its newline)."""
    return canonical_json({c: getattr(entry, c) for c in CHAIN_COLUMNS})


def pack_attachments(store: Store, run_id: str, regime: str, *, redact_outputs: bool, report: dict[str, Any],
                     comparison: list[Record] | None = None, key_path: str | Path | None = None
                     ) -> list[PackAttachment]:
    """The attachments of the ``regime`` pack about to be rendered from the run's current rows, with the
    settings ``render_pack`` is given; ``key_path`` signs the embedded attestation."""
    entries = store.entries(run_id)
    if not entries:
        return []
    when = _when(entries[-1].created_at)
    out = [PackAttachment(RECORDS, b"".join(row_line(e) + b"\n" for e in entries),
                          f"The {len(entries)} evidence ledger rows of run {run_id} this pack was rendered from, "
                          "with every chain column (JSON Lines)", "Source", when)]
    manifest = next((e for e in reversed(entries) if e.kind == "manifest"), None)
    if manifest is not None:
        out.append(PackAttachment(MANIFEST, manifest.payload.encode("utf-8"),
                                  f"The run's seal: ledger row {manifest.seq}'s manifest record", "Supplement", when))
    verdict = next((e for e in reversed(entries) if e.kind == "verdict"), None)
    if verdict is not None:
        out.append(PackAttachment(VERDICT, verdict.payload.encode("utf-8"),
                                  f"The release-gate verdict: ledger row {verdict.seq}", "Data", when))
    if manifest is not None:
        attestation = _attestation(run_id, entries, key_path, when)
        if attestation is not None:
            out.append(attestation)
    settings = {"regime": regime, "redact_outputs": redact_outputs, "report": report,
                "comparison": _head_of(comparison)}
    out.append(PackAttachment(RENDER, canonical_json(settings),
                              "The settings the pack was rendered with (regime, redaction, report section)",
                              "Supplement", when))
    if comparison:
        lines = [canonical_json(r.model_dump(mode="json")) + b"\n" for r in comparison if r.kind != "sample"]
        out.append(PackAttachment(COMPARISON, b"".join(lines),
                                  "The records of the run this pack compares with (its own ledger vouches for them)",
                                  "Supplement", when))
    return out


def _attestation(run_id: str, entries: list[LedgerEntry], key_path: str | Path | None,
                 when: datetime | None) -> PackAttachment | None:
    try:
        statement = statement_of(run_id, entries, packs=False)
    except AttestError:  # a run that never evaluated anything has nothing to attest; the rows still go in
        return None
    key = load_key(key_path) if key_path is not None else None
    text = json.dumps(envelope(statement, key), indent=2, sort_keys=True) + "\n"
    what = ("signed with the run's key" if key is not None
            else "UNSIGNED: no key was given when the pack was rendered, so it authenticates nothing by itself")
    return PackAttachment(ATTESTATION, text.encode("utf-8"),
                          f"in-toto Statement v1 of the run in a DSSE envelope, {what}", "Supplement", when)


def _head_of(comparison: list[Record] | None) -> dict[str, Any] | None:
    if not comparison:
        return None
    started = comparison[0]
    return {"run_id": getattr(started, "run_id", None), "n_records": len(comparison)}


def _when(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
