"""``assure verify PACK.pdf``: a pack checked on its own, offline, with no ledger.

The pack's attachments (``pack_evidence.py``) are read back and checked as an auditor would: the rows'
hash chain is recomputed, every seal among them must close the rows before it, the attached manifest
and verdict must be those rows' payloads, the seal's signature must hold (and be by ``--trusted-key``),
the embedded attestation must name the attached head. Then the pack is rendered again from the attached
rows with the recorded settings and every page's text compared with the pack's: the figures a reader
sees are those of the evidence inside the file, or the first differing line is named.

What this cannot show: that the attached rows are all the run's rows, or that whoever rendered the pack
did not rewrite the whole chain before rendering it. A signature by a trusted key, or a later head held
somewhere else (``assure verify RUN --against``, ``against.py``), answers those.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from .attest import pae
from .hashing import PREFIX, canonical_json, sha256_hex
from .pack_evidence import (
    ATTESTATION,
    CHAIN_COLUMNS,
    COMPARISON,
    MANIFEST,
    RECORDS,
    RENDER,
    VERDICT,
    PackAttachment,
)
from .records import ManifestRecord, Record
from .seal import check_signature
from .store import GENESIS, LedgerEntry, chain_digest, parse_payload
from .verify import Finding


class NotAPack(ValueError):
    """The file is not a PDF, or a PDF without the evidence a pack embeds (exit 2)."""


@dataclass
class PackReport:
    """What ``verify_pack`` found."""

    path: Path
    run_id: str
    """The run the attached rows belong to."""
    n_records: int
    """Rows attached."""
    head: str
    """Chain digest of the last attached row (the head this pack holds)."""
    signed: bool
    """True when the latest attached seal carries a signature."""
    public_key: str | None
    """Who signed it (base64 Ed25519), when signed."""
    pages_compared: int = 0
    """Pages of the pack whose text was compared with a rendering from the attached rows."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def read_attachments(path: Path) -> dict[str, bytes]:
    """The pack's embedded files by name; NotAPack when it is no PDF or holds no ``records.jsonl``."""
    try:
        found = PdfReader(str(path)).attachments
        files = {name: data[-1] for name, data in found.items() if data}
    except (PdfReadError, OSError, ValueError, KeyError) as err:
        raise NotAPack(f"{path}: not a readable PDF ({err})") from None
    if RECORDS not in files:
        raise NotAPack(f"{path}: no {RECORDS} attached; not an assurance pack with its evidence "
                       "(packs rendered before PDF/A-3b carry none: verify their run with `assure verify RUN`)")
    return files


def attached_rows(data: bytes) -> list[LedgerEntry]:
    """The rows of a ``records.jsonl``; NotAPack when a line is not a ledger row."""
    rows = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            obj = json.loads(line)
            rows.append(LedgerEntry(**{c: obj[c] for c in CHAIN_COLUMNS}))
        except (ValueError, KeyError, TypeError) as err:
            raise NotAPack(f"{RECORDS} line {n} is not a ledger row ({err})") from None
    if not rows:
        raise NotAPack(f"{RECORDS} is empty")
    return rows


def chain_findings(rows: list[LedgerEntry]) -> tuple[list[Finding], list[tuple[LedgerEntry, Record]]]:
    """Every break in the rows' hash chain, and the rows whose payload parses, with their records."""
    findings: list[Finding] = []
    parsed = []
    prev, run_id = GENESIS, rows[0].run_id
    for i, e in enumerate(rows):
        subject = f"attached record {e.seq} ({e.kind})"
        if e.seq != i or e.run_id != run_id:
            findings.append(Finding("error", subject, f"expected record {i} of run {run_id}"))
        body = e.payload.encode("utf-8")
        if PREFIX + sha256_hex(body) != e.record_digest:
            findings.append(Finding("error", subject, "payload does not match its digest (record altered)"))
        try:
            if canonical_json(json.loads(body)) != body:
                findings.append(Finding("error", subject, "payload is not in canonical form"))
            rec = parse_payload(e.payload)
            if rec.kind != e.kind:
                findings.append(Finding("error", subject, f"row kind {e.kind!r} differs from record kind"))
            parsed.append((e, rec))
        except (ValueError, ValidationError) as err:
            findings.append(Finding("error", subject, f"payload is not an evidence record: {str(err)[:160]}"))
        if e.prev_digest != prev:
            findings.append(Finding("error", subject, "chain broken: previous digest does not match"))
        if chain_digest(e.run_id, e.seq, e.kind, e.record_digest, e.prev_digest, e.created_at) != e.digest:
            findings.append(Finding("error", subject, "chain digest does not match the row"))
        prev = e.digest
    return findings, parsed


def verify_pack(path: Path, *, trusted_key: str | None = None, rerender: bool = True) -> PackReport:
    """Check a pack on its own (see the module docstring); NotAPack when it carries no evidence."""
    path = Path(path)
    files = read_attachments(path)
    rows = attached_rows(files[RECORDS])
    findings, parsed = chain_findings(rows)
    seals = [(e, r) for e, r in parsed if isinstance(r, ManifestRecord)]
    report = PackReport(path, rows[0].run_id, len(rows), rows[-1].digest,
                        bool(seals and seals[-1][1].signature), seals[-1][1].public_key if seals else None,
                        findings=findings)
    if not seals:
        findings.append(Finding("error", str(path), "no seal among the attached records: nothing vouches for them"))
    for e, m in seals:
        subject = f"attached record {e.seq} (manifest)"
        before = rows[e.seq - 1] if 0 < e.seq <= len(rows) else None
        if before is None or m.chain_head != before.digest or m.n_records != e.seq:
            findings.append(Finding("error", subject, "chain head in the manifest does not match the attached rows"))
        if problem := check_signature(m, trusted_key):
            findings.append(Finding("error", subject, problem))
        elif trusted_key and m.signature is None:
            findings.append(Finding("error", subject, "manifest is unsigned but a trusted key was given"))
    _same_payload(files, MANIFEST, seals[-1][0] if seals else None, findings)
    verdicts = [e for e, r in parsed if r.kind == "verdict"]
    _same_payload(files, VERDICT, verdicts[-1] if verdicts else None, findings)
    if ATTESTATION in files:
        findings += _attestation_findings(files[ATTESTATION], rows, report.public_key, trusted_key)
    if rerender and findings:
        # A re-rendering from records that are themselves in question would show nothing more.
        findings.append(Finding("warning", str(path), "pages not compared: the attached evidence does not verify"))
    elif rerender:
        report.pages_compared = _compare_pages(path, [r for _, r in parsed], files, findings)
    return report


def _same_payload(files: dict[str, bytes], name: str, row: LedgerEntry | None, findings: list[Finding]) -> None:
    if row is None:
        if name in files:
            findings.append(Finding("error", name, "attached, but no such record is among the attached rows"))
        return
    if files.get(name) != row.payload.encode("utf-8"):
        what = "missing" if name not in files else f"differs from attached record {row.seq} ({row.kind})"
        findings.append(Finding("error", name, what))


def _attestation_findings(data: bytes, rows: list[LedgerEntry], sealed_by: str | None,
                          trusted_key: str | None) -> list[Finding]:
    try:
        env = json.loads(data)
        body = base64.b64decode(env["payload"], validate=True)
        ledger = json.loads(body)["predicate"]["safetyEvaluation"]["ledger"]
        head = ledger["head"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return [Finding("error", ATTESTATION, "not an in-toto statement in a DSSE envelope")]
    out = []
    if (head.get("seq"), head.get("digest"), head.get("nRecords")) != (rows[-1].seq, rows[-1].digest, len(rows)):
        out.append(Finding("error", ATTESTATION, "names another ledger head than the attached records"))
    for sig in env.get("signatures") or []:
        keyid = sig.get("keyid")
        if keyid not in {k for k in (trusted_key, sealed_by) if k}:
            out.append(Finding("error", ATTESTATION, f"signed by key {keyid}, neither the seal's nor the trusted key"))
            continue
        try:
            pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(keyid))
            pub.verify(base64.b64decode(sig.get("sig", "")), pae(env.get("payloadType", ""), body))
        except (InvalidSignature, ValueError, TypeError, binascii.Error):
            out.append(Finding("error", ATTESTATION, "signature does not verify"))
    return out


def _compare_pages(path: Path, records: list[Record], files: dict[str, bytes], findings: list[Finding]) -> int:
    """Render the pack again from the attached records and compare each page's text; returns pages compared."""
    from assurance.report.render import render_pack  # WeasyPrint: imported only when a pack is re-rendered

    try:
        settings = json.loads(files[RENDER])
        regime = settings["regime"]
    except (KeyError, ValueError, TypeError):
        findings.append(Finding("error", RENDER, "missing or unreadable: the pack cannot be re-rendered"))
        return 0
    comparison = None
    if COMPARISON in files:
        comparison = [parse_payload(line) for line in files[COMPARISON].decode("utf-8").splitlines()]
    with tempfile.TemporaryDirectory(prefix="assure-pack-") as tmp:
        again = Path(tmp) / path.name
        # The attachments go back in too: the evidence register prints their names and the seal's digest.
        attached = [PackAttachment(name, data, "", "Supplement", None) for name, data in files.items()]
        render_pack(records, regime, again, redact_outputs=bool(settings.get("redact_outputs", True)),
                    report=settings.get("report") or {}, comparison=comparison, attachments=attached)
        theirs, ours = page_texts(path), page_texts(again)
    if len(theirs) != len(ours):
        findings.append(Finding("error", str(path), f"the pack has {len(theirs)} pages; rendered from its attached "
                                                    f"records it has {len(ours)}"))
    for number, (printed, expected) in enumerate(zip(theirs, ours, strict=False), start=1):
        if printed != expected:
            findings.append(Finding("error", f"{path} page {number}", _first_difference(printed, expected)))
            break
    return min(len(theirs), len(ours))


def page_texts(path: Path) -> list[str]:
    """Each page's extracted text: poppler's ``pdftotext`` when installed (what a reviewer copies from, and
    four times faster), else pypdf, so the check needs no external tool. Both sides use the same one."""
    if shutil.which("pdftotext"):
        done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True)
        pages = done.stdout.decode("utf-8").split("\f")
        return pages[:-1] if pages and not pages[-1].strip() else pages
    return [page.extract_text() or "" for page in PdfReader(str(path)).pages]


def _first_difference(printed: str, expected: str) -> str:
    a, b = printed.splitlines(), expected.splitlines()
    for n, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return f"line {n} prints {x[:120]!r}; the attached records give {y[:120]!r}"
    n = min(len(a), len(b)) + 1
    return f"line {n}: the pack has {len(a)} lines on this page, the attached records give {len(b)}"
