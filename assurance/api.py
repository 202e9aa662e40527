"""The Python API behind ``assurance.run``: the same pipeline as ``assure run``, called from code.

Nothing heavy is imported here at module level: the pipeline (torch, transformers) loads only when a run
starts, so ``import assurance`` stays cheap for tools that only read ledgers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .inputs import Progress
    from .pipeline import RunResult
    from .plan import Plan

def as_plan(plan: Plan | Mapping[str, Any] | str | os.PathLike[str], *,
            evaluate_only: bool = False) -> tuple[Plan, Path | None]:
    """The validated plan and the file it came from (None for a Plan object or a mapping).

    A path is read as ``assure run`` reads it (relative paths in it resolve against its folder); a
    mapping is validated as a plan file's contents would be, its relative paths resolving against the
    current directory. ``evaluate_only`` sets ``finetune.enabled: false`` first, as ``assure evaluate``
    does. Raises ``PlanError`` naming each bad field.
    """
    from .plan import Plan, PlanError, load_plan, plan_from_dict, resolve_paths

    if isinstance(plan, Plan):
        if not evaluate_only:
            return plan, None
        plan = plan.model_dump(mode="python")
    if isinstance(plan, Mapping):
        data = dict(plan)
        if evaluate_only:
            finetune = data.get("finetune")
            data["finetune"] = {**(finetune if isinstance(finetune, Mapping) else {}), "enabled": False}
        return resolve_paths(plan_from_dict(data, source="plan"), Path.cwd()), None
    if isinstance(plan, (str, os.PathLike)):
        path = Path(plan)
        return load_plan(path, evaluate_only=evaluate_only), path
    raise PlanError(f"a plan is a Plan, a mapping or a path to a plan file, not {type(plan).__name__}")


def run(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    *,
    store_url: str | None = None,
    sign_key: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    run_root: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Run a plan end to end, as ``assure run PLAN`` does, and return its ``RunResult``.

    ``plan`` is a ``Plan``, a mapping with a plan file's contents, or the path of a plan file.
    ``store_url`` is the evidence store (default: ``$ASSURE_DB``, else ``sqlite:///assure-runs/evidence.db``);
    ``sign_key`` an Ed25519 private key (PEM) to sign the manifest; ``run_root`` the folder that holds the
    run's folder (default: ``$ASSURE_HOME``, else ``assure-runs``); ``progress`` receives stage progress
    (default: silent).

    The result's ``status`` is ``PASS``, ``FAIL`` or ``ERROR`` and ``exit_code`` the code ``assure run``
    would exit with. Bad input raises before anything is written: ``PlanError`` for the plan, and the
    data, model and battery errors ``assure run`` reports as exit 2.
    """
    return _start(*as_plan(plan), store_url=store_url, sign_key=sign_key, progress=progress, run_root=run_root)


def evaluate(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    *,
    store_url: str | None = None,
    sign_key: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    run_root: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Evaluate and gate a supplied model without fine-tuning it, as ``assure evaluate PLAN`` does.

    The plan's ``target`` (a model folder, a base model with a PEFT adapter, or an OpenAI-compatible
    endpoint; default: its ``model``) gets the battery, and its ``baseline``, if any, the same battery as the
    "base" stage. Arguments and result are those of ``run``; ``finetune.enabled`` is set to false.
    """
    return _start(*as_plan(plan, evaluate_only=True), store_url=store_url, sign_key=sign_key, progress=progress,
                  run_root=run_root)


def _start(plan: Plan, path: Path | None, *, store_url: str | None, sign_key: str | os.PathLike[str] | None,
           progress: Progress | None, run_root: str | os.PathLike[str] | None) -> RunResult:
    """The pipeline on a validated plan: what ``run`` and ``evaluate`` share."""
    from .pipeline import run_pipeline

    return run_pipeline(plan, store_url=store_url, plan_path=path, progress=progress,
                        sign_key=Path(sign_key) if sign_key is not None else None,
                        run_root=Path(run_root) if run_root is not None else None)
