"""``assure verify RUN --against FILE``: the ledger held against a head kept outside the database.

A hash chain shows that no row was changed, inserted or dropped in the middle, but whoever holds the
database can delete rows from its end (or rewrite the chain from some row on) and the chain alone still
verifies. Anything that left the database earlier holding a later head catches that:

* a pack PDF: its ``records.jsonl`` (every row it was rendered from; each is compared row by row);
* an attestation envelope (``assure attest``, or the one a pack embeds): the statement's
  ``predicate.safetyEvaluation.ledger.head`` ``{seq, digest}`` and its ``runId``;
* a signed sign-off statement (``assure signoff --out``): its ``run_id`` and ``manifest_digest``, the chain
  digest of the seal it was signed over (its seq is not in the statement; the row is looked up by digest);
* any JSON object with ``run_id`` and ``head: {seq, digest}`` (the minimal shape), at the top level or under
  ``statement``.

A chain digest covers every row before it, so a matching head vouches for the whole prefix.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pack_evidence import RECORDS
from .pack_verify import NotAPack, attached_rows, read_attachments
from .store import LedgerEntry, Store
from .verify import Finding


class NoHead(ValueError):
    """The file holds no run id and ledger head that ``--against`` could use (exit 2)."""


@dataclass(frozen=True)
class HeldHead:
    """A ledger position held outside the database."""

    run_id: str
    digest: str
    """The chain digest held."""
    seq: int | None
    """Its sequence number; None when the file names only the digest (a sign-off's manifest digest)."""
    rows: tuple[LedgerEntry, ...] = ()
    """The rows themselves, when the file carries them (a pack)."""


def held_head(path: Path) -> HeldHead:
    """The head ``path`` holds; NoHead when it holds none."""
    if path.suffix.lower() == ".pdf" or path.read_bytes()[:5] == b"%PDF-":
        try:
            rows = attached_rows(read_attachments(path)[RECORDS])
        except NotAPack as err:
            raise NoHead(str(err)) from None
        return HeldHead(rows[0].run_id, rows[-1].digest, rows[-1].seq, tuple(rows))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise NoHead(f"{path}: neither a pack PDF nor JSON ({err})") from None
    head = _from_envelope(data) or _from_statement(data) or _from_statement(_get(data, "statement"))
    if head is None:
        raise NoHead(f"{path}: holds no run id with a ledger head (an attestation envelope, a signed sign-off "
                     "statement, or {\"run_id\": ..., \"head\": {\"seq\": N, \"digest\": \"sha256:...\"}})")
    return head


def check_against(store: Store, run_id: str, path: Path) -> list[Finding]:
    """Rows the ledger lacks or holds otherwise than ``path`` says; NoHead when ``path`` holds no head."""
    held = held_head(path)
    subject = f"--against {path.name}"
    if held.run_id != run_id:
        return [Finding("error", subject, f"is about run {held.run_id}, not {run_id}")]
    entries = store.entries(run_id)
    if held.rows:
        return _rows_against(entries, held.rows, subject)
    if held.seq is None:
        if any(e.digest == held.digest for e in entries):
            return []
        return [Finding("error", subject, f"holds chain digest {held.digest}, which no row of the ledger has: rows "
                                          "were deleted from its end or the chain was rewritten")]
    return _head_against(entries, held.seq, held.digest, subject)


def _rows_against(entries: list[LedgerEntry], rows: tuple[LedgerEntry, ...], subject: str) -> list[Finding]:
    out = []
    for row in rows:
        if row.seq >= len(entries):
            out.append(Finding("error", subject, f"holds rows {row.seq}..{rows[-1].seq} that the ledger lacks (it "
                                                 f"ends at record {len(entries) - 1}): rows deleted from its end"))
            break
        if entries[row.seq].digest != row.digest:
            out.append(Finding("error", f"record {row.seq} ({entries[row.seq].kind})",
                               f"differs from the row {subject} holds ({row.kind}): the ledger was rewritten"))
            break  # every later row differs too: its chain digest covers this one
    return out


def _head_against(entries: list[LedgerEntry], seq: int, digest: str, subject: str) -> list[Finding]:
    if seq >= len(entries):
        return [Finding("error", subject, f"holds head record {seq}; the ledger ends at record {len(entries) - 1}: "
                                          f"{seq + 1 - len(entries)} or more rows deleted from its end")]
    if entries[seq].digest != digest:
        return [Finding("error", f"record {seq} ({entries[seq].kind})",
                        f"chain digest differs from the head {subject} holds: the ledger was rewritten")]
    return []


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def _from_envelope(data: Any) -> HeldHead | None:
    if not isinstance(_get(data, "payload"), str):
        return None
    try:
        statement = json.loads(base64.b64decode(data["payload"], validate=True))
    except (ValueError, binascii.Error):
        return None
    evaluation = _get(_get(statement, "predicate"), "safetyEvaluation")
    head, run = _get(_get(evaluation, "ledger"), "head"), _get(evaluation, "run")
    if isinstance(_get(run, "runId"), str) and isinstance(_get(head, "seq"), int) and isinstance(
            _get(head, "digest"), str):
        return HeldHead(run["runId"], head["digest"], head["seq"])
    return None


def _from_statement(data: Any) -> HeldHead | None:
    run_id, head = _get(data, "run_id"), _get(data, "head")
    if not isinstance(run_id, str):
        return None
    if isinstance(_get(head, "seq"), int) and isinstance(_get(head, "digest"), str):
        return HeldHead(run_id, head["digest"], head["seq"])
    if isinstance(_get(data, "manifest_digest"), str):
        return HeldHead(run_id, data["manifest_digest"], None)
    return None
