"""A regime's checklist: every requirement of its map as a row with a status, its evidence and an owner.

``checklist`` reads the regime's map (``maps.py``), asks each named evidence kind for its finding
on the run (``evidence.py``) and looks up each named profile field; ``status`` is the one rule
that turns those into the row's status word. ``org_rows`` lists every profile field the map needs
(a missing one is printed "NOT PROVIDED: required by …"), ``crosswalk`` reads a framework map
the same way, and ``context`` gives a pack's templates all of it under four keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assurance.profile import PROFILE_FIELDS, OrgProfile, profile_value
from assurance.report.view import RunView
from assurance.requirements.evidence import find
from assurance.requirements.fields import FieldValue, field_value, owner_text
from assurance.requirements.finding import Finding
from assurance.requirements.maps import DATA_DIR, Group, Requirement, RequirementMap, crosswalk_map, regime_map

Status = Literal["met", "partly", "organisation to supply", "stated by organisation", "not met"]
"""A checklist row's status: ``met`` (the evidence shows it and the profile states what it needs),
``stated by organisation`` (only the organisation can state it, and the profile does), ``partly``,
``organisation to supply`` (nothing in the run or the profile answers it yet), ``not met``
(a finding on it is not met: a verdict check failed or the records show it missing)."""

STATUSES: tuple[Status, ...] = ("met", "stated by organisation", "partly", "organisation to supply", "not met")

Coverage = Literal["measured", "profile", "gap"]
"""How a crosswalk row is answered: by the run's measurements, by the profile, or not (yet)."""


def status(findings: list[Finding], fields: list[FieldValue]) -> Status:
    """The one rule for a row's status.

    Any finding ``not met`` -> ``not met``; every finding met and every profile field present ->
    ``met`` (``stated by organisation`` when the row names no evidence); nothing met or stated ->
    ``organisation to supply``; anything else -> ``partly``."""
    states = [f.state for f in findings]
    if "not met" in states:
        return "not met"
    if findings or fields:
        if all(s == "met" for s in states) and all(f.present for f in fields):
            return "met" if findings else "stated by organisation"
    if not any(s in ("met", "partly") for s in states) and not any(f.present for f in fields):
        return "organisation to supply"
    return "partly"


@dataclass(frozen=True)
class Row:
    """One requirement as a checklist prints it."""

    id: str
    title: str
    text: str
    status: Status
    findings: list[Finding]
    fields: list[FieldValue]
    owner: str
    """The person the profile names in the owning role, else the role's label."""
    citation: str
    """Short source name and section (the group's ``source`` gives the documents in full)."""

    @property
    def status_class(self) -> str:
        """CSS class for the status word (``st-met``, ``st-not-met``...)."""
        return "st-" + self.status.replace(" ", "-")

    @property
    def missing(self) -> list[FieldValue]:
        """Profile fields the row needs that the profile does not provide."""
        return [f for f in self.fields if not f.present]


@dataclass(frozen=True)
class GroupRows:
    """A heading of the checklist with its rows."""

    id: str
    title: str
    intro: str
    rows: list[Row]
    source: str
    """The sources its rows cite, in full with their versions."""
    not_applicable: str = ""
    """Why the group's rows are left out (the profile says the standard does not apply); empty otherwise."""


@dataclass(frozen=True)
class OrgRow:
    """A profile field a regime needs: its value (or missing) and the requirements that need it."""

    path: str
    label: str
    value: str | None
    required_by: list[str]

    @property
    def present(self) -> bool:
        """Whether the organisation provided it."""
        return self.value is not None

    @property
    def required_text(self) -> str:
        """``SS1/23 P1.2, SS1/23 P2.4`` for the "NOT PROVIDED: required by …" line."""
        return ", ".join(self.required_by)

    @property
    def required_brief(self) -> str:
        """The first three of ``required_text``, then how many more, for a line inside a pack's prose (the
        organisation's table lists them all)."""
        more = len(self.required_by) - 3
        return ", ".join(self.required_by[:3]) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class CrosswalkRow:
    """One clause of a framework, answered by measurement, by the profile, or a gap."""

    row: Row
    coverage: Coverage
    gap: str
    """What is missing, in words (empty when covered)."""


@dataclass(frozen=True)
class Crosswalk:
    """A framework's crosswalk table."""

    name: str
    title: str
    sources: list[str]
    rows: list[CrosswalkRow]


def _map(regime: str | RequirementMap, data_dir: Path) -> RequirementMap:
    return regime if isinstance(regime, RequirementMap) else regime_map(regime, data_dir)


def _citation(m: RequirementMap, group: Group, req: Requirement) -> str:
    src = m.source_of(group, req)
    name, where = src.short or src.title, req.section or req.id
    return where if where.startswith(name) else f"{name}, {where}"


def _source_line(m: RequirementMap, group: Group) -> str:
    """The group's sources in full (title, publisher, version), once under its heading."""
    keys = list(dict.fromkeys(r.source or group.source for r in group.requirements))
    found = [s for s in m.sources if s.id in keys]
    return "; ".join(f"{s.title} ({s.publisher}, {s.version})" for s in found)


class _Findings:
    """Each evidence kind read once per run (many rows share a kind)."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        self.seen: dict[str, Finding] = {}

    def __call__(self, kind: str) -> Finding:
        if kind not in self.seen:
            self.seen[kind] = find(kind, self.view)
        return self.seen[kind]


def _row(m: RequirementMap, group: Group, req: Requirement, findings: _Findings,
         profile: OrgProfile | None) -> Row:
    found = [findings(k) for k in req.evidence]
    fields = [field_value(profile, p) for p in req.profile]
    return Row(req.id, req.title, req.text, status(found, fields), found, fields,
               owner_text(profile, req.owner), _citation(m, group, req))


def _applicable(group: Group, profile: OrgProfile | None) -> tuple[list[Requirement], str]:
    """The group's requirements that apply, and why the rest do not: when the profile answers the
    group's ``applies_if`` question with no, only the rows asking that question remain."""
    flag = group.applies_if
    if flag is None or profile_value(profile, flag) is not False:
        return list(group.requirements), ""
    kept = [r for r in group.requirements if flag in r.profile]
    return kept, (f"Not applicable: the organisation states \u201c{PROFILE_FIELDS[flag]}: no\u201d, so the "
                  f"{len(group.requirements) - len(kept)} requirements of this standard are not listed.")


def _groups(m: RequirementMap, view: RunView, profile: OrgProfile | None) -> list[GroupRows]:
    findings = _Findings(view)
    out = []
    for g in m.groups:
        reqs, why = _applicable(g, profile)
        out.append(GroupRows(g.id, g.title, g.intro, [_row(m, g, r, findings, profile) for r in reqs],
                             _source_line(m, g), why))
    return out


def checklist(regime: str | RequirementMap, view: RunView, profile: OrgProfile | None = None, *,
              data_dir: Path = DATA_DIR) -> list[GroupRows]:
    """Every requirement of the regime's map (``data/<regime>.yaml``, or a map already loaded) as
    rows grouped as the map groups them."""
    return _groups(_map(regime, data_dir), view, profile)


def org_rows(regime: str | RequirementMap, profile: OrgProfile | None = None, *,
             data_dir: Path = DATA_DIR) -> list[OrgRow]:
    """Every profile field the regime's map names (as a field or an owning role), in profile order,
    with its value or missing and the ids of the requirements that need it (requirements of a
    standard the profile says does not apply are left out)."""
    m = _map(regime, data_dir)
    needed: dict[str, list[str]] = {}
    for req in (r for g in m.groups for r in _applicable(g, profile)[0]):
        for path in [*req.profile, *([req.owner] if req.owner in PROFILE_FIELDS else [])]:
            ids = needed.setdefault(path, [])
            if req.id not in ids:
                ids.append(req.id)
    out = []
    for path in PROFILE_FIELDS:
        if path in needed:
            fv = field_value(profile, path)
            out.append(OrgRow(path, fv.label, fv.value, needed[path]))
    return out


def _coverage(row: Row) -> tuple[Coverage, str]:
    measured = any(f.state in ("met", "partly") for f in row.findings)
    missing = [f.label for f in row.missing]
    unmeasured = [f.label for f in row.findings if f.state in ("not measured", "not met")]
    if row.status == "not met":
        return "gap", "; ".join(f"{f.label}: {f.state}" for f in row.findings if f.state == "not met")
    if measured and not missing:
        return "measured", ""
    if not measured and row.fields and not missing:
        return "profile", ("not measured: " + ", ".join(unmeasured)) if unmeasured else ""
    gaps = [f"not provided: {', '.join(missing)}"] if missing else []
    gaps += [f"not measured: {', '.join(unmeasured)}"] if unmeasured and not measured else []
    return "gap", "; ".join(gaps) or "organisation to supply"


def crosswalk(name: str | RequirementMap, view: RunView, profile: OrgProfile | None = None, *,
              data_dir: Path = DATA_DIR) -> Crosswalk:
    """A framework's clauses (``data/crosswalks/<name>.yaml``) as measured / profile / gap."""
    m = name if isinstance(name, RequirementMap) else crosswalk_map(name, data_dir)
    rows = [CrosswalkRow(r, *_coverage(r)) for g in _groups(m, view, profile) for r in g.rows]
    return Crosswalk(m.name, m.title, [f"{s.title} ({s.version})" for s in m.sources], rows)


def _gaps(orgs: list[OrgRow], groups: list[GroupRows]) -> dict[str, list[Any]]:
    return {"missing": [o for o in orgs if not o.present],
            "not_met": [r for g in groups for r in g.rows if r.status == "not met"]}


def gaps(regime: str | RequirementMap, view: RunView, profile: OrgProfile | None = None, *,
         data_dir: Path = DATA_DIR) -> dict[str, list[Any]]:
    """For the decision summary: ``missing`` profile fields (OrgRows) and ``not_met`` rows."""
    m = _map(regime, data_dir)
    return _gaps(org_rows(m, profile), _groups(m, view, profile))


def context(regime: str | RequirementMap, view: RunView, profile: OrgProfile | None = None, *,
            data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """What the checklist, crosswalk and organisation-profile partials read: ``org_rows``,
    ``checklist``, ``crosswalks`` (the ones the regime's map lists) and ``gaps``."""
    m = _map(regime, data_dir)
    groups = _groups(m, view, profile)
    orgs = org_rows(m, profile)
    return {
        "org_rows": orgs,
        "checklist": groups,
        "crosswalks": [crosswalk(c, view, profile, data_dir=data_dir) for c in m.crosswalks],
        "gaps": _gaps(orgs, groups),
    }
