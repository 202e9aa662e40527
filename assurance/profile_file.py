"""Reading an organisation profile file (``report.profile``) strictly, before a run writes anything.

A profile is what the organisation states about itself, so a mistake in it must
not pass unnoticed: unknown fields, wrong types, a missing required part (a
Clinical Safety Officer without a registration) and duplicate YAML keys (where
plain YAML keeps the last value silently) are each refused with one line naming
the file and the dotted field, e.g.
``profile.yaml: roles.clinical_safety_officer.registration: required``.

The digest is taken over exactly the bytes that were validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .evidence.hashing import PREFIX, sha256_hex
from .evidence.records import ArtifactRecord, ProfileRecord, ProfileSource
from .evidence.store import utc_now
from .plan import PlanError, field_errors
from .plan.yaml_file import strict_yaml
from .profile import OrgProfile


class ProfileError(PlanError):
    """A profile file that cannot be used; one line naming the file and the field. Exit 2, nothing written."""


@dataclass(frozen=True)
class LoadedProfile:
    """A profile file read, validated and hashed."""

    path: Path
    """The file, resolved."""
    digest: str
    """``sha256:<hex>`` of the bytes validated (the file digest encoding of every input)."""
    size_bytes: int
    """The file's size."""
    profile: OrgProfile
    """Its validated content."""

    @property
    def content(self) -> dict[str, Any]:
        """The validated content as JSON data, as recorded (fields left out stay out)."""
        return self.profile.model_dump(mode="json", exclude_none=True)

    def records(self, recorded_by: ProfileSource) -> list[ArtifactRecord | ProfileRecord]:
        """The artifact (the full path, for the auditor) and the profile record (file name only, for packs)."""
        art = ArtifactRecord(role="profile", path=str(self.path), digest=self.digest, is_dir=False,
                             size_bytes=self.size_bytes)
        rec = ProfileRecord(source=self.path.name, digest=self.digest, content=self.content,
                            recorded_by=recorded_by, recorded_at=utc_now())
        return [art, rec]


def load_profile(path: str | Path) -> LoadedProfile:
    """Read, validate and hash a profile file; raises ProfileError (one line) on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"{p}: profile file not found")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProfileError(f"{p}: not UTF-8 text (byte {err.start})") from None
    data = strict_yaml(text, str(p), ProfileError)
    return LoadedProfile(p.resolve(), PREFIX + sha256_hex(raw), len(raw), profile_from_data(data, str(p)))


def profile_from_data(data: Any, source: str) -> OrgProfile:
    """Validate parsed YAML as a profile; an empty document is an empty profile."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: the profile must be a YAML mapping, not {type(data).__name__}")
    try:
        return OrgProfile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(f"{source}: {field_errors(err)}") from None
