"""The signed pack: a PAdES signature by the signer's key, added to the pack as an incremental update.

pyHanko appends the signature after the pack's last byte, so the pack decided on is an exact prefix of
the signed file (``check_signed_pack`` finds it there and compares its digest with the statement's).
A signer with no certificate gets a self-signed one made from their Ed25519 key: a PDF reader then shows
the pack as signed by that name (and as not trusted until the key is); the roster says whether it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from .hashing import PREFIX, file_digest
from .records import SignoffRecord

Problem = tuple[Literal["error", "warning"], str]
_EOF = re.compile(rb"%%EOF\r?\n?")


def self_signed_certificate(key: Ed25519PrivateKey, name: str, role: str, when: dt.datetime) -> x509.Certificate:
    """A certificate for ``key`` naming the signer, valid for ten years from ``when`` (the sign-off time)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.TITLE, role)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(when - dt.timedelta(days=1)).not_valid_after(when + dt.timedelta(days=3650))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, None))


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER bytes (what a roster's ``certificate_fingerprint`` holds)."""
    return PREFIX + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def sign_pack(pack: Path, out: Path, key: Ed25519PrivateKey, cert: x509.Certificate, *, reason: str) -> str:
    """Write ``out``: ``pack`` with a PAdES signature by ``key`` appended; returns the signed file's digest."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    der_cert = cert.public_bytes(serialization.Encoding.DER)
    signer = signers.SimpleSigner(signing_cert=asn1_x509.Certificate.load(der_cert),
                                  signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
                                  cert_registry=SimpleCertificateStore())
    meta = signers.PdfSignatureMetadata(field_name="AssuranceSignoff", reason=reason, subfilter=None)
    with open(pack, "rb") as src:
        writer = IncrementalPdfFileWriter(src, strict=False)
        with open(out, "wb") as dst:
            signers.sign_pdf(writer, meta, signer=signer, output=dst)
    return file_digest(out)


def check_signed_pack(rec: SignoffRecord) -> list[Problem]:
    """The recorded signed pack: its file digest, an intact signature by the sign-off's key, and the pack
    decided on (the statement's pack digest) as the signed file's original revision."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    path = Path(rec.signed_pack_path or "")
    if not path.is_file():
        return [("warning", f"signed pack {path} is no longer on disk; not checked")]
    if file_digest(path) != rec.signed_pack_digest:
        return [("error", f"signed pack {path}: digest differs from the sign-off record")]
    data = path.read_bytes()
    if rec.pack_digest is None or not any(PREFIX + hashlib.sha256(data[:m.end()]).hexdigest() == rec.pack_digest
                                          for m in _EOF.finditer(data)):
        return [("error", f"signed pack {path}: its original revision is not the pack decided on")]
    with open(path, "rb") as f:
        sigs = PdfFileReader(f, strict=False).embedded_signatures
        if not sigs:
            return [("error", f"signed pack {path}: holds no signature")]
        cert = sigs[-1].signer_cert
        # Whose key it is, the roster decides; here the certificate is trusted as itself, so that
        # pyHanko checks the signature's integrity without looking for a CA.
        status = validate_pdf_signature(sigs[-1], ValidationContext(trust_roots=[cert]))
        signer_key = cert.public_key.dump()
    if not (status.intact and status.valid):
        return [("error", f"signed pack {path}: the PAdES signature is not intact")]
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from .seal import public_key_b64

    pub = load_der_public_key(signer_key)
    if public_key_b64(pub) != rec.public_key:  # type: ignore[arg-type]
        return [("error", f"signed pack {path}: signed by a key other than the sign-off's")]
    return []
