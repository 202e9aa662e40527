"""Requirement maps: what each regime (or crosswalk framework) asks for, as data.

One YAML file per regime under ``data/`` (``fca.yaml``, ``nhs.yaml``, ``uk-ai.yaml``) and one per
crosswalk framework under ``data/crosswalks/``. A requirement names the evidence kinds that measure
it (``evidence.py``'s registry) and the organisation-profile fields that state it
(``assurance.profile.PROFILE_FIELDS``), so a new regime or a revised standard is a change to a data
file only. ``load_map`` reads and checks one file; a mistake is one error naming the file and the
requirement id.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assurance.profile import PROFILE_FIELDS
from assurance.requirements.evidence import EVIDENCE

DATA_DIR = Path(__file__).resolve().parent / "data"
"""The shipped maps: ``<regime>.yaml`` and ``crosswalks/<name>.yaml``."""


class MapError(ValueError):
    """A requirement map that cannot be used: names the file and, where known, the requirement."""


class _Part(BaseModel):
    # A misspelt key must fail loudly, never vanish.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Source(_Part):
    """An official document the map encodes."""

    id: str = Field(min_length=1)
    """Short key the groups and requirements cite (``ss1-23``)."""
    title: str = Field(min_length=1)
    """The document's title as its publisher gives it."""
    short: str | None = None
    """A short name for row citations (``PRA SS1/23``); default: the title."""
    publisher: str = Field(min_length=1)
    """Who publishes it."""
    version: str = Field(min_length=1)
    """Version, issue or publication date the map was checked against."""
    url: str | None = None
    """Where the official text is published."""
    note: str | None = None
    """How the numbering and wording were checked, and any caveat."""


class Requirement(_Part):
    """One requirement: what it asks, and what evidence and profile fields answer it."""

    id: str = Field(min_length=1)
    """Stable id as the source numbers it (``SS1/23 P1.2``)."""
    title: str = Field(min_length=1)
    """The source's heading for it."""
    text: str = Field(min_length=1)
    """One sentence in our own words."""
    evidence: list[str] = Field(default_factory=list)
    """Evidence kinds (``evidence.EVIDENCE`` names) whose findings answer it from the ledger."""
    profile: list[str] = Field(default_factory=list)
    """Dotted organisation-profile fields (``PROFILE_FIELDS``) that state it."""
    owner: str = Field(min_length=1)
    """Who owns it: a profile role path (``roles.model_owner``) or a short description."""
    source: str | None = None
    """The source's key; default: the group's."""
    section: str | None = None
    """Where in the source (``Principle 1.2``); default: the id."""


class Group(_Part):
    """A heading of the checklist (a principle, an outcome, a DTAC section)."""

    id: str = Field(min_length=1)
    """Stable key."""
    title: str = Field(min_length=1)
    """Heading as printed."""
    intro: str = ""
    """One or two sentences saying what the group covers and how to read it."""
    source: str | None = None
    """Default source key for its requirements."""
    applies_if: str | None = None
    """A yes/no profile field (``clinical.dcb0129_applies``): when the profile answers no, only the
    rows that ask that question are kept and the group says it does not apply."""
    requirements: list[Requirement] = Field(min_length=1)
    """Its rows, in the source's order."""


class RequirementMap(_Part):
    """A regime's (or a crosswalk framework's) requirement map."""

    name: str = Field(min_length=1)
    """The regime (``fca``) or framework (``iso-42001``) this file describes."""
    title: str = Field(min_length=1)
    """How a pack titles the checklist or crosswalk."""
    sources: list[Source] = Field(min_length=1)
    """The official documents encoded, with version/date."""
    groups: list[Group] = Field(min_length=1)
    """Headings with their requirements."""
    crosswalks: list[str] = Field(default_factory=list)
    """Crosswalk maps (``data/crosswalks/<name>.yaml``) a regime's pack appends."""

    @model_validator(mode="after")
    def _consistent(self) -> RequirementMap:
        keys = {s.id for s in self.sources}
        seen: set[str] = set()
        for group in self.groups:
            if group.applies_if is not None and group.applies_if not in PROFILE_FIELDS:
                raise ValueError(f"group {group.id!r}: unknown profile field {group.applies_if!r} in applies_if")
            for req in group.requirements:
                where = f"requirement {req.id!r}"
                if req.id in seen:
                    raise ValueError(f"{where}: id used twice")
                seen.add(req.id)
                if (req.source or group.source) not in keys:
                    raise ValueError(f"{where}: source {req.source or group.source!r} is not one of "
                                     f"the file's sources ({', '.join(sorted(keys))})")
                for kind in req.evidence:
                    if kind not in EVIDENCE:
                        raise ValueError(f"{where}: unknown evidence kind {kind!r}")
                for path in req.profile:
                    if path not in PROFILE_FIELDS:
                        raise ValueError(f"{where}: unknown profile field {path!r}")
                if req.owner.startswith(("roles.", "organisation.")) and req.owner not in PROFILE_FIELDS:
                    raise ValueError(f"{where}: unknown owner role {req.owner!r}")
        return self

    def requirements(self) -> list[Requirement]:
        """Every requirement, in file order."""
        return [r for g in self.groups for r in g.requirements]

    def source_of(self, group: Group, req: Requirement) -> Source:
        """The source a requirement cites."""
        key = req.source or group.source
        return next(s for s in self.sources if s.id == key)


def _where(err: ValidationError, raw: object) -> str:
    """The id of the requirement (or group) the first error sits in, read from the raw YAML."""
    loc = err.errors()[0]["loc"]
    node = raw
    found = ""
    for part in loc:
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found = f"{'requirement' if 'text' in node else 'group'} {node['id']!r}"
    return found


def load_map(path: Path) -> RequirementMap:
    """Read and check one map file; MapError names the file and requirement on any mistake."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MapError(f"{path}: cannot read requirement map: {exc}") from exc
    try:
        return RequirementMap.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(exc, raw)
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        at = f" ({where})" if where and where not in msg else ""
        raise MapError(f"{path}: {msg}{at}{f' at {loc}' if loc else ''}") from exc


@lru_cache(maxsize=32)
def _cached(path: Path, mtime: float) -> RequirementMap:
    return load_map(path)


def regime_map(regime: str, data_dir: Path = DATA_DIR) -> RequirementMap:
    """The map for ``regime`` (``data/<regime>.yaml``)."""
    path = Path(data_dir) / f"{regime}.yaml"
    if not path.is_file():
        raise MapError(f"{path}: no requirement map for regime {regime!r}")
    return _cached(path, path.stat().st_mtime)


def crosswalk_map(name: str, data_dir: Path = DATA_DIR) -> RequirementMap:
    """The crosswalk map ``data/crosswalks/<name>.yaml``."""
    path = Path(data_dir) / "crosswalks" / f"{name}.yaml"
    if not path.is_file():
        raise MapError(f"{path}: no crosswalk map named {name!r}")
    return _cached(path, path.stat().st_mtime)


def all_maps(data_dir: Path = DATA_DIR) -> list[Path]:
    """Every map file shipped (regimes, then crosswalks)."""
    data_dir = Path(data_dir)
    return sorted(data_dir.glob("*.yaml")) + sorted((data_dir / "crosswalks").glob("*.yaml"))
