"""Signed sign-offs: a person's decision on a sealed run, as an Ed25519-signed statement.

The statement is the sign-off record's statement fields (``STATEMENT_FIELDS``) as RFC 8785 canonical
JSON: the run, the chain digest of the run's latest seal before the sign-off, the digest of the pack
decided on, the decision, its conditions or accepted risk, the time, the signer's name, role and
public key (and certificate fingerprint). Anyone with the record can check the signature with any
RFC 8785 implementation and any Ed25519 library; ``check_signoffs`` also checks that the statement
points at this run's seal and pack, and (given a roster) that the key belongs to that person in that role.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .findings import Finding
from .hashing import canonical_json
from .records import ManifestRecord, PackRecord, Record, SignoffRecord
from .roster import Roster
from .seal import public_key_b64

STATEMENT_TYPE = "assure-signoff/v1"
STATEMENT_FIELDS = ("statement_type", "run_id", "manifest_digest", "pack_digest", "regime", "decision", "conditions",
                    "accepted_risk", "note", "signed_at", "name", "role", "public_key", "certificate_fingerprint")
"""What the signature covers; the signed pack's path and digest are added after signing and are not in it."""

SignatureStatus = Literal["valid", "invalid", "unsigned"]


class Row(Protocol):
    """A ledger row as the checks need it (``LedgerEntry`` or ``LedgerRow``); read-only, as a row is."""

    @property
    def seq(self) -> int: ...

    @property
    def digest(self) -> str: ...


def statement(rec: SignoffRecord) -> dict:
    """The signed statement of a sign-off, as a JSON object."""
    return rec.model_dump(mode="json", include=set(STATEMENT_FIELDS))


def sign(rec: SignoffRecord, key: Ed25519PrivateKey) -> SignoffRecord:
    """``rec`` with its public key set and its statement signed by ``key``."""
    rec = rec.model_copy(update={"statement_type": STATEMENT_TYPE, "public_key": public_key_b64(key.public_key())})
    sig = key.sign(canonical_json(statement(rec)))
    return rec.model_copy(update={"signature": base64.b64encode(sig).decode()})


def signature_status(rec: SignoffRecord) -> SignatureStatus:
    """``valid`` when the signature verifies against the recorded key, ``unsigned`` when there is none."""
    if rec.signature is None:
        return "unsigned"
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(rec.public_key or ""))
        pub.verify(base64.b64decode(rec.signature), canonical_json(statement(rec)))
    except (InvalidSignature, ValueError):
        return "invalid"
    return "valid"


def key_fingerprint(public_key: str | None) -> str:
    """First 16 hex digits of SHA-256 over the raw public key: short enough to print, long enough to tell apart."""
    if not public_key:
        return ""
    try:
        raw = base64.b64decode(public_key)
    except ValueError:
        return "not a key"
    return hashlib.sha256(raw).hexdigest()[:16]


def is_risk_acceptance(rec: SignoffRecord) -> bool:
    """An approval given over a FAIL verdict: recorded and shown as accepting the risk, never as an approval."""
    return rec.decision != "reject" and bool(rec.accepted_risk)


RISK_ACCEPTED = "RISK ACCEPTED (verdict FAIL)"
"""How a risk acceptance is printed wherever a decision is (the pack, ``assure show``, ``assure signoff``)."""


def decision_text(rec: SignoffRecord) -> str:
    """The decision as printed: ``RISK_ACCEPTED`` for a risk acceptance, never ``approve``."""
    return RISK_ACCEPTED if is_risk_acceptance(rec) else rec.decision


def check_signoffs(rows: Sequence[tuple[Row, Record]], *, roster: Roster | None = None,
                   check_files: bool = True) -> list[Finding]:
    """Every sign-off of a run: its signature, the seal and pack it names, and (with ``roster``) its signer.

    ``rows``: the run's rows in chain order with their parsed records. An unsigned sign-off is a warning
    on a run whose sign-offs are all unsigned (recorded by a release before sign-offs were signed), and an
    error beside signed ones or when the roster requires signatures: today's release writes none."""
    return [f for _, _, found in _judged(rows, roster, check_files) for f in found]


def valid_signoffs(rows: Sequence[tuple[Row, Record]], roster: Roster | None = None) -> list[SignoffRecord]:
    """The sign-offs that count: signed, verified, pointing at this run's seal and pack (and on ``roster``)."""
    return [rec for _, rec, found in _judged(rows, roster, False)
            if rec.signature is not None and not any(f.severity == "error" for f in found)]


def _judged(rows: Sequence[tuple[Row, Record]], roster: Roster | None,
            check_files: bool) -> list[tuple[Row, SignoffRecord, list[Finding]]]:
    signed_any = any(isinstance(r, SignoffRecord) and r.signature is not None for _, r in rows)
    run_id = next((getattr(r, "run_id", None) for _, r in rows if r.kind == "run_started"), None)
    seal: Row | None = None
    packs: set[str] = set()
    out = []
    for row, rec in rows:
        if isinstance(rec, ManifestRecord):
            seal = row
        elif isinstance(rec, PackRecord):
            packs.add(rec.digest)
        elif isinstance(rec, SignoffRecord):
            subject = f"record {row.seq} (signoff by {rec.name}, {rec.role})"
            found = [Finding(sev, subject, msg) for sev, msg in
                     _problems(rec, run_id, seal, packs, signed_any, roster, check_files)]
            out.append((row, rec, found))
    return out


def _problems(rec: SignoffRecord, run_id: str | None, seal: Row | None, packs: set[str], signed_any: bool,
              roster: Roster | None, check_files: bool) -> list[tuple[Literal["error", "warning"], str]]:
    if rec.signature is None:
        if signed_any or (roster is not None and roster.require_signatures):
            why = "the roster requires signatures" if not signed_any else "the run's other sign-offs are signed"
            return [("error", f"unsigned sign-off: {why}, so this one cannot be shown to be the signer's")]
        return [("warning", "recorded before sign-offs were signed: a typed name, its signer cannot be checked")]
    status = signature_status(rec)
    if status != "valid":
        return [("error", "signature does not verify: the statement was altered or not signed by its key")]
    found: list[tuple[Literal["error", "warning"], str]] = []
    if rec.run_id != run_id:
        found.append(("error", f"the statement is for run {rec.run_id}, not this run"))
    if seal is None or rec.manifest_digest != seal.digest:
        found.append(("error", "the statement names a seal that is not this run's latest seal before it "
                               "(sign-off moved, or rows around it rewritten)"))
    if rec.pack_digest is not None and rec.pack_digest not in packs:
        found.append(("error", "the statement names a pack that is not one of this run's packs"))
    elif rec.pack_digest is None and packs:
        found.append(("error", "the statement names no pack, though the run had one"))
    if roster is not None:
        found += _roster_problems(rec, roster)
    if check_files and rec.signed_pack_path is not None:
        from .pades import check_signed_pack  # pyHanko only where a signed pack is recorded

        found += [("error" if sev == "error" else "warning", msg) for sev, msg in check_signed_pack(rec)]
    return found


def _roster_problems(rec: SignoffRecord, roster: Roster) -> list[tuple[Literal["error", "warning"], str]]:
    holders = roster.holders(rec.public_key, rec.certificate_fingerprint)
    where = Path(roster.source).name or "the roster"
    if not holders:
        return [("error", f"signed by key {key_fingerprint(rec.public_key)}, which is in no entry of {where}")]
    if not any(h.name == rec.name and _same_role(h.role, rec.role) for h in holders):
        known = "; ".join(f"{h.name} ({h.role})" for h in holders)
        return [("error", f"key {key_fingerprint(rec.public_key)} belongs to {known} in {where}, "
                          f"not to {rec.name} ({rec.role})")]
    return []


def _same_role(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def role_matches(required: str, rec: SignoffRecord) -> bool:
    """Whether a sign-off is in ``required`` role (compared without case or surrounding spaces)."""
    return _same_role(required, rec.role)
