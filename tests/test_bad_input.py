"""Bad input is exit 2 and one line naming what is wrong, never a traceback or exit 1 (issue 11, item 7);
an unexpected error is exit 3 and one line. One test per class of bad input, through the commands a user types."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.hashing import json_digest
from assurance.evidence.records import RunStarted
from assurance.evidence.store import Store, new_run_id, utc_now

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def _one_error_line(res, *names: str) -> str:
    """The command exited 2 with exactly one line, an error naming each of ``names``, and no traceback."""
    # transformers draws its own "Loading weights" bar while the model loads; anything else counts
    lines = [line for line in res.output.splitlines() if line.strip() and "Loading weights" not in line]
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty ASSURE_HOME; the tests check that nothing appears in it."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("ASSURE_HOME", str(h))
    monkeypatch.delenv("ASSURE_DB", raising=False)
    return h


@pytest.mark.parametrize(("body", "field", "problem"), [
    ("seed: -1", "seed", ">= 0"),
    ("seed: 99999999999999999999999", "seed", "<= 4294967295"),
    ("finetune:\n  max_steps: 1000000000000", "finetune.max_steps", "<= 10000000"),
    ("finetune:\n  lr: 1e400", "finetune.lr", "finite"),
    ("finetune:\n  lr: .nan", "finetune.lr", "finite"),
    ("battery:\n  sampling:\n    temperature: .inf", "battery.sampling.temperature", "finite"),
    ("battery:\n  comparison:\n    seed: -5", "battery.comparison.seed", ">= 0"),
    ("battery:\n  suite_limits:\n    refusal: 90071992547409910", "battery.suite_limits", "too large to record"),
])
def test_out_of_range_numbers_are_refused_naming_the_field(tmp_path, home, body, field, problem):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"name: t\n{body}\n")
    line = _one_error_line(runner.invoke(app, ["run", str(plan), "--db", str(tmp_path / "ev.db")]),
                           str(plan), field + ":", problem)
    assert "Traceback" not in line
    assert not (tmp_path / "ev.db").exists() and list(home.iterdir()) == []  # nothing written, no run folder


def test_binary_and_too_deeply_nested_plans_are_one_line_naming_the_file(tmp_path, home):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: a\x00b\x01\x02\n")  # valid UTF-8, but not text
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 3000 + "]" * 3000 + "\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("".join(" " * i + "k:\n" for i in range(3000)))
    _one_error_line(runner.invoke(app, ["run", str(binary)]), str(binary), "not a YAML text file")
    for plan in (deep, nested):
        _one_error_line(runner.invoke(app, ["evaluate", str(plan)]), str(plan), "nested too deeply")
    assert list(home.iterdir()) == []


def test_cuda_without_a_gpu_is_refused_before_anything_is_written(tmp_path, home, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: t\ndevice: cuda\n")
    _one_error_line(runner.invoke(app, ["evaluate", str(plan), "--db", str(tmp_path / "ev.db")]),
                    "device:", "no CUDA GPU")
    assert not (tmp_path / "ev.db").exists() and list(home.iterdir()) == []


def test_a_bad_evidence_store_or_home_is_one_line_naming_the_path(tmp_path, home, monkeypatch):
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    folder = tmp_path / "folder.db"
    folder.mkdir()
    _one_error_line(runner.invoke(app, ["runs", "--db", str(junk)]), str(junk), "not a database")
    _one_error_line(runner.invoke(app, ["show", "--db", str(folder)]), str(folder), "a folder")
    Store(str(tmp_path / "ok.db"))  # a real, empty ledger, then opened read-only
    readonly = f"sqlite:///file:{tmp_path / 'ok.db'}?mode=ro&uri=true"
    with pytest.raises(Exception, match="cannot append to run r1: attempt to write a readonly database"):
        Store(readonly).append("r1", [_started("r1", "t")])
    if os.geteuid() != 0:  # root writes through file permissions
        ro = tmp_path / "ro.db"
        Store(str(ro))
        ro.chmod(0o444)
        plan = tmp_path / "plan.yaml"
        plan.write_text("name: t\n")
        _one_error_line(runner.invoke(app, ["run", str(plan), "--db", str(ro)]), str(ro), "read-only")
    # ASSURE_HOME under a file: neither the default store nor a run folder can be made there.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ASSURE_HOME", str(blocker / "home"))
    _one_error_line(runner.invoke(app, ["runs"]), str(blocker / "home"))
    from assurance.evidence.store import StoreError, make_run_dir

    with pytest.raises(StoreError, match="cannot make the run's folder"):
        make_run_dir(blocker / "home", "r1")


def test_a_run_whose_home_is_unwritable_leaves_nothing(tmp_path, home, monkeypatch):
    """Through `assure run` on the tiny model: the store opens, the run folder cannot be made, exit 2."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ASSURE_HOME", str(blocker / "home"))
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: t\ndevice: cpu\nbattery:\n  limit_per_category: 1\n")
    db = tmp_path / "ev.db"
    res = runner.invoke(app, ["run", str(plan), "--db", str(db), "--quiet"])
    _one_error_line(res, str(blocker / "home"), "cannot make the run's folder")
    assert Store(str(db)).run_ids() == []  # nothing recorded


def test_keygen_and_gate_policy_errors_are_one_line(tmp_path):
    missing = tmp_path / "no-such-folder" / "k.pem"
    _one_error_line(runner.invoke(app, ["keygen", str(missing)]), str(missing), "no folder")
    assert not missing.parent.exists()
    db = tmp_path / "ev.db"
    Store(str(db)).append("r1", [_started("r1", "t")])
    binary = tmp_path / "policy.yaml"
    binary.write_bytes(b"policy:\x00\xff\xfe\x00")
    _one_error_line(runner.invoke(app, ["gate", "r1", "--db", str(db), "--policy", str(binary)]), str(binary))
    gone = tmp_path / "gone.yaml"
    _one_error_line(runner.invoke(app, ["gate", "r1", "--db", str(db), "--policy", str(gone)]), str(gone),
                    "not found")


def _started(run_id: str, name: str) -> RunStarted:
    plan = {"name": name}
    return RunStarted(run_id=run_id, plan=plan, plan_digest=json_digest(plan), tool_version="test",
                      started_at=utc_now())


def test_show_and_runs_print_a_hostile_run_name_escaped(tmp_path):
    db = tmp_path / "ev.db"
    rid = new_run_id()
    name = "evil\x1b[2J\x1b]0;pwned\x07 [bold red]FAKE PASS[/] \x9b"
    Store(str(db)).append(rid, [_started(rid, name)])
    for args in (["show", rid[:8]], ["runs"]):
        res = runner.invoke(app, [*args, "--db", str(db)], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert not any(c in res.output for c in "\x1b\x07\x9b"), repr(res.output)
        assert "\\x1b[2J" in res.output and "[bold red]FAKE PASS[/]" in res.output  # shown as written


def test_an_unexpected_error_is_exit_3_and_one_line(tmp_path):
    """A ledger row whose payload is not JSON (written past the store) breaks `show` unexpectedly."""
    db = tmp_path / "ev.db"
    Store(str(db))
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO ledger (run_id, seq, kind, payload, record_digest, prev_digest, digest, "
                     "created_at) VALUES ('r1', 0, 'run_started', 'not json', 'x', 'x', 'x', 'now')")
    cmd = [sys.executable, "-m", "assurance.cli", "show", "r1", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSURE_DEBUG": ""}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error: JSONDecodeError: "), res.stderr
    assert "please report" in lines[0]
    debug = subprocess.run(cmd, capture_output=True, text=True, env={**env, "ASSURE_DEBUG": "1"}, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "JSONDecodeError" in debug.stderr
