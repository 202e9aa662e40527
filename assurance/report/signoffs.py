"""The pack's sign-off block: each recorded decision with the state of its signature.

The pack is rendered from records alone, so "valid" here means what the records can show: the
statement's signature verifies against its key, it is for this run, and the pack it names is one of
this run's packs. Whether the statement names the right seal needs the chain itself (``assure verify``),
and whether the key is that person's needs the roster (``assure verify --signers``).
"""

from __future__ import annotations

from dataclasses import dataclass

from assurance.evidence.records import PackRecord, SignoffRecord
from assurance.evidence.signoff import (
    RISK_ACCEPTED,
    SignatureStatus,
    is_risk_acceptance,
    key_fingerprint,
    signature_status,
)


@dataclass(frozen=True)
class SignoffRow:
    """One line of the sign-off block."""

    record: SignoffRecord
    status: SignatureStatus
    """``valid``, ``invalid`` (altered, or not for this run or its packs) or ``unsigned`` (a typed name)."""
    fingerprint: str
    """First 16 hex digits of SHA-256 over the signer's raw public key; empty when unsigned."""
    decision: str
    """The decision as printed: a risk acceptance is never printed as an approval."""
    detail: str
    """Conditions, the accepted risk's reason, and comments."""


def signoff_rows(signoffs: list[SignoffRecord], packs: list[PackRecord], run_id: str) -> list[SignoffRow]:
    """The rows for ``signoffs`` (in ledger order) of the run ``run_id`` with its ``packs``."""
    digests = {p.digest for p in packs}
    rows = []
    for s in signoffs:
        status = signature_status(s)
        if status == "valid" and (s.run_id != run_id or (s.pack_digest is not None and s.pack_digest not in digests)):
            status = "invalid"
        if is_risk_acceptance(s):
            decision, detail = RISK_ACCEPTED, f"Reason: {s.accepted_risk}"
        else:
            decision, detail = s.decision.replace("-", " "), f"Conditions: {s.conditions}" if s.conditions else ""
        detail = "\n".join(x for x in (detail, s.note) if x)
        rows.append(SignoffRow(s, status, key_fingerprint(s.public_key), decision, detail))
    return rows
