"""The read-only commands start fast: `digest`, `verify`, `gate`, `show` and `runs` import no torch,
transformers, WeasyPrint or matplotlib (seconds of imports they never use), and neither does `import assurance`.

Each command runs as its own process (an earlier test in this process may have imported anything), on a real
ledger: the complete run written by the code at d406631, loaded into a new SQLite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _ledger_writers import load_legacy

from assurance.evidence.store import Store

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "weasyprint", "matplotlib")
# What `assure digest` loaded at d406631 and never used (0.56 s): the ledger's database layer and numpy.
LEDGER_STACK = ("sqlalchemy", "sqlmodel", "numpy", "jinja2", "alembic")

# At exit (typer ends with SystemExit), prints which of the watched modules were loaded.
REPORT = """
import atexit, json, sys
atexit.register(lambda: print("LOADED=" + json.dumps(sorted(set({watch!r}) & set(sys.modules))), file=sys.stderr))
"""
# Runs `assure ARGS...`.
ASSURE = """
sys.argv = ["assure", *sys.argv[1:]]
from assurance.cli import app
app()
"""


def _run(*args: str, code: str = ASSURE, watch: tuple[str, ...] = HEAVY) -> tuple[subprocess.CompletedProcess, list]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    program = REPORT.format(watch=watch) + code
    done = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, env=env,
                          timeout=120)
    marker = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    assert marker, done.stderr
    return done, json.loads(marker[-1][len("LOADED="):])


@pytest.fixture(scope="module")
def legacy_db(tmp_path_factory) -> tuple[str, str]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('fast') / 'evidence.db'}")
    return store.url, load_legacy(store)


@pytest.mark.parametrize("command", ["digest", "verify --no-files", "gate", "show", "show --json", "runs",
                                     "export --format jsonl"])
def test_read_only_commands_import_nothing_heavy(command, legacy_db, tmp_path):
    url, run_id = legacy_db
    if command == "digest":
        (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
        args = ["digest", str(tmp_path)]
    elif command == "runs":
        args = ["runs", "--db", url]
    else:
        args = [*command.split(), run_id, "--db", url]
    done, loaded = _run(*args)
    # The command really ran: verify says INTACT (exit 0; the run's artifacts are gone, hence --no-files),
    # the stored run gates FAIL (exit 1), the rest exit 0.
    assert done.returncode == (1 if command == "gate" else 0), done.stderr
    assert run_id[:8] in done.stdout or command == "digest", done.stdout[-500:]
    assert loaded == [], f"assure {command} imported {loaded}"


def test_digest_loads_neither_the_ledger_stack_nor_anything_heavy(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    done, loaded = _run("digest", str(tmp_path / "a.bin"), watch=HEAVY + LEDGER_STACK)
    assert done.stdout.split()[0] == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert loaded == []


def test_the_check_sees_a_heavy_import():
    # The same harness, with a command that does load one of the watched modules, reports it.
    done, loaded = _run("--help", code="import matplotlib\n" + ASSURE)
    assert done.returncode == 0 and loaded == ["matplotlib"], done.stderr


def test_import_assurance_and_its_api_names_stay_light():
    code = """
import assurance
assert callable(assurance.run) and callable(assurance.verify_run) and assurance.Store.__name__ == "Store"
"""
    done, loaded = _run(code=code)
    assert done.returncode == 0, done.stderr
    assert loaded == []
