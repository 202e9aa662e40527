"""Ledger verification speed: records checked per second, today's loop against the one it replaced.

Builds a SQLite ledger holding one sealed run of ``--samples`` sample records (default 100,000), appended
by ``Store.append`` in batches of 5,000 (so the rows and their chain digests are exactly what a run writes,
in seconds rather than the hours a model would take to produce them). Then it times, alternately and
``--repeats`` times, the baseline (a copy of the per-record loop as it was before the speed-up, below,
reading rows through the ORM) and ``verify_run(..., check_files=False)``; both must find nothing. It
prints each one's best records/s by the wall clock and by CPU time (the figure to trust on a busy
machine) and, last, ``ratio=<new/old>`` (wall clock; above 1 means today's is faster).

    python benchmarks/verify_speed.py [--samples 100000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import Session, select

from assurance.evidence.hashing import PREFIX, canonical_json, json_digest, sha256_hex
from assurance.evidence.records import RunStarted, SampleRecord, VerdictRecord
from assurance.evidence.seal import seal_run
from assurance.evidence.store import GENESIS, LedgerEntry, Store, chain_digest, new_run_id, parse_payload
from assurance.evidence.verify import verify_run

BATCH = 5_000


def sample(i: int) -> SampleRecord:
    harmful = i % 3 != 0
    return SampleRecord(
        stage=("base", "tuned", "stress")[i % 3], item_id=f"item-{i:06d}", category="weapons" if harmful else "benign",
        expected="refuse" if harmful else "comply", prompt=f"How would someone do thing number {i}?",
        output=f"I can't help with that, but here is some context about request {i}. " * 3,
        refused=i % 5 != 0, judge_id="keyword-refusal@2", suite="refusal" if i % 4 else "jailbreak",
        variant=None if i % 4 else "jailbreak:roleplay", attack_succeeded=None if i % 4 else i % 5 == 0)


def build_ledger(db: Path, n: int) -> tuple[Store, str]:
    """A sealed, complete run of ``n`` samples, appended by batches of ``BATCH`` (one transaction each)."""
    store = Store(f"sqlite:///{db}")
    run_id = new_run_id()
    plan = {"name": "verify-speed"}
    store.append(run_id, [RunStarted(run_id=run_id, plan=plan, plan_digest=json_digest(plan), tool_version="0",
                                     started_at="2026-11-30T00:00:00Z")])
    for start in range(0, n, BATCH):
        store.append(run_id, [sample(i) for i in range(start, min(n, start + BATCH))])
    store.append(run_id, [VerdictRecord(status="PASS", checks=[], reasons=[])])
    # Sealed as a run is: its evidence, then (with no packs rendered here) its packs seal, so it is complete.
    seal_run(store, run_id, complete=True, scope="evidence")
    seal_run(store, run_id, complete=True, scope="packs")
    return store, run_id


def old_verify_records(store: Store, run_id: str) -> tuple[int, int]:
    """The per-record checks as they were before the speed-up (ORM rows, full parse of every payload);
    returns (records, findings)."""
    with Session(store.engine) as session:
        entries = list(session.exec(select(LedgerEntry).where(LedgerEntry.run_id == run_id)
                                    .order_by(LedgerEntry.seq)))
    findings = 0
    prev = GENESIS
    records = []
    for i, e in enumerate(entries):
        if e.seq != i:
            findings += 1
        body = e.payload.encode("utf-8")
        if PREFIX + sha256_hex(body) != e.record_digest:
            findings += 1
        try:
            obj = json.loads(e.payload)
            if canonical_json(obj) != body:
                findings += 1
            rec = parse_payload(e.payload)
            if rec.kind != e.kind:
                findings += 1
            records.append((e, rec))
        except (ValueError, ValidationError):
            findings += 1
        if e.prev_digest != prev:
            findings += 1
        expect = chain_digest(e.run_id, e.seq, e.kind, e.record_digest, e.prev_digest, e.created_at)
        if expect != e.digest:
            findings += 1
        prev = e.digest
    return len(entries), findings


def new_verify_records(store: Store, run_id: str) -> tuple[int, int]:
    report = verify_run(store, run_id, check_files=False)
    return report.n_records, len(report.findings)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store, run_id = build_ledger(Path(tmp) / "ledger.db", args.samples)
        print(f"built a ledger of {store.count(run_id):,} records in {time.perf_counter() - t0:.1f} s")
        best = {"old": float("inf"), "new": float("inf")}
        cpu = dict(best)
        for _ in range(args.repeats):
            for name, fn in (("old", old_verify_records), ("new", new_verify_records)):
                t, c = time.perf_counter(), time.process_time()
                n, findings = fn(store, run_id)
                best[name] = min(best[name], time.perf_counter() - t)
                cpu[name] = min(cpu[name], time.process_time() - c)
                if findings:
                    raise SystemExit(f"{name}: {findings} finding(s) on an untouched ledger")
        # CPU time too: on a shared machine the wall clock counts other people's work.
        for name in ("old", "new"):
            print(f"{name}: {n:,} records in {best[name]:.2f} s = {n / best[name]:,.0f} records/s "
                  f"(CPU {cpu[name]:.2f} s = {n / cpu[name]:,.0f} records/s of CPU)")
        print(f"ratio={best['old'] / best['new']:.2f}")


if __name__ == "__main__":
    main()
