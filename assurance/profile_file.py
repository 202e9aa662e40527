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

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .evidence.hashing import PREFIX, sha256_hex
from .evidence.records import ArtifactRecord, ProfileRecord, ProfileSource
from .evidence.store import utc_now
from .plan import PlanError, field_errors
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
    data = strict_yaml(text, str(p))
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


def strict_yaml(text: str, source: str) -> Any:
    """Parse one YAML document (safe tags only), refusing duplicate keys anywhere in it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node, "", source, set())
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = " ".join(" ".join(str(part) for part in (err.context, err.problem) if part).split()) or "invalid"
        raise ProfileError(f"{source}: not valid YAML: {what}{where}") from None
    except yaml.YAMLError as err:
        raise ProfileError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def _refuse_duplicates(node: Node, path: str, source: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias to a node already walked
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else str(key.start_mark)
            dotted = f"{path}.{name}" if path else name
            line = key.start_mark.line + 1
            if (key.tag, name) in lines:
                raise ProfileError(f"{source}: {dotted}: duplicate key (lines {lines[(key.tag, name)]} and {line}); "
                                   "YAML would keep only the last")
            lines[(key.tag, name)] = line
            _refuse_duplicates(value, dotted, source, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, f"{path}.{i}", source, seen)
