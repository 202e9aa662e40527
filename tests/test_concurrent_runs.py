"""Four whole `assure run` processes writing one ledger at once, on SQLite and on PostgreSQL.

tests/test_concurrency.py races the store's own writers; here the writers are the real command, start to
finish (provenance, evaluation, fine-tune, verdict, seal, pack), so every append a run makes, and the
migration of a new ledger by whichever process opens it first, is contended. No run may fail on the
ledger ("database is locked", a sequence conflict), no record may be lost, and every chain must verify.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _killed import write_plan
from _pg import cluster

from assurance.evidence.store import Store
from assurance.evidence.verify import verify_run

ROOT = Path(__file__).resolve().parents[1]
WRITERS = 4
LEDGER_FAILURES = ("database is locked", "IntegrityError", "Traceback", "not appended")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return cluster().new_database()


def test_four_concurrent_runs_lose_no_record(url, tmp_path, tiny_model_dir):
    # The resume tests' plan, two fine-tuning steps: about 15 s of CPU per run.
    plan = write_plan(tmp_path / "plan.yaml", tiny_model_dir, max_steps=2)
    env = {**os.environ, "ASSURE_HOME": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    children = [subprocess.Popen([sys.executable, "-m", "assurance.cli", "run", str(plan), "--db", url, "--json"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(WRITERS)]
    outcomes = [(child.returncode, out, err) for child in children for out, err in [child.communicate(timeout=600)]]
    for code, _out, err in outcomes:
        assert code in (0, 1), f"exit {code}:\n{err[-3000:]}"  # PASS or FAIL: the run completed
        assert not [f for f in LEDGER_FAILURES if f in err], err[-3000:]
    results = [json.loads(out) for _, out, _ in outcomes]
    assert [r["error"] for r in results] == [None] * WRITERS
    run_ids = [r["run_id"] for r in results]
    store = Store(url)
    assert sorted(store.run_ids()) == sorted(run_ids)
    kinds = []
    for run_id in run_ids:
        report = verify_run(store, run_id)
        assert report.ok and report.complete, (run_id, [f.line() for f in report.findings])
        rows = store.rows(run_id)
        assert [r.seq for r in rows] == list(range(len(rows)))
        kinds.append(Counter(r.kind for r in rows))
    # The same plan on the same model: every run holds the same records, so none lost one.
    assert all(k == kinds[0] for k in kinds) and kinds[0]["sample"] > 0 and kinds[0]["pack"] == 1
    assert store.count() == WRITERS * sum(kinds[0].values())
