# The two commands of the README: `make demo` and `make test` (and `make lint`, which CI runs first).
# All set everything up first, so they work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo readme-table test lint schema bench clean

setup: $(STAMP)

# torch is pinned through constraints.txt in the same pip call, so no
# dependency can pull a CUDA build in behind our back.
$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/assure demo

# The README's demo table, rewritten from the last `make demo`'s own results file (never by hand).
readme-table: setup
	$(PY) -m assurance.demo_report $${ASSURE_HOME:-assure-runs}/demo-results.json --readme README.md

test: setup
	$(PY) -m pytest

# Settings in pyproject.toml ([tool.ruff], [tool.mypy]); both must report nothing.
# mypy runs even when ruff found something, so one run lists everything to fix.
lint: setup
	status=0; \
	$(VENV)/bin/ruff check assurance benchmarks || status=1; \
	$(PY) -m mypy assurance || status=1; \
	exit $$status

schema: setup
	$(VENV)/bin/assure schema

bench: setup
	$(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) benchmarks/digest.py
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/finetune.py

clean:
	rm -rf $(VENV) assure-runs .pytest_cache .mypy_cache .ruff_cache
