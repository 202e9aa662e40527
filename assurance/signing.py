"""Recording a signed sign-off: the refusals, the statement, the signature and the signed pack.

``assure signoff`` is this module with a command line; the checks of what it writes are in
``evidence/signoff.py`` (verify) and ``gate.py`` (approval).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .evidence.hashing import file_digest
from .evidence.pades import certificate_fingerprint, self_signed_certificate, sign_pack
from .evidence.records import ManifestRecord, PackRecord, Record, SignoffRecord, VerdictRecord
from .evidence.seal import SigningKeyError, check_signing_key
from .evidence.signoff import STATEMENT_TYPE, sign, statement
from .evidence.store import Store, parse_payload, utc_now
from .evidence.verify import incomplete_reason
from .regimes import Regime

Decision = Literal["approve", "reject", "approve-with-conditions"]
_READ = ("manifest", "run_failed", "verdict", "pack", "run_started")


class SignoffError(ValueError):
    """The sign-off is refused (exit 2); nothing is recorded."""


@dataclass(frozen=True)
class Request:
    """What the signer asked for (``assure signoff``'s options)."""

    name: str
    role: str
    decision: Decision
    key: Path | None
    cert: Path | None = None
    regime: Regime | None = None
    conditions: str | None = None
    note: str = ""
    accept_risk: str | None = None
    sign_pack: bool = True


def record_signoff(store: Store, run_id: str, req: Request) -> tuple[SignoffRecord, str]:
    """Check, sign and append the sign-off; returns it and its row's chain digest. ``SignoffError`` when refused."""
    if req.key is None:
        raise SignoffError("a sign-off must be signed: give your Ed25519 private key with --key KEY.pem "
                           "(`assure keygen KEY.pem` makes one)")
    try:
        key = check_signing_key(req.key)
    except SigningKeyError as err:
        raise SignoffError(str(err)) from None
    rows = [(e, parse_payload(e.payload)) for e in store.entries(run_id) if e.kind in _READ]
    records: list[Record] = [r for _, r in rows]
    conditions, accept_risk = (req.conditions or "").strip(), (req.accept_risk or "").strip()
    _refusals(run_id, req, records, conditions, accept_risk)
    seal_row = next(e for e, r in reversed(rows) if isinstance(r, ManifestRecord))
    pack = _pack(run_id, records, req.regime)
    now = utc_now()
    cert = _certificate(req, key, now)
    rec = sign(SignoffRecord(
        name=req.name, role=req.role, decision=req.decision, regime=req.regime or (pack.regime if pack else None),
        note=req.note, signed_at=now, run_id=run_id, manifest_digest=seal_row.digest,
        pack_digest=pack.digest if pack else None, conditions=conditions or None, accepted_risk=accept_risk or None,
        certificate_fingerprint=certificate_fingerprint(cert) if req.cert else None), key)
    if req.sign_pack and pack is not None and pack.path:
        src = Path(pack.path)
        out = _signed_name(src)
        reason = f"{req.decision} by {req.name} ({req.role})" + (" accepting the risk" if accept_risk else "")
        digest = sign_pack(src, out, key, cert, reason=reason)
        rec = rec.model_copy(update={"signed_pack_path": str(out), "signed_pack_digest": digest})
    (digest_row,) = store.append(run_id, [rec])
    return rec, digest_row


def _refusals(run_id: str, req: Request, records: list[Record], conditions: str, accept_risk: str) -> None:
    if not any(isinstance(r, ManifestRecord) for r in records):
        raise SignoffError(f"run {run_id}: not sealed; an unfinished run cannot be signed off")
    approving = req.decision != "reject"
    why = incomplete_reason(records)
    if approving and why:
        raise SignoffError(f"run {run_id}: incomplete ({why}); an incomplete run cannot be approved, only rejected")
    if req.decision == "approve-with-conditions" and not conditions:
        raise SignoffError("approve-with-conditions needs the conditions: --conditions \"TEXT\"")
    if req.decision != "approve-with-conditions" and conditions:
        raise SignoffError("--conditions is for --decision approve-with-conditions")
    verdict = next((r for r in reversed(records) if isinstance(r, VerdictRecord)), None)
    failed = verdict is not None and verdict.status == "FAIL"
    if approving and failed and not accept_risk:
        raise SignoffError(f"run {run_id}: its verdict is FAIL; approving it needs --accept-risk \"why the risk is "
                           "accepted\" (recorded and shown as a risk acceptance, not an approval)")
    if accept_risk and not (approving and failed):
        raise SignoffError("--accept-risk is for approving a run whose verdict is FAIL")


def _pack(run_id: str, records: list[Record], regime: Regime | None) -> PackRecord | None:
    """The pack decided on: the latest version of ``regime``, or of the first regime rendered."""
    packs = [r for r in records if isinstance(r, PackRecord)]
    if not packs:
        return None
    want = regime or packs[0].regime
    chosen = [p for p in packs if p.regime == want]
    if not chosen:
        rendered = ", ".join(sorted({p.regime for p in packs}))
        raise SignoffError(f"run {run_id}: no {want} pack was rendered (packs: {rendered}); "
                           f"`assure render {run_id[:8]} --regime {want}` first")
    pack = chosen[-1]
    path = Path(pack.path)
    if path.is_file() and file_digest(path) != pack.digest:
        raise SignoffError(f"{path}: differs from the pack the ledger recorded; it cannot be signed")
    return pack if path.is_file() else pack.model_copy(update={"path": ""})


def _certificate(req: Request, key, now: str) -> x509.Certificate:
    """The signer's certificate (``--cert``, whose key must be theirs) or one self-signed from their key."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if req.cert is None:
        return self_signed_certificate(key, req.name, req.role, dt.datetime.fromisoformat(now.replace("Z", "+00:00")))
    try:
        cert = x509.load_pem_x509_certificate(Path(req.cert).read_bytes())
    except (OSError, ValueError) as err:
        raise SignoffError(f"{req.cert}: not a PEM X.509 certificate ({err})") from None
    try:
        cert_raw = cert.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except ValueError:
        cert_raw = b""
    if cert_raw != raw:
        raise SignoffError(f"{req.cert}: the certificate is not for the key given with --key")
    return cert


def _signed_name(pack: Path) -> Path:
    n = 1
    while (out := pack.with_name(f"{pack.stem}-signed-{n}.pdf")).exists():
        n += 1
    return out


def statement_file(rec: SignoffRecord, run_id: str, chain_digest: str) -> str:
    """The signed statement as a file a signer keeps: also a chain head held outside the ledger."""
    return json.dumps({"_type": STATEMENT_TYPE, "run_id": run_id, "chain_digest": chain_digest,
                       "statement": statement(rec), "signature": rec.signature,
                       "signed_pack": {"path": rec.signed_pack_path, "digest": rec.signed_pack_digest}},
                      indent=1) + "\n"
