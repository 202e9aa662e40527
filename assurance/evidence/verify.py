"""The auditor's checks, offline: chain, records, manifest, signature, files.

Every finding names the record (run, sequence number, kind) or the file it is
about, so an auditor can go straight to it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from .canonical_read import CanonicalReader
from .coverage import coverage_problems
from .coverage import signing as seal_signing
from .findings import Finding
from .hashing import PREFIX, sha256_hex, tree_digest
from .records import ArtifactRecord, ManifestRecord, PackRecord, Record, RunFailed, VerdictRecord
from .roster import Roster
from .seal import check_signature
from .signoff import check_signoffs
from .store import GENESIS, RECORD_ADAPTER, LedgerRow, Store, chain_digest


@dataclass
class VerifyReport:
    """What ``verify_run`` found: ``ok`` unless a finding is an error; ``complete`` when the run finished."""

    run_id: str
    n_records: int
    complete: bool
    sealed: bool
    files_checked: int
    findings: list[Finding]
    signed: Literal["signed", "unsigned", "mixed"] = "unsigned"
    """Whether the run's seals carry signatures: all, none, or some."""
    signer_key: str | None = None
    """The public key (base64) that signed the latest signed seal."""
    key_trusted: bool | None = None
    """Every seal signed by the trusted key; None when no trusted key was given."""

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


PACKS_PENDING = "its packs were not rendered and sealed"
"""Why a run killed between its evidence seal and its packs seal is not complete (``assure run --resume``)."""


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
    if manifest.scope == "evidence":
        return PACKS_PENDING
    return None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a ledger is checked: the records are acyclic, and collections
    triggered by their many allocations took a third of the time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _read_chain(entries: Sequence[LedgerRow]) -> tuple[list[Finding], list[tuple[LedgerRow, Record]]]:
    """Check every row on its own and against the one before (sequence, payload digest, canonical form,
    parse, kind, chain link); returns the findings and the rows that parsed, with their records, except
    the samples before the run's first seal: each is checked here like any record, then let go, as no
    later check reads them (seals, coverage, sign-offs, files and completeness read other kinds, and
    every record after a seal). Keeping 100,000 samples alive took a third of the time."""
    findings: list[Finding] = []
    records: list[tuple[LedgerRow, Record]] = []
    sealed = False
    prev = GENESIS
    read = CanonicalReader()
    validate = RECORD_ADAPTER.validator.validate_python  # pydantic-core's own, without the adapter's wrapper
    for i, e in enumerate(entries):
        # Unpacked once: a named field of the row is a Python-level lookup each time.
        _, run_id, seq, kind, payload, record_digest, prev_digest, digest, created_at = e
        # Rows are nearly always sound: name the record only when there is something to say about it.
        problems: list[str] = []
        if seq != i:
            problems.append(f"sequence gap: expected {i}")
        body = payload.encode("utf-8")
        if PREFIX + sha256_hex(body) != record_digest:
            problems.append("payload does not match its digest (record altered)")
        try:
            obj, canonical = read(payload, body)
            if not canonical:
                problems.append("payload is not in canonical form")
            rec = validate(obj)
            if rec.kind != kind:
                problems.append(f"row kind {kind!r} differs from record kind {rec.kind!r}")
            sealed = sealed or rec.kind == "manifest"
            if sealed or rec.kind != "sample":
                records.append((e, rec))
        except (ValueError, ValidationError) as err:
            problems.append(f"payload does not parse as an evidence record: {str(err)[:200]}")
        if prev_digest != prev:
            problems.append("chain broken: previous digest does not match")
        if chain_digest(run_id, seq, kind, record_digest, prev_digest, created_at) != digest:
            problems.append("chain digest does not match the row")
        if problems:
            findings += [Finding("error", f"record {seq} ({kind})", p) for p in problems]
        prev = digest
    return findings, records


def verify_run(store: Store, run_id: str, *, check_files: bool = True, trusted_key: str | None = None,
               require_signed: bool = False, roster: Roster | None = None) -> VerifyReport:
    """Re-check a run offline, as ``assure verify`` does: every record's digest and the hash chain, the seals
    (what each covers, and their signature, which must be by ``trusted_key`` when given, and must exist with
    ``require_signed``), the sign-offs (by the people of ``roster`` in their roles, when given; a roster that
    requires signatures requires them of the seals too) and, with ``check_files``, the digest of every
    artifact still on disk. The report's ``ok`` is False when any finding is an error."""
    require_signed = require_signed or bool(roster is not None and roster.require_signatures)
    # Paused for the whole check, and resumed only once the records are freed (when _verify returns): a
    # collection while 100,000 records are alive walks them all (1.2 s of a 7.7 s profile).
    with _gc_paused():
        return _verify(store, run_id, check_files, trusted_key, require_signed, roster)


def _verify(store: Store, run_id: str, check_files: bool, trusted_key: str | None, require_signed: bool,
            roster: Roster | None) -> VerifyReport:
    entries = store.rows(run_id)
    findings, records = _read_chain(entries)

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
        complete = m.complete
    signing = seal_signing([(e.seq, m) for e, m in manifests], trusted_key, require_signed)
    seal_problems = signing.problems + coverage_problems([(e.seq, r) for e, r in records])
    findings += [Finding("error", subject, message) for subject, message in seal_problems]
    awaiting_packs = bool(manifests) and manifests[-1][1].scope == "evidence"
    if manifests and not complete:
        findings.append(Finding("warning", f"run {run_id}", "sealed as INCOMPLETE: the run failed or was stopped"))
    elif manifests and (why := incomplete_reason(r for _, r in records)) not in (None, PACKS_PENDING):
        findings.append(Finding("warning", f"run {run_id}", f"sealed as complete, but {why}: the run is INCOMPLETE"))
        complete = False
    if awaiting_packs:
        findings.append(Finding("warning", f"run {run_id}",
                                f"packs not rendered and sealed; `assure run --resume {run_id}` finishes it"))
        complete = False

    findings += check_signoffs(records, roster=roster, check_files=check_files)
    files_checked = 0
    if check_files:
        for e, r in records:
            if isinstance(r, ArtifactRecord) and not r.path.startswith("builtin:"):
                files_checked += _check_artifact(r, e.seq, findings)
            elif isinstance(r, PackRecord):
                files_checked += _check_file(Path(r.path), r.digest, f"pack:{r.regime}", e.seq, findings)
    return VerifyReport(run_id, len(entries), complete, bool(manifests), files_checked, findings,
                        signing.signed, signing.signer_key, signing.key_trusted)


def signing_line(report: VerifyReport) -> str:
    """The one line ``assure verify`` prints about signatures: by which key, and whether it is trusted."""
    if report.signed == "unsigned":
        return "UNSIGNED: no seal of this run carries a signature"
    trust = {None: "no trusted key given", True: "trusted", False: "NOT the trusted key"}[report.key_trusted]
    some = "; some seals UNSIGNED" if report.signed == "mixed" else ""
    return f"signed by key {report.signer_key} ({trust}){some}"


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
