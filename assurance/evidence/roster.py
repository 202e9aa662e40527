"""The signer roster: who may sign off, in which role, with which key.

A YAML file an organisation keeps beside its ledger (``assure verify --signers FILE``,
``assure gate --signers FILE``)::

    require_signatures: true        # optional: an unsigned sign-off, or an unsigned seal, is then an error
    signers:
      - name: J. Smith
        role: SMF24
        public_key: 3q2+7w...=      # what `assure keygen` printed
      - name: A. Jones
        role: Clinical Safety Officer
        certificate_fingerprint: sha256:ab12...   # where a PKI issues the keys

Loading is strict: an unknown field, a missing name or role, a key that is not a 32-byte
Ed25519 public key, or an entry with neither (or both) of ``public_key`` and
``certificate_fingerprint`` is one error naming the file and the entry.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


class RosterError(ValueError):
    """The roster file cannot be used; the message names the file and the entry."""


class Signer(BaseModel):
    """One person allowed to sign off, in one role."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(min_length=1)
    """The name the person signs under (``--name``)."""
    role: str = Field(min_length=1)
    """The role they sign in (``--role``)."""
    public_key: str | None = None
    """Their Ed25519 public key, base64 of the raw 32 bytes, as ``assure keygen`` prints it."""
    certificate_fingerprint: str | None = None
    """``sha256:<hex>`` of their X.509 certificate (DER), for signers whose keys a PKI issues."""

    @field_validator("public_key")
    @classmethod
    def _raw_ed25519(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("not a base64 Ed25519 public key (32 bytes) as `assure keygen` prints it")
        return v

    @field_validator("certificate_fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is not None and not _FINGERPRINT.match(v.lower()):
            raise ValueError("not a certificate fingerprint: write sha256: and 64 hex digits")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _one_identity(self) -> Signer:
        if (self.public_key is None) == (self.certificate_fingerprint is None):
            raise ValueError("give exactly one of public_key and certificate_fingerprint")
        return self


class Roster(BaseModel):
    """The people whose sign-offs count."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    signers: list[Signer] = Field(min_length=1)
    """Everyone allowed to sign off."""
    require_signatures: bool = False
    """True: an unsigned sign-off is an error, not a warning."""
    source: str = Field("", exclude=True)
    """The file the roster was read from, for findings (not part of the file)."""

    def holders(self, public_key: str | None, certificate_fingerprint: str | None) -> list[Signer]:
        """The roster entries for this key or certificate."""
        return [s for s in self.signers
                if (public_key is not None and s.public_key == public_key)
                or (certificate_fingerprint is not None and s.certificate_fingerprint == certificate_fingerprint)]


def load_roster(path: str | Path) -> Roster:
    """Read and check a roster file; ``RosterError`` naming the file and the entry when it is not valid."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise RosterError(f"{p}: cannot read the signer roster ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise RosterError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise RosterError(f"{p}: a signer roster is a mapping with a `signers:` list")
    try:
        return Roster.model_validate({**data, "source": str(p)})
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        where = re.sub(r"\.(\d+)", r"[\1]", where)
        entry = _entry_name(data, e["loc"])
        raise RosterError(f"{p}: {where}{entry}: {e['msg'].removeprefix('Value error, ')}") from None


def _entry_name(data: dict, loc: tuple) -> str:
    """`` (J. Smith)`` for an error inside a signer entry that has a name."""
    if len(loc) >= 2 and loc[0] == "signers" and isinstance(loc[1], int):
        entries = data.get("signers")
        if isinstance(entries, list) and loc[1] < len(entries) and isinstance(entries[loc[1]], dict):
            name = entries[loc[1]].get("name")
            return f" ({name})" if name else ""
    return ""
