"""The one place that knows the order of the stages.

plan -> provenance -> evaluate base -> safety fine-tune -> evaluate tuned
-> verdict -> seal -> packs.

Everything that can be checked before the run is checked first (plan, model
folder, datasets, battery), and only then is anything written, so bad input
leaves the evidence store untouched. Stages talk through evidence records;
the packs are rendered from the ledger alone.

Each stage appends its records in one transaction, so a killed run's chain ends
on a stage boundary; ``resume.py`` reads which stages are there and hands
``run_stages`` a ``Done`` that makes it skip them (``assure run --resume``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

from . import __version__
import torch

from .battery.items import Battery, battery_from_spec
from .battery.runner import evaluate
from .evidence.environment import capture_environment
from .evidence.hashing import json_digest, tree_digest
from .evidence.records import (
    ArtifactRecord,
    FinetuneRecord,
    MetricRecord,
    PackRecord,
    Record,
    RunFailed,
    RunStarted,
)
from .evidence.seal import seal_run
from .evidence.store import Store, new_run_id, runs_home, utc_now
from .plan import Plan
from .policy import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, decide


class Progress(Protocol):
    """How the pipeline tells a person what it is doing (rich bars, or nothing)."""

    def stage(self, title: str, total: int | None = None) -> ContextManager[Callable[[int], None]]: ...

    def note(self, text: str) -> None: ...


class SilentProgress:
    @contextlib.contextmanager
    def stage(self, title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def note(self, text: str) -> None:
        pass


@dataclass
class RunResult:
    run_id: str
    status: str
    """PASS, FAIL or ERROR."""
    exit_code: int
    store_url: str
    run_dir: Path
    packs: dict[str, Path] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    metrics: list[MetricRecord] = field(default_factory=list)
    error: str | None = None


@dataclass
class Prepared:
    """Everything checked and loaded before the first record is written."""

    plan: Plan
    model_path: Path
    safety: list
    utility: list | None
    battery: Battery
    model: object
    tokenizer: object
    device: object
    dtype: object
    judges: list = field(default_factory=list)
    """The plan's refusal judges, built and checked; the first is the primary judge."""
    benign_judge: object = None
    """Scores benign prompts when the primary judge measures harm (``wiring.over_refusal_judge``)."""
    extra: list = field(default_factory=list)
    """Public benchmark suites run beside the battery (``wiring.ExtraSuite``)."""
    greedy: dict = field(default_factory=dict)
    """Stage -> its greedy refusal and prefill samples, kept for the paired stage comparison."""
    backends: dict = field(default_factory=dict)
    """Evaluated stage -> the generation backend it uses (``stage_backends``)."""


def prepare(plan: Plan, progress: Progress) -> Prepared:
    """Validate and load every input; raises a clear error before anything is written."""
    from .finetune.augment import load_triplets
    from .finetune.chat_data import load_chat_jsonl
    from .finetune.recipes import data_sources
    from .models.loading import load_model, resolve_device, resolve_model_path

    from .battery.wiring import load_extra_suites

    battery = battery_from_spec(plan.battery)
    extra = load_extra_suites(plan.battery.extra_suites, per_category=plan.battery.limit_per_category)
    safety = load_chat_jsonl(plan.finetune.safety_data)
    utility = load_chat_jsonl(plan.finetune.utility_data) if plan.finetune.utility_data else None
    if "dataset:triplets" in data_sources(plan.finetune):
        load_triplets(plan.finetune.triplet_data)
    if plan.stress.enabled:
        load_chat_jsonl(plan.stress.data)
    device, dtype = resolve_device(plan.device)
    backends = stage_backends(plan, resolve_backend(plan.battery.backend, device))
    if device.type == "cpu" and plan.cpu_threads:
        torch.set_num_threads(plan.cpu_threads)
    judges, benign_judge = _build_judges(plan, device, dtype)
    with progress.stage("Loading the base model"):
        model_path = resolve_model_path(plan.model.path)
        model, tokenizer = load_model(
            model_path, device=device, dtype=dtype,
            allow_pickle=plan.model.allow_pickle, trust_remote_code=plan.model.trust_remote_code,
        )
    return Prepared(plan, model_path, safety, utility, battery, model, tokenizer, device, dtype,
                    judges=judges, benign_judge=benign_judge, extra=extra, backends=backends)


def resolve_backend(requested: str, device) -> str:
    """``transformers`` or ``vllm`` for the plan's ``battery.backend`` on ``device``; a PlanError when vLLM is
    required but cannot be used (raised in ``prepare``, so nothing is written)."""
    import importlib.util

    from .models import vllm_backend
    from .plan import PlanError

    if requested == "transformers":
        return "transformers"
    usable = device.type == "cuda" and vllm_backend.available()
    if requested == "vllm" and not usable:
        why = ("the run's device is CPU" if device.type != "cuda"
               else "the vllm package is not installed" if importlib.util.find_spec("vllm") is None
               else "no CUDA device is available")
        raise PlanError(f"battery.backend: 'vllm' was requested but cannot be used ({why}); vLLM needs the vllm "
                        "package and a CUDA GPU. Use backend 'auto' (vLLM when possible) or 'transformers'")
    return "vllm" if usable else "transformers"


def stage_backends(plan: Plan, backend: str) -> dict[str, str]:
    """Evaluated stage -> its generation backend. vLLM loads weights from disk, so a LoRA stress model (merged
    in memory, never saved whole) falls back to transformers."""
    stages = ["base", "tuned"] + (["stress"] if plan.stress.enabled else [])
    out = {s: backend for s in stages}
    if backend == "vllm" and plan.stress.enabled and plan.stress.method != "full":
        out["stress"] = "transformers"
    return out


def _generation_settings(prep: Prepared) -> dict:
    """The decoding settings recorded in the battery record, with the backend each stage uses."""
    from .models.generate import generation_settings

    plan = prep.plan
    gen = generation_settings(prep.model, prep.tokenizer, max_new_tokens=plan.battery.max_new_tokens,
                              batch_size=plan.battery.batch_size)
    gen |= {"backend_requested": plan.battery.backend, "backend_by_stage": dict(prep.backends)}
    if "vllm" in prep.backends.values():
        import vllm

        used = set(prep.backends.values())
        gen |= {"backend": "vllm" if used == {"vllm"} else "vllm+transformers", "vllm_version": vllm.__version__,
                "batch_size_note": "vLLM schedules its own batches; batch_size applies to transformers stages only"}
    return gen | {"limit_per_category": plan.battery.limit_per_category}


def _generator(prep: Prepared, stage: str, weights: tuple[Path | str, Path | str | None] | None):
    """A vLLM generator for ``stage`` when it uses vLLM, from ``weights`` = (model folder, adapter folder or
    None) on disk; None means the transformers backend."""
    if prep.backends.get(stage) != "vllm" or weights is None:
        return None
    from .models.vllm_backend import VLLMGenerator

    model_path, adapter = weights
    return VLLMGenerator(model_path, dtype=str(prep.dtype).removeprefix("torch."), seed=prep.plan.seed,
                         adapter_path=adapter)


def _free(generator) -> None:
    """Release a vLLM engine's GPU memory before the next stage needs it."""
    if generator is None:
        return
    import gc

    del generator
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _build_judges(plan: Plan, device, dtype):
    """The plan's judges, checked before anything is written; a bad spec is a PlanError naming it."""
    from .battery.judges import JudgeError
    from .battery.wiring import build_judges, over_refusal_judge
    from .plan import PlanError

    try:
        judges = build_judges(plan.battery.judges, device=str(device), dtype=str(dtype).replace("torch.", ""))
    except JudgeError as err:
        raise PlanError(str(err)) from None
    return judges, over_refusal_judge(judges)


def _resolve_battery_paths(plan: Plan, plan_path: Path | None) -> Plan:
    """Judge model folders and benchmark files relative to the plan's folder, as ``plan.resolve_paths`` does
    for the other paths (so the recorded plan names absolute paths)."""
    from .battery.wiring import resolve_path

    if plan_path is None:
        return plan
    base = Path(plan_path).resolve().parent
    plan = plan.model_copy(deep=True)
    for spec in plan.battery.extra_suites:
        spec.path = str(resolve_path(spec.path, base))
    for spec in plan.battery.judges:
        if spec.path is not None:
            spec.path = str(resolve_path(spec.path, base))
    return plan


def _battery_record(prep: Prepared, judge, gen: dict):
    from .battery.runner import battery_record
    from .battery.wiring import judge_entries

    rec = battery_record(prep.battery, judge, gen, prep.plan.battery.sampling)
    digests = {e.suite.name: tree_digest(e.path).digest for e in prep.extra}
    update = {"judges": rec.judges + judge_entries(prep.judges, prep.benign_judge),
              "extra_suites": [e.entry(digests[e.suite.name]) for e in prep.extra]}
    if prep.extra:
        update["generation"] = rec.generation | {"n_probes_extra": sum(e.suite.n_probes() for e in prep.extra)}
    return rec.model_copy(update=update)


def _artifact(role: str, path: Path | str) -> ArtifactRecord:
    d = tree_digest(path)
    return ArtifactRecord(role=role, path=str(Path(path).resolve()), digest=d.digest, is_dir=d.is_dir,
                          size_bytes=d.size_bytes, files=d.files)


def _data_path(spec: str) -> Path:
    from .finetune.chat_data import builtin_path

    return builtin_path(spec.split(":", 1)[1]) if spec.startswith("builtin:") else Path(spec)


@dataclass
class Done:
    """What a run's ledger already holds, stage by stage: empty for a new run, filled by
    ``resume.ledger_state`` for a resumed one. Each stage's records are appended in one
    transaction, so a stage is either wholly in the chain or not at all."""

    provenance: bool = False
    """The environment, input artifacts and battery record are in the chain."""
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict)
    """Role -> the artifact record already in the chain."""
    metrics: dict[str, list[MetricRecord]] = field(default_factory=dict)
    """Evaluated stage (base, tuned, stress) -> its metrics, in ledger order."""
    greedy: dict[str, list] = field(default_factory=dict)
    """Evaluated stage -> its greedy refusal and prefill samples (for the paired comparison)."""
    finetune: dict[str, FinetuneRecord] = field(default_factory=dict)
    """Purpose (safety, stress) -> its finished FinetuneRecord."""
    outputs: dict[str, ArtifactRecord] = field(default_factory=dict)
    """Purpose -> the artifact record of the saved adapter or model."""
    verdict: object = None
    """The VerdictRecord, once decided."""
    resuming: bool = False
    """True when continuing a killed run: fine-tunes restart from their latest checkpoint."""


def run_pipeline(
    plan: Plan,
    *,
    store_url: str | None = None,
    plan_path: Path | None = None,
    progress: Progress | None = None,
    sign_key: Path | None = None,
    run_root: Path | None = None,
) -> RunResult:
    progress = progress or SilentProgress()
    plan = _resolve_battery_paths(plan, plan_path)
    prep = prepare(plan, progress)  # raises on bad input; nothing written yet

    store = Store(store_url)
    run_id = new_run_id()
    run_dir = (run_root or runs_home()) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    plan_dict = plan.model_dump(mode="json")
    store.append(run_id, [
        RunStarted(run_id=run_id, plan=plan_dict, plan_digest=json_digest(plan_dict),
                   plan_path=str(plan_path.resolve()) if plan_path else None,
                   tool_version=__version__, started_at=utc_now()),
    ])
    return run_stages(store, run_id, prep, run_dir, Done(), plan_path=plan_path, progress=progress,
                      sign_key=sign_key)


def input_artifacts(prep: Prepared, plan_path: Path | None) -> list[ArtifactRecord]:
    """The digests of everything the run reads: base model, data sets, benchmark files, judges, plan."""
    from .finetune.recipes import data_sources

    plan = prep.plan
    sources = data_sources(plan.finetune)
    if plan.stress.enabled:
        sources["dataset:stress"] = plan.stress.data
    arts = [_artifact("base_model", prep.model_path)]
    arts += [_artifact(role, _data_path(spec)) for role, spec in sources.items()]
    arts += [_artifact(f"dataset:benchmark:{e.benchmark}", e.path) for e in prep.extra]
    arts += [_artifact(f"judge_model:{j.id}", j.path) for j in prep.judges if hasattr(j, "model_digest")]
    if plan_path:
        arts.append(_artifact("plan", plan_path))
    return arts


def _environment(prep: Prepared):
    from .models.loading import describe_accelerator

    return capture_environment(str(prep.device), str(prep.dtype).replace("torch.", ""),
                               describe_accelerator(prep.device))


def run_stages(store: Store, run_id: str, prep: Prepared, run_dir: Path, done: Done, *,
               plan_path: Path | None, progress: Progress, sign_key: Path | None) -> RunResult:
    """Every stage after RunStarted, in order, skipping those ``done`` says are already in the chain.

    Each stage appends its records in one transaction, so a kill leaves a stage either
    wholly recorded or not at all, and ``assure run --resume`` picks up at the first
    missing one."""
    plan = prep.plan
    result = RunResult(run_id, "ERROR", EXIT_ERROR, store.url, run_dir)
    stage = "provenance"
    try:
        judge = prep.judges[0]
        if done.provenance:
            base_digest = done.artifacts["base_model"].digest
        else:
            env = _environment(prep)
            with progress.stage("Provenance: hashing the model, data and plan"):
                arts = input_artifacts(prep, plan_path)
            base_digest = arts[0].digest
            battery = _battery_record(prep, judge, _generation_settings(prep))
            store.append(run_id, [env, *arts, battery])

        models = _Models(prep, done)

        stage = "evaluate base"
        base_metrics = _evaluate_or_reuse(store, run_id, prep, judge, "base", lambda: prep.model, done, progress,
                                          weights=(prep.model_path, None))

        stage = "safety fine-tune"
        ft_record = None
        if "safety" in done.finetune:
            out_digest = done.outputs["safety"].digest
        else:
            tuned_model, ft_record = _finetune(prep, run_dir, base_digest, progress, resume=done.resuming)
            out_art = _artifact("adapter" if plan.finetune.method == "lora" else "tuned_model", ft_record.output_path)
            ft_record = ft_record.model_copy(update={"output_digest": out_art.digest})
            store.append(run_id, [ft_record, out_art])
            models.tuned, out_digest = tuned_model, out_art.digest

        stage = "evaluate tuned"
        tuned_weights = saved_weights(prep, done.finetune.get("safety") or ft_record)
        tuned_metrics = _evaluate_or_reuse(store, run_id, prep, judge, "tuned", models.load_tuned, done, progress,
                                           weights=tuned_weights)

        stress_metrics: list[MetricRecord] = []
        if plan.stress.enabled:
            stage = "persistence stress fine-tune"
            if "stress" not in done.finetune and "stress" not in done.metrics:
                stressed, st_record = _stress(prep, models.load_tuned(), run_dir, out_digest, progress,
                                              resume=done.resuming)
                st_art = _artifact("stress_adapter" if plan.stress.method == "lora" else "stress_model",
                                   st_record.output_path)
                st_record = st_record.model_copy(update={"output_digest": st_art.digest})
                store.append(run_id, [st_record, st_art])
                models.stressed = stressed
            else:
                st_record = done.finetune.get("stress")
            stage = "evaluate stressed"
            stress_weights = saved_weights(prep, st_record) if st_record and st_record.method == "full" else None
            stress_metrics = _evaluate_or_reuse(store, run_id, prep, judge, "stress", models.load_stressed, done,
                                                progress, weights=stress_weights)

        stage = "verdict"
        verdict = done.verdict
        if verdict is None:
            verdict = decide(plan.policy, base_metrics + tuned_metrics + stress_metrics)
            store.append(run_id, [verdict])
        stage = "seal"
        seal_run(store, run_id, complete=True, key_path=sign_key)
        result.status, result.reasons = verdict.status, verdict.reasons
        result.metrics = base_metrics + tuned_metrics + stress_metrics
        result.exit_code = EXIT_PASS if verdict.status == "PASS" else EXIT_FAIL
    except Exception as err:  # any stage failing leaves a sealed, incomplete, ERROR run
        message = f"{type(err).__name__}: {err}"
        store.append(run_id, [RunFailed(stage=stage, error=message, failed_at=utc_now()),
                              decide(plan.policy, [], complete=False, error=f"{stage} failed: {message}")])
        seal_run(store, run_id, complete=False, key_path=sign_key)
        result.error = f"{stage} failed: {message}"

    for regime in plan.report.regimes:
        with progress.stage(f"Rendering the {regime.upper()} pack"):
            result.packs[regime] = render_and_record(store, run_id, regime, run_dir / "packs")
    return result


class _Models:
    """The tuned and stressed models: in memory when this process trained them, otherwise
    reloaded (once, when first needed) from the outputs a resumed run's ledger names."""

    def __init__(self, prep: Prepared, done: Done):
        self.prep, self.done = prep, done
        self.tuned = None
        self.stressed = None

    def load_tuned(self):
        if self.tuned is None:
            self.tuned = load_finetuned(self.prep, self.done.finetune["safety"], lambda: self.prep.model)
        return self.tuned

    def load_stressed(self):
        if self.stressed is None:
            def start():  # the stress fine-tune's starting point: the tuned model, a safety adapter merged in
                tuned = self.load_tuned()
                return tuned.merge_and_unload() if hasattr(tuned, "merge_and_unload") else tuned
            self.stressed = load_finetuned(self.prep, self.done.finetune["stress"], start)
        return self.stressed


def load_finetuned(prep: Prepared, record: FinetuneRecord, start: Callable[[], object]):
    """A fine-tune's saved output as a model: a LoRA adapter onto ``start()`` (peft), or the full model folder.

    The caller has checked the folder's digest against the ledger."""
    from .models.loading import load_model

    if record.method == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(start(), record.output_path, is_trainable=False)
        return model.to(prep.device).eval()
    model, _ = load_model(record.output_path, device=prep.device, dtype=prep.dtype,
                          allow_pickle=prep.plan.model.allow_pickle,
                          trust_remote_code=prep.plan.model.trust_remote_code)
    return model


def saved_weights(prep: Prepared, record: FinetuneRecord) -> tuple[Path | str, Path | str | None]:
    """(model folder, adapter folder or None) of a fine-tune's saved output, as vLLM loads it."""
    if record.method == "lora":
        return prep.model_path, record.output_path
    return record.output_path, None


def _evaluate_or_reuse(store: Store, run_id: str, prep: Prepared, judge, stage: str, model: Callable[[], object],
                       done: Done, progress: Progress, weights=None) -> list[MetricRecord]:
    """The stage's metrics from the ledger when it was evaluated before a resume, else evaluate ``model()``
    (with vLLM from ``weights`` on disk when the stage's backend is vLLM)."""
    if stage in done.metrics:
        prep.greedy[stage] = done.greedy.get(stage, [])
        progress.note(f"The {stage} model's evaluation is already in the ledger; not repeated")
        return done.metrics[stage]
    generator = _generator(prep, stage, weights)
    try:
        return _evaluate(store, run_id, prep, judge, stage, model(), progress, generator=generator)
    finally:
        _free(generator)


COMPARED_WITH = {"tuned": "base", "stress": "tuned"}
"""Stage -> the earlier stage it is compared with, item by item."""


def _evaluate(store: Store, run_id: str, prep: Prepared, judge, stage, model, progress: Progress, generator=None):
    """Run the battery (and the extra suites beside it) on one model; record samples, metrics, the secondary
    judges' verdicts and agreement, and the paired comparison with the previous stage.

    Returns the metrics (extra suites' included: the gate reads only the ``refusal`` suite)."""
    from dataclasses import replace

    from .battery.runner import planned_probes
    from .battery.wiring import compare_stages, cross_judge

    battery = replace(prep.battery, suites=prep.battery.suites + tuple(e.suite for e in prep.extra))
    total = planned_probes(battery, prep.plan.battery.sampling)
    with progress.stage(f"Evaluating the {stage} model: {total} probes in {len(battery.suite_names)} suites",
                        total=total) as advance:
        samples, metrics = evaluate(model, prep.tokenizer, battery, judge, stage=stage,
                                    max_new_tokens=prep.plan.battery.max_new_tokens,
                                    batch_size=prep.plan.battery.batch_size, progress=advance,
                                    sampling=prep.plan.battery.sampling, benign_judge=prep.benign_judge,
                                    generator=generator)
    records: list[Record] = [*samples, *metrics]
    if len(prep.judges) > 1:
        with progress.stage(f"Cross-checking the {stage} model's refusals with {len(prep.judges) - 1} more judge(s)"):
            verdicts, agreements = cross_judge(prep.judges, samples, stage)
        records += [*verdicts, *agreements]
    greedy = [s for s in samples if s.seed is None and s.suite in ("refusal", "prefill")]
    earlier = COMPARED_WITH.get(stage)
    if earlier in prep.greedy:
        spec = prep.plan.battery.comparison
        seed = prep.plan.seed if spec.seed is None else spec.seed
        records += compare_stages(prep.greedy[earlier] + greedy, earlier, stage,
                                  n_resamples=spec.n_resamples, seed=seed)
    store.append(run_id, records)  # one transaction: the stage is wholly in the chain or not at all
    prep.greedy[stage] = greedy
    return metrics


def _train_progress(advance: Callable[[int], None], progress: Progress) -> Callable[[dict], None]:
    def report(info: dict) -> None:
        advance(1)
        if hasattr(progress, "status"):
            progress.status(f"loss {info['loss']:.3f}  lr {info['lr']:.2e}  {info['tokens_per_second']:,.0f} tok/s")
    return report


def _finetune(prep: Prepared, run_dir: Path, base_digest: str, progress: Progress, resume: bool = False):
    from .finetune.recipes import finetune_record, run_recipe

    spec = prep.plan.finetune
    out_dir = run_dir / ("adapter" if spec.method == "lora" else "model")
    with progress.stage(f"Safety fine-tune ({spec.recipe}, {spec.method}, {spec.max_steps} steps)",
                        total=spec.max_steps) as advance:
        res = run_recipe(prep.model, prep.tokenizer, spec, seed=prep.plan.seed, device=prep.device, dtype=prep.dtype,
                         output_dir=out_dir, progress=_train_progress(advance, progress),
                         safety=prep.safety, utility=prep.utility, resume=resume)
    return res.model, finetune_record(res, purpose="safety", seed=prep.plan.seed, base_model_digest=base_digest)


def _stress(prep: Prepared, tuned_model, run_dir: Path, tuned_digest: str, progress: Progress, resume: bool = False):
    """A customer's benign fine-tune of the safety-tuned model (Qi et al. 2024): does safety persist?"""
    from .finetune.recipes import finetune_record, stress_finetune

    stress = prep.plan.stress
    with progress.stage(f"Persistence stress: benign fine-tune ({stress.method}, {stress.max_steps} steps)",
                        total=stress.max_steps) as advance:
        res = stress_finetune(tuned_model, prep.tokenizer, stress, seed=prep.plan.seed, device=prep.device,
                              dtype=prep.dtype, output_dir=run_dir / "stress", progress=_train_progress(advance, progress),
                              resume=resume)
    return res.model, finetune_record(res, purpose="stress", seed=prep.plan.seed, base_model_digest=tuned_digest)


def render_and_record(store: Store, run_id: str, regime: str, out_dir: Path, *, redact: bool | None = None) -> Path:
    """Render one pack from the ledger alone and append its PackRecord."""
    from .report import build_view, comparison_records, render_pack

    records: list[Record] = store.records(run_id)
    view = build_view(records)
    report = dict(records[0].plan.get("report", {})) if isinstance(records[0], RunStarted) else {}
    if redact is not None:
        report["redact_outputs"] = redact
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{regime}-assurance-pack-{run_id[:8]}.pdf"
    comparison = comparison_records(store, report.get("compare_with"))
    pages = render_pack(records, regime, out, redact_outputs=report.get("redact_outputs", True), report=report,
                        comparison=comparison)
    d = tree_digest(out)
    store.append(run_id, [PackRecord(regime=regime, path=str(out.resolve()), digest=d.digest, pages=pages,
                                     final=bool(view.final), rendered_at=utc_now())])
    return out
