#!/usr/bin/env bash
# CI: the package as a user gets it. Builds the sdist and, from it, the wheel; installs the wheel
# (not editable) into a fresh venv with torch pinned by constraints.txt; then, from a folder outside
# the checkout, loads a stored ledger (one complete run written by the code at d406631) and verifies,
# gates and renders it with the installed `assure` alone. Fails if any template, data file or
# migration is missing from the wheel, or if anything is found through the checkout.
# About 1.5 minutes on two idle cores, most of it installing torch and the other dependencies (--no-compile:
# byte-compiling every module of them would cost more than the check itself).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
start=$SECONDS
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset PYTHONPATH

"$PYTHON" -m venv "$tmp/build-venv"
"$tmp/build-venv/bin/pip" install -q build >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
"$tmp/build-venv/bin/python" -m build --outdir "$tmp/dist" "$src" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; exit 1; }
wheel=$(ls "$tmp"/dist/assurance-*.whl)

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-compile -c "$src/constraints.txt" "$wheel" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; exit 1; }
echo "wheel-check: built and installed $(basename "$wheel") in $((SECONDS - start))s"

mkdir "$tmp/work"
cd "$tmp/work"  # nothing relative to the checkout can be found from here
py="$tmp/venv/bin/python"
assure="$tmp/venv/bin/assure"
db="sqlite:///$tmp/work/evidence.db"
export ASSURE_HOME="$tmp/work/runs" ASSURE_CACHE="$tmp/work/cache"

# The package comes from the venv, importing it loads nothing heavy, and every template and data file
# of the checkout is in it (templates/ as assurance/templates).
"$py" - "$tmp/venv" "$src" <<'PY'
import sys
from pathlib import Path

import assurance

venv, src = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
installed = Path(assurance.__file__).resolve().parent
assert installed.is_relative_to(venv), installed
heavy = {"torch", "transformers", "weasyprint", "matplotlib"} & set(sys.modules)
assert not heavy, f"import assurance loaded {heavy}"
from assurance.report.render import TEMPLATES_DIR

assert TEMPLATES_DIR == installed / "templates", TEMPLATES_DIR
wanted = {Path("templates") / p.relative_to(src / "templates") for p in (src / "templates").rglob("*") if p.is_file()}
wanted |= {p.relative_to(src / "assurance") for p in (src / "assurance").rglob("*")
           if p.is_file() and "__pycache__" not in p.parts}
missing = sorted(str(p) for p in wanted if not (installed / p).is_file())
assert not missing, f"not in the wheel: {missing}"
print(f"wheel-check: assurance {assurance.__version__} from {installed}; all {len(wanted)} source files present")
PY

# A stored run, loaded row for row into a new store (which the packaged migrations create).
run_id=$("$py" - "$src/tests/fixtures/legacy/ledger_d406631.jsonl.gz" "$db" <<'PY'
import gzip
import json
import sys

from sqlalchemy import insert
from sqlmodel import Session

from assurance import Store
from assurance.evidence.store import LedgerEntry

with gzip.open(sys.argv[1], "rt", encoding="utf-8") as fh:
    rows = [json.loads(line) for line in fh]
store = Store(sys.argv[2])
with Session(store.engine) as session:
    session.execute(insert(LedgerEntry), rows)
    session.commit()
print(rows[0]["run_id"])
PY
)

"$assure" verify "$run_id" --db "$db" --no-files
gate=0
"$assure" gate "$run_id" --db "$db" >/dev/null || gate=$?
[ "$gate" -eq 1 ] || { echo "wheel-check: gate exited $gate, expected 1 (the stored run is a FAIL)"; exit 1; }
# One regime: the regimes share the base templates, and the file check above covers every template.
pack=$("$assure" render "$run_id" --regime fca --db "$db" --out "$tmp/work/packs")
[ "$(head -c 5 "$pack")" = "%PDF-" ] || { echo "wheel-check: $pack is not a PDF"; exit 1; }
echo "wheel-check: rendered $(basename "$pack") ($(wc -c <"$pack") bytes)"
echo "wheel-check: OK in $((SECONDS - start))s"
