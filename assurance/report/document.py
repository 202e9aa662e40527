"""Document control for a pack: its id, version, status and history, all taken from the ledger.

A reviewer files a pack as a controlled document. Its id is fixed by the run and
the regime; its version counts the packs of that regime already recorded for the
run (so a re-render after a profile update is version 2); its history lists
those earlier versions with the digest each was sealed under. Nothing here reads
the clock, so the same ledger always gives the same page.
"""

from __future__ import annotations

from dataclasses import dataclass

from assurance.evidence.records import PackRecord
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


def pack_version(packs: list[PackRecord], regime: str) -> int:
    """The version the next ``regime`` pack of a run gets: 1 + the packs of that regime already recorded.
    The pack prints it and ``pipeline.pack_file_name`` names the file by it."""
    return 1 + sum(1 for p in packs if p.regime == regime)


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
    return DocumentControl(f"ASSURE-{regime.upper()}-{run}", pack_version(view.packs, regime), status, earlier,
                           len(decisions))

