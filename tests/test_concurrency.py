"""Several processes writing one ledger: eight sign-offs on one run at once, four writers each writing
their own runs, on one SQLite file and on one PostgreSQL database. No record may be lost, every chain
must verify, and no writer may see an IntegrityError or "database is locked".

The writers are separate processes (tests/_ledger_writers.py) released together by a barrier, each
opening the (new) ledger itself, so opening and migrating a new ledger is contended too.
"""

from __future__ import annotations

import multiprocessing

import pytest
from _ledger_writers import run_writer, sealed_run, sign_off_worker, signoff
from _pg import cluster

from assurance.evidence import store as store_mod
from assurance.evidence.store import Store, StoreError, new_run_id
from assurance.evidence.verify import verify_run

SIGNERS, SIGNOFFS_EACH = 8, 3
WRITERS, RUNS_EACH, BATCHES, BATCH = 4, 2, 6, 25


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return cluster().new_database()


def _in_processes(target, jobs: list[tuple], parties: int) -> list[dict]:
    # Forked from a clean server process that imported the ledger code once: no engine, connection or
    # lock of this process is inherited (as with spawn), and no worker pays for the imports again (~2 s
    # each on a busy 2-core box). (Python 3.11's forkserver ignores sys.path, so it cannot preload
    # tests/_ledger_writers itself; each worker imports that small module.)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["assurance.evidence.seal", "assurance.evidence.verify"])
    with ctx.Manager() as manager, ctx.Pool(parties) as pool:
        barrier = manager.Barrier(parties)
        results = [pool.apply_async(target, (*job, barrier)) for job in jobs]
        return [r.get(timeout=300) for r in results]


def test_eight_concurrent_signoffs_on_one_run_all_land(url):
    run_id = new_run_id()
    sealed_run(Store(url), run_id)
    before = Store(url).count(run_id)
    results = _in_processes(sign_off_worker, [(url, run_id, f"signer {i}", SIGNOFFS_EACH) for i in range(SIGNERS)],
                            SIGNERS)
    assert [r["error"] for r in results] == [None] * SIGNERS, "\n".join(r["error"] or "" for r in results)
    store = Store(url)
    signoffs = store.records(run_id, kinds=["signoff"])
    assert len(signoffs) == SIGNERS * SIGNOFFS_EACH == store.count(run_id) - before
    # Every signer's decisions are there, in the order that signer made them.
    for i in range(SIGNERS):
        notes = [s.note for s in signoffs if s.name == f"signer {i}"]
        assert notes == [f"decision {n}" for n in range(SIGNOFFS_EACH)]
    report = verify_run(store, run_id, check_files=False)
    assert report.ok and report.complete, report.findings


def test_four_concurrent_writers_lose_no_record(url):
    jobs = [(url, [new_run_id() for _ in range(RUNS_EACH)], BATCHES, BATCH) for _ in range(WRITERS)]
    results = _in_processes(run_writer, jobs, WRITERS)  # the ledger does not exist until they open it
    assert [r["error"] for r in results] == [None] * WRITERS, "\n".join(r["error"] or "" for r in results)
    store = Store(url)
    runs = [run_id for job in jobs for run_id in job[1]]
    assert sorted(store.run_ids()) == sorted(runs)
    per_run = 1 + BATCHES * BATCH + 1 + 2  # started, metrics, verdict, evidence and packs seals
    assert store.count() == len(runs) * per_run
    for run_id in runs:
        report = verify_run(store, run_id, check_files=False)
        assert report.ok and report.complete and report.n_records == per_run, (run_id, report.findings)


# -- the retry itself, made to happen on purpose ------------------------------------------------------

def _stale_head(times: int, monkeypatch) -> list[int]:
    """Make the append read a stale chain head ``times`` times (as if another writer just appended)."""
    real, calls = store_mod._head, []

    def head(conn, run_id):
        calls.append(1)
        return None if len(calls) <= times else real(conn, run_id)

    monkeypatch.setattr(store_mod, "_head", head)
    monkeypatch.setattr(store_mod, "_pause", lambda _attempt: None)
    return calls


def test_a_sequence_conflict_is_retried_on_the_new_head(url, monkeypatch):
    store = Store(url)
    run_id = new_run_id()
    sealed_run(store, run_id)
    calls = _stale_head(2, monkeypatch)
    store.append(run_id, [signoff("J. Smith", 0), signoff("A. Jones", 1)])
    assert len(calls) == 3
    assert [e.seq for e in store.entries(run_id)] == list(range(9))
    assert verify_run(store, run_id, check_files=False).ok


def test_endless_conflicts_end_in_a_clear_error(url, monkeypatch):
    store = Store(url)
    run_id = new_run_id()
    sealed_run(store, run_id)
    n = store.count(run_id)
    calls = _stale_head(10**6, monkeypatch)
    with pytest.raises(StoreError, match=f"not appended: other writers took the next sequence number "
                                         f"{store_mod.APPEND_ATTEMPTS} times"):
        store.append(run_id, [signoff("J. Smith", 0)])
    assert len(calls) == store_mod.APPEND_ATTEMPTS and store.count(run_id) == n
