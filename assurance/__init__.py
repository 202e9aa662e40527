"""assurance: auditable safety fine-tuning of language models.

The Python API (the command line ``assure`` is built on the same calls)::

    import assurance

    result = assurance.run("plan.yaml")            # or a Plan, or a dict with a plan file's contents
    gate = assurance.evaluate("release.yaml")      # a supplied model: no fine-tune, same battery and gate
    print(result.status, result.exit_code, result.packs)

    store = assurance.Store("sqlite:///assure-runs/evidence.db")
    report = assurance.verify_run(store, result.run_id)
    assert report.ok, [f.line() for f in report.findings]

Names are imported on first use (PEP 562), so ``import assurance`` loads no torch,
transformers or WeasyPrint; only starting a run or rendering a pack does. Their types are in
``__init__.pyi`` (this module names its submodules only as strings, so importing any of them never
comes back through here).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "run": "assurance.api",
    "evaluate": "assurance.api",
    "Plan": "assurance.plan",
    "PlanError": "assurance.plan",
    "load_plan": "assurance.plan",
    "RunResult": "assurance.pipeline",
    "Store": "assurance.evidence.store",
    "StoreError": "assurance.evidence.store",
    "verify_run": "assurance.evidence.verify",
    "VerifyReport": "assurance.evidence.verify",
}

__all__ = ["Plan", "PlanError", "RunResult", "Store", "StoreError", "VerifyReport", "__version__", "evaluate",
           "load_plan", "run", "verify_run"]


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'assurance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
