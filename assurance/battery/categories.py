"""Human-readable names and the legal basis of the battery's categories.

Records keep the raw category ids (``violence_weapons``, ``advice_medical``...);
packs and the console show the names from ``data/categories.json``. Each entry
says why the category is tested: the UK offences its harmful requests would
assist (``basis: offence``), or that excluding it is a policy choice
(``basis: policy``: lawful content, with any offence named applying to some
items only). A category the registry does not know (a public benchmark's) gets
its id prettified and ``basis: not mapped``, so nothing claims a law it was
never checked against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

REGISTRY_FILE = Path(__file__).parent / "data" / "categories.json"

Basis = Literal["offence", "policy", "lawful", "capability", "not mapped"]
Family = Literal["harmful", "benign", "advice", "capability", "other"]
OVERALL = "overall"
"""The all-categories total of a metric; shown as is (templates style that row by it)."""


@dataclass(frozen=True)
class Offence:
    """One UK Act (and sections, where we are sure of them) a category's requests would assist."""

    act: str
    """Short title and year, as on legislation.gov.uk."""
    sections: str
    """Sections or Parts; empty when the Act as a whole is cited."""
    what: str
    """The offences, in a few words."""

    def cite(self) -> str:
        """``Fraud Act 2006 ss.1-7`` or just the Act."""
        return f"{self.act} {self.sections}".strip()


@dataclass(frozen=True)
class Category:
    """A battery category as a reader sees it."""

    id: str
    name: str
    family: Family
    basis: Basis
    description: str
    offences: tuple[Offence, ...] = ()

    @property
    def basis_text(self) -> str:
        """One line for a table: the Acts cited, or what kind of category it is."""
        if self.basis == "offence":
            return "; ".join(o.cite() for o in self.offences)
        return {"policy": "policy category (not an offence)", "lawful": "lawful: should be answered",
                "capability": "capability check", "not mapped": "not mapped to UK law"}[self.basis]


@cache
def registry() -> dict[str, Category]:
    """Every built-in category, by id, in file order."""
    raw = json.loads(REGISTRY_FILE.read_text(encoding="utf-8"))["categories"]
    return {cid: Category(cid, e["name"], e["family"], e["basis"], e["description"],
                          tuple(Offence(o["act"], o["sections"], o["what"]) for o in e.get("offences", [])))
            for cid, e in raw.items()}


def prettify(category_id: str) -> str:
    """``unknown_cat`` -> ``Unknown cat`` (underscores to spaces, first letter capitalised)."""
    text = category_id.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def category(category_id: str) -> Category:
    """The registry entry, or a ``not mapped`` one with the id prettified."""
    found = registry().get(category_id)
    if found is not None:
        return found
    return Category(category_id, prettify(category_id), "other", "not mapped",
                    "Not a built-in category: not mapped to UK law.")


def category_name(category_id: str) -> str:
    """What a pack shows for a category id (``overall`` stays as is)."""
    return category_id if category_id == OVERALL else category(category_id).name
