"""Everything a run reads, checked and loaded before the first record is written.

Bad input (plan, model folder, dataset row, benchmark file, judge) raises a
clear error here, so the evidence store is never touched by a run that could
not start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from .backends import resolve_backend, stage_backends
from .battery.builtin import battery_from_spec
from .battery.judges import JudgeError
from .battery.wiring import build_harm_judge, build_judges, load_extra_suites, load_judge_labels, over_refusal_judge
from .distributed import start
from .evidence.environment import capture_environment
from .evidence.hashing import TreeDigest, tree_digest
from .evidence.records import ArtifactRecord, EnvironmentRecord, SuppliedModelRecord
from .finetune.augment import load_triplets
from .finetune.chat_data import builtin_path, load_chat_jsonl
from .finetune.recipes import data_sources
from .models.loading import describe_accelerator, resolve_device, resolve_model_path
from .models.sharded import load_weights
from .plan import Plan, PlanError
from .prepared import Prepared
from .profile_file import load_profile
from .targets import supplied_models


class Progress(Protocol):
    """How the pipeline tells a person what it is doing (rich bars, or nothing)."""

    def stage(
        self, title: str, total: int | None = None,
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...

    def note(self, text: str) -> None: ...


def _no_advance(n: int = 1) -> None:
    """Advancing a stage that nobody watches does nothing."""


class SilentProgress:
    @contextlib.contextmanager
    def stage(self, title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield _no_advance

    def note(self, text: str) -> None:
        pass


class CheckedInputs(NamedTuple):
    """Every input a run reads except the model weights, checked (``check_inputs``)."""

    profile: Any
    battery: Any
    extra: list
    judge_labels: list
    supplied: dict
    safety: list
    utility: list | None
    device: torch.device
    dtype: torch.dtype
    backends: dict
    judges: list
    benign_judge: Any
    harm_judge: Any


def check_inputs(plan: Plan, *, read_profile: bool = True) -> CheckedInputs:
    """Everything ``prepare`` checks before it loads a model (``assure run --dry-run`` stops here).

    The organisation profile is read first (it is cheap, and a typo in it should not wait for a model to
    load); ``read_profile=False`` skips it for a resumed run, which has its profile in the ledger already."""
    profile = load_profile(plan.report.profile) if read_profile and plan.report.profile else None
    battery = battery_from_spec(plan.battery)
    extra = load_extra_suites(plan.battery.extra_suites, per_category=plan.battery.limit_per_category)
    judge_labels = load_judge_labels(plan.battery.judge_validation)
    supplied = supplied_models(plan)  # evaluate-only: the folders are checked here, before anything is written
    safety, utility = _finetune_data(plan) if plan.finetune.enabled else ([], None)
    if plan.stress.enabled:
        load_chat_jsonl(plan.stress.data)
    device, dtype = resolve_device(plan.device)
    backends = stage_backends(plan, resolve_backend(plan.battery.backend, device))
    if supplied:  # only the supplied stages are evaluated; an endpoint generates over HTTP
        backends = {stage: "endpoint" if s.model_path is None else backends[stage] for stage, s in supplied.items()}
    judges, benign_judge, harm_judge = _build_judges(plan, device, dtype)
    return CheckedInputs(profile, battery, extra, judge_labels, supplied, safety, utility, device, dtype,
                         backends, judges, benign_judge, harm_judge)


def prepare(plan: Plan, progress: Progress, *, read_profile: bool = True) -> Prepared:
    """Validate and load every input; raises a clear error before anything is written.

    Under a multi-process launcher the process group is joined first, so each rank's judges and model
    land on its own GPU (``distributed.start``)."""
    start(resolve_device(plan.device)[0])
    c = check_inputs(plan, read_profile=read_profile)
    profile, battery, extra, judge_labels, supplied, safety, utility, device, dtype = c[:9]
    backends, judges, benign_judge, harm_judge = c[9:]
    ranks, device = start(device)
    if device.type == "cpu" and plan.cpu_threads:
        torch.set_num_threads(plan.cpu_threads)
    shards = ranks.for_weights(plan.model.parallel)
    if supplied:
        target = supplied["tuned"]
        with progress.stage(f"Loading the supplied model ({target.spec.kind})"):
            model, tokenizer = target.load(device, dtype, shards=shards)
        model_path = target.model_path or Path()
    else:
        with progress.stage("Loading the base model" + (f" in {ranks.world} shards" if shards else "")):
            model_path = resolve_model_path(plan.model.path)
            model, tokenizer = load_weights(model_path, shards=shards, device=device, dtype=dtype,
                                            allow_pickle=plan.model.allow_pickle,
                                            trust_remote_code=plan.model.trust_remote_code)
    return Prepared(plan, model_path, safety, utility, battery, model, tokenizer, device, dtype,
                    judges=judges, benign_judge=benign_judge, extra=extra, backends=backends, harm_judge=harm_judge,
                    judge_labels=judge_labels, profile=profile, supplied=supplied, ranks=ranks)


def _finetune_data(plan: Plan) -> tuple[list, list | None]:
    """The fine-tune's safety and utility examples, every data file it names checked."""
    safety = load_chat_jsonl(plan.finetune.safety_data)
    utility = load_chat_jsonl(plan.finetune.utility_data) if plan.finetune.utility_data else None
    if plan.finetune.task_data:
        load_chat_jsonl(plan.finetune.task_data)
    if "dataset:triplets" in data_sources(plan.finetune):
        load_triplets(plan.finetune.triplet_data)
    return safety, utility


def _build_judges(plan: Plan, device, dtype):
    """The plan's judges, checked before anything is written; a bad spec is a PlanError naming it."""
    dev, dt = str(device), str(dtype).replace("torch.", "")
    try:
        judges = build_judges(plan.battery.judges, device=dev, dtype=dt)
        harm = build_harm_judge(plan.battery.harm_judge, device=dev, dtype=dt)
    except JudgeError as err:
        raise PlanError(str(err)) from None
    return judges, over_refusal_judge(judges), harm


def input_artifacts(prep: Prepared, plan_path: Path | None) -> list[ArtifactRecord]:
    """The digests of everything the run reads: base model, data sets, benchmark files, judges, plan."""
    plan = prep.plan
    sources = data_sources(plan.finetune) if plan.finetune.enabled else {}
    if plan.stress.enabled:
        sources["dataset:stress"] = plan.stress.data
    if prep.supplied:  # evaluate-only: what was supplied, the target first (its model folder is ``base_model``)
        arts = [artifact_record(role, path) for stage in ("tuned", "base") if stage in prep.supplied
                for role, path in prep.supplied[stage].hashed()]
    else:
        arts = [artifact_record("base_model", prep.model_path)]
    arts += [artifact_record(role, _data_path(spec)) for role, spec in sources.items()]
    arts += [artifact_record(f"dataset:benchmark:{e.benchmark}", e.path) for e in prep.extra]
    # A labels file and a model judge's folder were hashed when prepare() read them: reuse that, do not hash twice.
    arts += [artifact_record(f"dataset:judge_labels:{Path(ls.path).name}", ls.path,
                             TreeDigest(ls.digest, False, Path(ls.path).stat().st_size)) for ls in prep.judge_labels]
    arts += [artifact_record(f"judge_model:{j.id}", j.path, j.model_tree)
             for j in prep.judges if hasattr(j, "model_tree")]
    harm: Any = prep.harm_judge  # a model judge (with a folder) or another kind
    if hasattr(harm, "model_tree") and not any(j is harm or getattr(j, "path", None) == harm.path for j in prep.judges):
        arts.append(artifact_record(f"judge_model:{harm.id}", harm.path, harm.model_tree))
    if plan.battery.prefill_responses is not None:
        arts.append(artifact_record("dataset:prefill-responses", plan.battery.prefill_responses.path))
    if plan_path:
        arts.append(artifact_record("plan", plan_path))
    return arts


def supplied_records(prep: Prepared, arts: list[ArtifactRecord]) -> list[SuppliedModelRecord]:
    """Evaluate-only: one record per supplied model (target first), with the digests in ``arts``."""
    return [prep.supplied[stage].record(arts) for stage in ("tuned", "base") if stage in prep.supplied]


def artifact_record(role: str, path: Path | str, tree: TreeDigest | None = None) -> ArtifactRecord:
    """The record of one input or output: its resolved path and digest (``tree`` when already taken)."""
    d = tree or tree_digest(path)
    return ArtifactRecord(role=role, path=str(Path(path).resolve()), digest=d.digest, is_dir=d.is_dir,
                          size_bytes=d.size_bytes, files=d.files)


def _data_path(spec: str) -> Path:
    return builtin_path(spec.split(":", 1)[1]) if spec.startswith("builtin:") else Path(spec)


def environment_record(prep: Prepared) -> EnvironmentRecord:
    """The software, hardware and source state of the process doing the run."""
    return capture_environment(str(prep.device), str(prep.dtype).replace("torch.", ""),
                               describe_accelerator(prep.device))
