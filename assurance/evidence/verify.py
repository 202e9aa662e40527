"""The auditor's checks, offline: chain, records, manifest, signature, files.

Every finding names the record (run, sequence number, kind) or the file it is
about, so an auditor can go straight to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from .hashing import PREFIX, canonical_json, sha256_hex, tree_digest
from .records import ArtifactRecord, ManifestRecord, PackRecord, Record, RunFailed, VerdictRecord
from .seal import check_signature
from .store import GENESIS, RECORD_ADAPTER, Store, chain_digest


@dataclass
class Finding:
    """One problem (error) or caveat (warning) found while verifying."""

    severity: Literal["error", "warning"]
    subject: str
    """The record (``record 12 (metric)``) or file the finding is about."""
    message: str

    def line(self) -> str:
        return f"{self.severity.upper()}: {self.subject}: {self.message}"


@dataclass
class VerifyReport:
    run_id: str
    n_records: int
    complete: bool
    sealed: bool
    files_checked: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def incomplete_reason(records: Iterable[Record]) -> str | None:
    """Why the run is not complete, or None when it is: sealed complete, no stage failed, verdict not ERROR.

    The seal's ``complete`` flag alone is not enough: a run whose seal failed after a RunFailed
    was appended, then resumed, is sealed ``complete=True`` over an ERROR verdict."""
    records = list(records)
    manifest = next((r for r in reversed(records) if isinstance(r, ManifestRecord)), None)
    failed = next((r for r in records if isinstance(r, RunFailed)), None)
    verdict = next((r for r in reversed(records) if isinstance(r, VerdictRecord)), None)
    if manifest is None:
        return "the run was never sealed"
    if not manifest.complete:
        return "the run was sealed as incomplete"
    if failed is not None:
        return f"its {failed.stage} stage failed"
    if verdict is None or verdict.status == "ERROR":
        return "its verdict is ERROR" if verdict else "it has no verdict"
    return None


_SORTED_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
"""Python's own JSON writer (C speed) set as close to RFC 8785 as it goes; see ``CanonicalReader``."""

_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


class CanonicalReader:
    """Parses payloads and tells whether each is in RFC 8785 canonical form, quickly.

    The canonical encoder is pure Python and was 70% of verifying a ledger, so each payload is first
    re-written by Python's C JSON writer (sorted keys, no spaces, UTF-8 kept). Where that reproduces the
    payload, the two encoders can still differ in only three ways, each checked here: a float whose
    shortest form differs from ECMAScript's (``1e-07``, ``1.0``), an integer beyond 2**53 (which RFC 8785
    refuses), and key order when a string holds a character beyond the Basic Multilingual Plane (RFC 8785
    sorts by UTF-16 units). Anything else, and every payload that does not reproduce, is decided by the
    canonical encoder itself, so the answer is always the canonical encoder's (raising as it raises).
    One reader per verification: its decoder notes the number literals of the payload being read."""

    def __init__(self) -> None:
        self._floats: list[str] = []
        self._long_ints: list[str] = []
        self._decode = json.JSONDecoder(parse_float=self._float, parse_int=self._int).decode

    def _float(self, text: str) -> float:
        self._floats.append(text)
        return float(text)

    def _int(self, text: str) -> int:
        if len(text) > 15:
            self._long_ints.append(text)
        return int(text)

    def __call__(self, payload: str, body: bytes) -> tuple[Any, bool]:
        """The parsed payload (as ``json.loads`` gives it), and whether ``body``, its UTF-8, is canonical."""
        self._floats.clear()
        self._long_ints.clear()
        obj = self._decode(payload)
        try:
            same = _SORTED_JSON(obj) == payload
        except ValueError:  # NaN or Infinity: let the canonical encoder refuse it
            same = False
        if (same and not self._long_ints and (payload.isascii() or not _BEYOND_BMP.search(payload))
                and all(canonical_json(float(f)) == f.encode("ascii") for f in self._floats)):
            return obj, True
        return obj, canonical_json(obj) == body


def verify_run(store: Store, run_id: str, *, check_files: bool = True, trusted_key: str | None = None) -> VerifyReport:
    entries = store.rows(run_id)
    findings: list[Finding] = []
    prev = GENESIS
    records = []
    read = CanonicalReader()
    for i, e in enumerate(entries):
        subject = f"record {e.seq} ({e.kind})"
        if e.seq != i:
            findings.append(Finding("error", subject, f"sequence gap: expected {i}"))
        body = e.payload.encode("utf-8")
        if PREFIX + sha256_hex(body) != e.record_digest:
            findings.append(Finding("error", subject, "payload does not match its digest (record altered)"))
        try:
            obj, canonical = read(e.payload, body)
            if not canonical:
                findings.append(Finding("error", subject, "payload is not in canonical form"))
            rec = RECORD_ADAPTER.validate_python(obj)
            if rec.kind != e.kind:
                findings.append(Finding("error", subject, f"row kind {e.kind!r} differs from record kind {rec.kind!r}"))
            records.append((e, rec))
        except (ValueError, ValidationError) as err:
            findings.append(
                Finding("error", subject, f"payload does not parse as an evidence record: {str(err)[:200]}"))
        if e.prev_digest != prev:
            findings.append(Finding("error", subject, "chain broken: previous digest does not match"))
        expect = chain_digest(e.run_id, e.seq, e.kind, e.record_digest, e.prev_digest, e.created_at)
        if expect != e.digest:
            findings.append(Finding("error", subject, "chain digest does not match the row"))
        prev = e.digest

    manifests = [(e, r) for e, r in records if isinstance(r, ManifestRecord)]
    complete = False
    if not manifests:
        findings.append(Finding("error", f"run {run_id}", "no manifest: the run never finished and was never sealed"))
    for e, m in manifests:
        subject = f"record {e.seq} (manifest)"
        before = entries[e.seq - 1] if e.seq > 0 else None
        if before is None or m.chain_head != before.digest or m.n_records != e.seq:
            findings.append(Finding("error", subject, "chain head in the manifest does not match the ledger"))
        sealed_artifacts = {
            r.role: r.digest for x, r in records if isinstance(r, ArtifactRecord) and x.seq < e.seq
        }
        if sealed_artifacts != m.artifacts:
            findings.append(Finding("error", subject, "artifact digests differ from the artifact records"))
        problem = check_signature(m, trusted_key)
        if problem:
            findings.append(Finding("error", subject, problem))
        elif trusted_key and m.signature is None:
            findings.append(Finding("error", subject, "manifest is unsigned but a trusted key was given"))
        complete = m.complete
    if manifests and not complete:
        findings.append(Finding("warning", f"run {run_id}", "sealed as INCOMPLETE: the run failed or was stopped"))
    elif manifests and (why := incomplete_reason(r for _, r in records)):
        findings.append(Finding("warning", f"run {run_id}", f"sealed as complete, but {why}: the run is INCOMPLETE"))
        complete = False

    files_checked = 0
    if check_files:
        for e, r in records:
            if isinstance(r, ArtifactRecord) and not r.path.startswith("builtin:"):
                files_checked += _check_artifact(r, e.seq, findings)
            elif isinstance(r, PackRecord):
                files_checked += _check_file(Path(r.path), r.digest, f"pack:{r.regime}", e.seq, findings)
    return VerifyReport(run_id, len(entries), complete, bool(manifests), files_checked, findings)


def _check_file(path: Path, digest: str, role: str, seq: int, findings: list[Finding]) -> int:
    if not path.exists():
        findings.append(Finding("warning", str(path), f"{role} (record {seq}) is no longer on disk; not checked"))
        return 0
    if tree_digest(path).digest != digest:
        findings.append(Finding("error", str(path), f"{role} (record {seq}) digest differs from the ledger"))
    return 1


def _check_artifact(r: ArtifactRecord, seq: int, findings: list[Finding]) -> int:
    path = Path(r.path)
    if not path.exists():
        findings.append(Finding("warning", str(path), f"{r.role} (record {seq}) is no longer on disk; not checked"))
        return 0
    now = tree_digest(path)
    if now.digest == r.digest:
        return 1
    if not r.is_dir:
        findings.append(Finding("error", str(path), f"{r.role} (record {seq}) file digest differs from the ledger"))
        return 1
    # Name the exact files that changed, appeared or disappeared.
    for rel in sorted(set(r.files) | set(now.files)):
        old, new = r.files.get(rel), now.files.get(rel)
        if old == new:
            continue
        what = "is missing" if new is None else "was added" if old is None else "digest differs from the ledger"
        findings.append(Finding("error", str(path / rel), f"{r.role} (record {seq}) file {what}"))
    return 1
