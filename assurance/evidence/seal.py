"""Sealing a run: the manifest record and its optional Ed25519 signature.

Hashing lives in ``hashing.py``; this module only decides what the manifest
covers and signs it. The signature is over the manifest's canonical JSON with
``signature`` and ``public_key`` left out, so anyone holding the public key
can check it with any RFC 8785 implementation.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .hashing import canonical_json
from .records import ArtifactRecord, ManifestRecord, PackRecord, Record
from .records.run import SealScope
from .store import Store, utc_now

LEGACY_DEFAULTS: dict[str, object] = {"scope": None, "packs": {}}
"""Fields added after signed manifests were in ledgers: left out of the signed bytes while they hold these
values, so a signature made before they existed still verifies."""


def signing_payload(manifest: ManifestRecord) -> bytes:
    body = manifest.model_dump(mode="json", exclude={"signature", "public_key"})
    for name, default in LEGACY_DEFAULTS.items():
        if body.get(name) == default:
            del body[name]
    return canonical_json(body)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key (PEM, unencrypted PKCS#8)."""
    data = Path(path).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


class SigningKeyError(ValueError):
    """A ``--sign-key`` that cannot sign; the message names the file."""


def check_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """Load the signing key before a run writes anything, so a bad key is a usage error up front
    rather than a failure at the seal that leaves the whole run unsealed."""
    try:
        return load_private_key(path)
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "a folder, not a key file"
    except OSError as err:
        reason = err.strerror or type(err).__name__
    except TypeError:  # cryptography's word for an encrypted key given no passphrase
        reason = "encrypted; no passphrase is taken"
    except UnsupportedAlgorithm:
        reason = "an unsupported key type"
    except ValueError as err:
        reason = "not an Ed25519 key" if "Ed25519" in str(err) else "not a PEM private key"
    raise SigningKeyError(f"{path}: cannot sign with it ({reason}); give an unencrypted Ed25519 private key in PEM "
                          "(PKCS#8), as `assure keygen` writes it")


def generate_key(path: str | Path) -> str:
    """Write a new Ed25519 private key (PEM) to ``path``; return its public key, base64."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    p = Path(path)
    p.write_bytes(pem)
    p.chmod(0o600)
    return public_key_b64(key.public_key())


def public_key_b64(pub: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64: what `assure keygen` prints and the manifest records."""
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def seal_run(store: Store, run_id: str, *, complete: bool, key_path: str | Path | None = None,
             scope: SealScope = "evidence") -> ManifestRecord:
    """Append a seal: chain head, record count and every artifact digest; a ``packs`` seal also lists the
    digest of every pack rendered so far (all versions, by file name)."""
    entries = store.entries(run_id)
    artifacts: dict[str, str] = {}
    packs: dict[str, str] = {}
    for e in entries:
        if e.kind == "artifact":
            rec = ArtifactRecord.model_validate_json(e.payload)
            artifacts[rec.role] = rec.digest
        elif e.kind == "pack" and scope == "packs":
            pack = PackRecord.model_validate_json(e.payload)
            packs[pack_name(pack)] = pack.digest
    manifest = ManifestRecord(
        complete=complete,
        chain_head=entries[-1].digest,
        n_records=len(entries),
        artifacts=artifacts,
        sealed_at=utc_now(),
        scope=scope,
        packs=packs,
    )
    if key_path is not None:
        key = load_private_key(key_path)
        sig = key.sign(signing_payload(manifest))
        manifest = manifest.model_copy(
            update={"signature": base64.b64encode(sig).decode(), "public_key": public_key_b64(key.public_key())}
        )
    store.append(run_id, [manifest])
    return manifest


def key_for_run(records: Iterable[Record], key_path: str | Path | None) -> str | None:
    """Why ``key_path`` may not seal more of a run with ``records`` (its seals at least), or None when it may.

    All of a run's seals are signed with one key, or none is: a seal made without the key, or with another,
    would read as a stripped or forged signature (``coverage.signing``)."""
    seals = [r for r in records if isinstance(r, ManifestRecord)]
    signer = next((m.public_key for m in reversed(seals) if m.signature and m.public_key), None)
    if signer is None:
        if key_path is not None and seals:
            return (f"the run's seals are unsigned, so its packs are sealed unsigned too (a signed seal would leave "
                    f"the run half signed); leave out --sign-key {key_path}")
        return None
    if key_path is None:
        return f"the run's seals are signed by key {signer}; give that key with --sign-key to seal its packs"
    given = public_key_b64(check_signing_key(key_path).public_key())
    if given != signer:
        return (f"{key_path} is key {given}, but the run's seals are signed by key {signer}; give that key "
                "with --sign-key")
    return None


def pack_name(pack: PackRecord) -> str:
    """The key a packs seal lists a pack under: its file name (each version has its own)."""
    return Path(pack.path).name


def check_signature(manifest: ManifestRecord, trusted_public_key: str | None = None) -> str | None:
    """None when the signature holds (or there is none); else what is wrong."""
    if manifest.signature is None:
        return None
    if manifest.public_key is None:
        return "manifest has a signature but no public key"
    if trusted_public_key and trusted_public_key != manifest.public_key:
        return "manifest was signed by a key other than the trusted one"
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(manifest.public_key))
        pub.verify(base64.b64decode(manifest.signature), signing_payload(manifest))
    except (InvalidSignature, ValueError):
        return "manifest signature does not verify"
    return None
