"""The smallest real records, and writer processes that append them, for the ledger backend tests.

Workers run in processes that share nothing with the test's (multiprocessing's ``forkserver``), each
with its own ``Store``, so they contend for the database as separate ``assure`` processes do; a worker
never raises: it returns what it appended and any traceback, and the test asserts on both.
"""

from __future__ import annotations

import gzip
import json
import traceback
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from assurance.evidence.hashing import json_digest
from assurance.evidence.records import MetricRecord, RunStarted, SignoffRecord, VerdictRecord
from assurance.evidence.seal import seal_run
from assurance.evidence.store import LedgerEntry, Store

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
LEGACY_LEDGER = FIXTURES / "ledger_d406631.jsonl.gz"


def legacy_rows() -> list[dict]:
    """Every row of one complete run written by the code at d406631, as it stored them."""
    with gzip.open(LEGACY_LEDGER, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def load_legacy(store: Store) -> str:
    """The d406631 run's rows inserted into ``store`` exactly as that code wrote them; returns its run id."""
    rows = legacy_rows()
    with Session(store.engine) as session:
        session.execute(insert(LedgerEntry), rows)
        session.commit()
    return rows[0]["run_id"]


def started(run_id: str) -> RunStarted:
    return RunStarted(run_id=run_id, plan={"name": "t"}, plan_digest=json_digest({"name": "t"}),
                      tool_version="0", started_at="2026-01-01T00:00:00Z")


def metric(i: int) -> MetricRecord:
    return MetricRecord(stage="tuned", name="refusal_rate", category=f"c{i}", successes=i % 10, n=10,
                        value=(i % 10) / 10, ci_low=0.0, ci_high=1.0)


def signoff(who: str, n: int) -> SignoffRecord:
    # Built from the stored shape, which every later release must still accept.
    return SignoffRecord.model_validate({"kind": "signoff", "name": who, "role": "SMF24", "decision": "approve",
                                         "note": f"decision {n}", "signed_at": "2026-11-30T12:00:00Z"})


def sealed_run(store: Store, run_id: str, n_metrics: int = 3) -> None:
    """A complete run: started, metrics, a PASS verdict, the evidence and packs seals."""
    store.append(run_id, [started(run_id)])
    store.append(run_id, [metric(i) for i in range(n_metrics)] + [VerdictRecord(status="PASS", checks=[], reasons=[])])
    seal_run(store, run_id, complete=True)
    seal_run(store, run_id, complete=True, scope="packs")  # no packs: the packs seal lists none


def sign_off_worker(url: str, run_id: str, who: str, n: int, barrier) -> dict:
    """Open the ledger, wait for every other worker, then append ``n`` sign-offs one by one."""
    done = 0
    try:
        store = Store(url)
        barrier.wait(timeout=120)
        for i in range(n):
            store.append(run_id, [signoff(who, i)])
            done += 1
        return {"who": who, "appended": done, "error": None}
    except Exception:  # reported to the test, which fails on it
        return {"who": who, "appended": done, "error": traceback.format_exc()}


def run_writer(url: str, run_ids: list[str], batches: int, batch_size: int, barrier) -> dict:
    """Write whole runs the way a pipeline does: one transaction per stage, then the two seals."""
    try:
        store = Store(url)
        barrier.wait(timeout=120)
        for run_id in run_ids:
            store.append(run_id, [started(run_id)])
            for b in range(batches):
                store.append(run_id, [metric(b * batch_size + i) for i in range(batch_size)])
            store.append(run_id, [VerdictRecord(status="PASS", checks=[], reasons=[])])
            seal_run(store, run_id, complete=True)
            seal_run(store, run_id, complete=True, scope="packs")
        return {"runs": run_ids, "error": None}
    except Exception:  # reported to the test, which fails on it
        return {"runs": run_ids, "error": traceback.format_exc()}
