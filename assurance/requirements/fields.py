"""Organisation-profile fields as a checklist shows them: a label and a value, or missing.

A missing field is shown as missing (the templates print it red), never as a placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel

from assurance.profile import (
    PROFILE_FIELDS,
    ClinicalSafetyOfficer,
    Document,
    OrgProfile,
    Person,
    SeniorManager,
    Validator,
    profile_value,
)

SHORT = 160
"""Characters of a profile value a checklist cell shows."""


@dataclass(frozen=True)
class FieldValue:
    """One profile field: its dotted path, its label and its value as text (None: not provided)."""

    path: str
    label: str
    value: str | None

    @property
    def present(self) -> bool:
        """Whether the organisation provided it."""
        return self.value is not None

    @property
    def short(self) -> str | None:
        """The value cut to ``SHORT`` characters for a checklist cell (the organisation-profile table
        prints it in full), None when not provided."""
        if self.value is None or len(self.value) <= SHORT:
            return self.value
        return self.value[:SHORT].rstrip() + "… (in full under the organisation profile)"


def _person(p: Person) -> str:
    parts = [f"{p.name} ({p.smf})" if isinstance(p, SeniorManager) else p.name]
    parts += [p.title] if p.title else []
    if isinstance(p, ClinicalSafetyOfficer):
        parts.append(f"registered with {p.registration.body}, no. {p.registration.number}")
    if isinstance(p, Validator):
        parts.append("independent of development" if p.independent else "NOT independent of development")
    parts += [p.contact] if p.contact else []
    return ", ".join(parts)


def describe(value: Any) -> str:
    """A profile value as one line of text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "; ".join(describe(v) for v in value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        if isinstance(value, Person):
            return _person(value)
        if isinstance(value, Document):
            bits = [value.reference]
            bits += [f"v{value.version}"] if value.version else []
            bits.append(value.status)
            bits += [f"approved {value.approved_on.isoformat()}"] if value.approved_on else []
            return ", ".join(bits)
        fields = [(n, getattr(value, n)) for n in type(value).model_fields]
        return ", ".join(describe(v) if n == "name" else f"{n.replace('_', ' ')}: {describe(v)}"
                         for n, v in fields if v is not None)
    return str(value)


def field_value(profile: OrgProfile | None, path: str) -> FieldValue:
    """The field at ``path`` with its label and value as text."""
    value = profile_value(profile, path)
    return FieldValue(path, PROFILE_FIELDS[path], None if value is None else describe(value))


def owner_text(profile: OrgProfile | None, owner: str) -> str:
    """Who owns a requirement: the person the profile names in that role, else the role's label
    (``Model owner``); an owner that is not a profile path is printed as written."""
    if owner not in PROFILE_FIELDS:
        return owner
    value = profile_value(profile, owner)
    label = PROFILE_FIELDS[owner]
    if value is None:
        return label
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return f"{name} ({label})"
    if isinstance(value, str):
        return f"{value} ({label})"
    return label
