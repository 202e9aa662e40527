"""A sealed run (both seals) with a verdict and one real PDF pack, for the sign-off tests and the demo's."""

from __future__ import annotations

from _ledger_writers import metric, started
from pypdf import PdfWriter

from assurance.evidence.hashing import file_digest
from assurance.evidence.records import PackRecord, RunStarted, VerdictRecord
from assurance.evidence.seal import seal_run
from assurance.evidence.store import Store, utc_now

RUN = "0190bbbb-0000-7000-8000-000000000001"


def sealed_run(tmp_path, status="PASS", roles=(), pack=True) -> Store:
    """A sealed run with a verdict, optionally requiring roles to approve and with one real PDF pack."""
    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    start = started(RUN)
    plan = {"name": "t", "policy": {"require_signoff": list(roles)}}
    passing = metric(1).model_copy(update={"successes": 10, "value": 1.0, "ci_low": 0.9, "ci_high": 1.0})
    store.append(RUN, [RunStarted(**{**start.model_dump(), "plan": plan}), passing,
                       VerdictRecord(status=status, checks=[], reasons=[] if status == "PASS" else ["r"])])
    seal_run(store, RUN, complete=True)
    if pack:
        pdf = tmp_path / "fca.pdf"
        w = PdfWriter()
        w.add_blank_page(width=595, height=842)
        with open(pdf, "wb") as f:
            w.write(f)
        store.append(RUN, [PackRecord(regime="fca", path=str(pdf), digest=file_digest(pdf), pages=1, final=True,
                                      rendered_at=utc_now())])
    seal_run(store, RUN, complete=True, scope="packs")  # a run is complete once its packs are sealed
    return store


