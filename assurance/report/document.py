"""Document control for a pack: its id, version, status and history, all taken from the ledger.

A reviewer files a pack as a controlled document. Its id is fixed by the run and
the regime; its version counts the packs of that regime already recorded for the
run (so a re-render after a profile update is version 2); its history lists
those earlier versions with the digest each was sealed under. Nothing here reads
the clock, so the same ledger always gives the same page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assurance.evidence.records import PackRecord
from assurance.profile import Document, Person, Supplier
from assurance.regimes import Regime
from assurance.report.view import RunView


@dataclass(frozen=True)
class DocumentControl:
    """The document-control block of one pack."""

    doc_id: str
    """``ASSURE-<REGIME>-<first 8 of the run id>``: one id for every version of this regime's pack."""
    version: int
    """1 for the first pack of this regime rendered for the run, then one more per re-render."""
    status: str
    """Draft (run incomplete), for review and decision, or decided (a sign-off is recorded)."""
    history: list[PackRecord]
    """Earlier versions, oldest first."""
    decisions: int
    """Sign-offs recorded for this regime (or for every regime) so far."""


def document_control(view: RunView, regime: Regime) -> DocumentControl:
    """The block for the pack of ``regime`` about to be rendered from ``view``."""
    earlier = [p for p in view.packs if p.regime == regime]
    decisions = [s for s in view.signoffs if s.regime in (None, regime)]
    if not view.final:
        status = "DRAFT: the run is incomplete; not for sign-off"
    elif decisions:
        status = f"Issued for decision; {len(decisions)} decision{'s' if len(decisions) != 1 else ''} recorded"
    else:
        status = "Issued for review and decision; no decision recorded yet"
    run = (view.run_id or "unknown")[:8]
    return DocumentControl(f"ASSURE-{regime.upper()}-{run}", len(earlier) + 1, status, earlier, len(decisions))


def described(value: Any) -> str:
    """A profile value in plain words: a person as "name, title (contact)", a document by its reference,
    a list joined, yes/no for flags."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(described(v) for v in value)
    if isinstance(value, Person):
        extra = ", ".join(x for x in (value.title, getattr(value, "smf", None)) if x)
        text = value.name + (f", {extra}" if extra else "")
        reg = getattr(value, "registration", None)
        if reg is not None:
            text += f"; registered with the {reg.body}, number {reg.number}"
        if getattr(value, "independent", None) is not None:
            text += "; independent of development" if value.independent else "; NOT independent of development"
        return text + (f" ({value.contact})" if value.contact else "")
    if isinstance(value, Document):
        parts = [value.reference, f"version {value.version}" if value.version else "", value.status,
                 f"approved {value.approved_on.isoformat()}" if value.approved_on else ""]
        return ", ".join(p for p in parts if p)
    if isinstance(value, Supplier):
        parts = [value.name, value.model or "", f"licence: {value.licence}" if value.licence else "",
                 f"due diligence: {value.due_diligence}" if value.due_diligence else ""]
        return "; ".join(p for p in parts if p)
    return str(value)
