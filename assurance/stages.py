"""The work of each stage (evaluate, fine-tune, stress), called in order by ``pipeline.run_stages``,
and what a run's ledger already holds of them (``Done``, filled by ``resume.ledger_state``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .backends import free_generator, recorded_generation_settings, vllm_generator
from .battery import runner
from .battery.wiring import compare_stages, cross_judge, judge_entries, validate_judges
from .evidence.records import (
    ArtifactRecord,
    BatteryRecord,
    FinetuneRecord,
    MetricRecord,
    Record,
    SampleRecord,
    Stage,
    VerdictRecord,
)
from .evidence.store import Store
from .finetune import recipes
from .inputs import Progress
from .models.loading import load_model
from .models.sharded import load_weights
from .prepared import Prepared

PAIRED_SUITES = ("refusal", "prefill")
"""The suites whose greedy samples are compared item by item between stages."""


def paired_samples(samples: Iterable[SampleRecord]) -> list[SampleRecord]:
    """The greedy refusal and prefill samples: what the paired stage comparison pairs item by item.

    The one filter for a fresh evaluation and for a resumed run reading the ledger back, so a resumed
    run's paired comparisons are those of an uninterrupted one."""
    return [s for s in samples if s.seed is None and s.suite in PAIRED_SUITES]


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
    greedy: dict[str, list[SampleRecord]] = field(default_factory=dict)
    """Evaluated stage -> its ``paired_samples`` (for the paired comparison)."""
    finetune: dict[str, FinetuneRecord] = field(default_factory=dict)
    """Purpose (safety, stress) -> its finished FinetuneRecord."""
    outputs: dict[str, ArtifactRecord] = field(default_factory=dict)
    """Purpose -> the artifact record of the saved adapter or model."""
    verdict: VerdictRecord | None = None
    """The VerdictRecord, once decided."""
    resuming: bool = False
    """True when continuing a killed run: fine-tunes restart from their latest checkpoint."""


@dataclass(frozen=True)
class Evaluated:
    """One evaluated stage's results: its metrics, and the greedy samples the next stage is paired with."""

    stage: Stage
    metrics: list[MetricRecord]
    greedy: list[SampleRecord]


def battery_record(prep: Prepared, judge, gen: dict, artifacts: dict[str, str]) -> BatteryRecord:
    """The run's battery record, with every judge and the extra suites. ``artifacts`` (role -> digest)
    are the provenance digests just taken: the benchmark files are not hashed a second time."""
    rec = runner.battery_record(prep.battery, judge, gen, prep.plan.battery.sampling, harm_judge=prep.harm_judge)
    update: dict[str, Any] = {"judges": rec.judges + judge_entries(prep.judges, prep.benign_judge),
              "extra_suites": [e.entry(artifacts[f"dataset:benchmark:{e.benchmark}"]) for e in prep.extra]}
    if prep.extra:
        update["generation"] = rec.generation | {"n_probes_extra": sum(e.suite.n_probes() for e in prep.extra)}
    return rec.model_copy(update=update)


class Models:
    """The tuned and stressed models: in memory when this process trained them, otherwise
    reloaded (once, when first needed) from the outputs the ledger names: a resumed run's, or a
    sharded (FSDP) fine-tune's, whose in-memory model is left in shards."""

    def __init__(self, prep: Prepared, done: Done):
        self.prep = prep
        self.outputs: dict[str, FinetuneRecord] = dict(done.finetune)
        self.tuned: Any = None
        self.stressed: Any = None
        self.base_sharded = False

    def trained(self, purpose: str, model: Any, record: FinetuneRecord) -> None:
        """Keep what a fine-tune just produced: its model, or (None, after FSDP) its output to reload.

        A sharded fine-tune sharded the model it started from in place: the base model for the safety
        fine-tune, the tuned model for the stress one; those are reloaded from disk when next needed."""
        self.outputs[purpose] = record
        if purpose == "safety":
            self.tuned, self.base_sharded = model, self.base_sharded or model is None
        else:
            self.stressed = model
            if model is None:
                self.tuned = None

    def base(self) -> Any:
        """The base model, as loaded (again from its folder when a sharded fine-tune used it)."""
        if not self.base_sharded:
            return self.prep.model
        return self._load(self.prep.model_path, [])

    def load_tuned(self):
        if self.tuned is None:
            if self.prep.shards is not None:
                self.tuned = self._load(*self.chain("safety"))
            else:
                self.tuned = load_finetuned(self.prep, self.outputs["safety"], self.base)
        return self.tuned

    def load_stressed(self):
        if self.stressed is None:
            if self.prep.shards is not None:
                self.tuned = None  # one sharded model at a time: the stressed one is built from the files
                self.stressed = self._load(*self.chain("stress"))
                return self.stressed

            def start() -> Any:  # the stress fine-tune's starting point: the tuned model, a safety adapter merged in
                tuned = self.load_tuned()
                return tuned.merge_and_unload() if hasattr(tuned, "merge_and_unload") else tuned
            self.stressed = load_finetuned(self.prep, self.outputs["stress"], start)
        return self.stressed

    def chain(self, purpose: str) -> tuple[Path, list[Path]]:
        """(model folder, adapters to merge into it in order) that make the model after the ``purpose``
        fine-tune: the base folder and each LoRA adapter since, or the last full fine-tune's folder."""
        folder, adapters = self.prep.model_path, []
        for step in ("safety", "stress")[:("safety", "stress").index(purpose) + 1]:
            record = self.outputs[step]
            if record.method == "lora":
                adapters.append(Path(record.output_path))
            else:
                folder, adapters = Path(record.output_path), []
        return folder, adapters

    def _load(self, folder: Path, adapters: list[Path]) -> Any:
        """A model from its files: in shards under ``model.parallel: fsdp`` (adapters merged), else whole."""
        prep, spec = self.prep, self.prep.plan.model
        model, _ = load_weights(folder, shards=prep.shards, device=prep.device, dtype=prep.dtype, adapters=adapters,
                                allow_pickle=spec.allow_pickle, trust_remote_code=spec.trust_remote_code)
        return model


def load_finetuned(prep: Prepared, record: FinetuneRecord, start: Callable[[], Any]):
    """A fine-tune's saved output as a model: a LoRA adapter onto ``start()`` (peft), or the full model folder.

    The caller has checked the folder's digest against the ledger."""
    if record.method == "lora":
        from peft import PeftModel  # lazy: peft takes seconds to import and only LoRA runs need it

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


def evaluate_or_reuse(store: Store, run_id: str, prep: Prepared, judge, stage: Stage, model: Callable[[], object],
                      done: Done, progress: Progress, *, earlier: Evaluated | None = None,
                      weights=None) -> Evaluated:
    """The stage's results from the ledger when it was evaluated before a resume, else evaluate ``model()``
    (with vLLM from ``weights`` on disk when the stage's backend is vLLM), paired with ``earlier``."""
    if stage in done.metrics:
        progress.note(f"The {stage} model's evaluation is already in the ledger; not repeated")
        return Evaluated(stage, done.metrics[stage], done.greedy.get(stage, []))
    generator = vllm_generator(prep, stage, weights)
    try:
        return evaluate(store, run_id, prep, judge, stage, model(), progress, earlier=earlier, generator=generator)
    finally:
        free_generator(generator)


def generation_settings(prep: Prepared) -> dict:
    """The decoding settings for the battery record; an endpoint's own settings where a supplied model is one
    (its stage's entry in ``backend_by_stage`` is then ``endpoint``)."""
    endpoints = {stage: s.generator().settings() for stage, s in prep.supplied.items() if s.model_path is None}
    if "tuned" not in endpoints:
        return recorded_generation_settings(prep) | {f"endpoint_{st}": e for st, e in endpoints.items()}
    battery = prep.plan.battery
    return endpoints["tuned"] | {
        "max_new_tokens": battery.max_new_tokens, "batch_size": battery.batch_size,
        "backend_requested": battery.backend, "backend_by_stage": dict(prep.backends),
        "limit_per_category": battery.limit_per_category,
    } | {f"endpoint_{st}": e for st, e in endpoints.items() if st != "tuned"}


def evaluate_supplied(store: Store, run_id: str, prep: Prepared, judge, stage: Stage, done: Done, progress: Progress,
                      *, earlier: Evaluated | None = None) -> Evaluated | None:
    """Evaluate-only runs: evaluate the model supplied for ``stage`` (the target, loaded by ``prepare``, or the
    baseline, loaded now), locally or over its endpoint, paired with ``earlier``; None when nothing was supplied
    for the stage (no baseline)."""
    supplied = prep.supplied.get(stage)
    if supplied is None:
        return None
    if stage in done.metrics:
        return evaluate_or_reuse(store, run_id, prep, judge, stage, lambda: None, done, progress)
    if stage == "tuned":
        model, tokenizer = prep.model, prep.tokenizer
    else:
        with progress.stage(f"Loading the supplied {supplied.role} ({supplied.spec.kind})"):
            model, tokenizer = supplied.load(prep.device, prep.dtype, shards=prep.shards)
    generator = supplied.generator() or vllm_generator(prep, stage, supplied.weights())
    try:
        return evaluate(store, run_id, prep, judge, stage, model, progress, earlier=earlier, generator=generator,
                        tokenizer=tokenizer)
    finally:
        free_generator(generator)


def evaluate_target(store: Store, run_id: str, prep: Prepared, judge, done: Done, progress: Progress, *,
                    earlier: Evaluated | None = None) -> Evaluated:
    """Evaluate-only runs: the supplied target, as the ``tuned`` stage (``evaluate_supplied``)."""
    evaluated = evaluate_supplied(store, run_id, prep, judge, "tuned", done, progress, earlier=earlier)
    if evaluated is None:
        raise ValueError("an evaluate-only run has no target to evaluate")  # prepare() always supplies one
    return evaluated


def evaluate(store: Store, run_id: str, prep: Prepared, judge, stage: Stage, model, progress: Progress, *,
             earlier: Evaluated | None = None, generator=None, tokenizer=None) -> Evaluated:
    """Run the battery (and the extra suites beside it) on one model; record samples, metrics, the secondary
    judges' verdicts and agreement, and the paired comparison with the ``earlier`` stage. Before the first
    model (the base, or an evaluate-only run's target when it has no baseline), the judges' agreement with the
    plan's human labels (``battery.judge_validation``), in the same transaction.

    The metrics include the extra suites' (the gate reads only the ``refusal`` suite). ``tokenizer`` is the
    model's own when it is not the run's (a supplied baseline)."""
    records: list[Record] = []
    first = "tuned" if prep.supplied and "base" not in prep.supplied else "base"  # evaluate-only, no baseline
    if stage == first and prep.judge_labels:  # the judges are measured against people before they score
        with progress.stage(f"Validating the refusal judges against {len(prep.judge_labels)} labels file(s)"):
            records += validate_judges(prep.judges, prep.benign_judge, prep.judge_labels,
                                       prep.plan.battery.judge_validation, prep.plan.seed)
    battery = replace(prep.battery, suites=prep.battery.suites + tuple(e.suite for e in prep.extra))
    total = runner.planned_probes(battery, prep.plan.battery.sampling)
    with progress.stage(f"Evaluating the {stage} model: {total} probes in {len(battery.suite_names)} suites",
                        total=total) as advance:
        tok = prep.tokenizer if tokenizer is None else tokenizer
        samples, metrics = runner.evaluate(model, tok, battery, judge, stage=stage,
                                           max_new_tokens=prep.plan.battery.max_new_tokens,
                                           batch_size=prep.plan.battery.batch_size, progress=advance,
                                           sampling=prep.plan.battery.sampling, benign_judge=prep.benign_judge,
                                           generator=prep.ranks.sharded(generator), harm_judge=prep.harm_judge)
    records += [*samples, *metrics]
    if len(prep.judges) > 1:
        with progress.stage(f"Cross-checking the {stage} model's refusals with {len(prep.judges) - 1} more judge(s)"):
            verdicts, agreements = cross_judge(prep.judges, samples, stage)
        records += [*verdicts, *agreements]
    greedy = paired_samples(samples)
    if earlier is not None:
        spec = prep.plan.battery.comparison
        seed = prep.plan.seed if spec.seed is None else spec.seed
        records += compare_stages(earlier.greedy + greedy, earlier.stage, stage,
                                  n_resamples=spec.n_resamples, seed=seed)
    store.append(run_id, records)  # one transaction: the stage is wholly in the chain or not at all
    return Evaluated(stage, metrics, greedy)


def train_progress(advance: Callable[[int], None], progress: Progress) -> Callable[[dict], None]:
    """The trainer's per-step callback: advance the bar and show loss, learning rate and speed.

    Looked up by the fine-tune stages at call time, so a test can wrap it (to slow each step)."""
    def report(info: dict) -> None:
        advance(1)
        if hasattr(progress, "status"):
            progress.status(f"loss {info['loss']:.3f}  lr {info['lr']:.2e}  {info['tokens_per_second']:,.0f} tok/s")
    return report


def safety_finetune(prep: Prepared, run_dir: Path, base_digest: str, progress: Progress,
                    resume: bool = False) -> tuple[object, FinetuneRecord]:
    """The plan's fine-tune of the base model (a safety tune, or a downstream fine-tune on ``task_data``):
    (the tuned model, its FinetuneRecord without output digest)."""
    spec = prep.plan.finetune
    out_dir = run_dir / ("adapter" if spec.method == "lora" else "model")
    what = "Downstream fine-tune on task data" if spec.task_data else "Safety fine-tune"
    with progress.stage(f"{what} ({spec.recipe}, {spec.method}, {spec.max_steps} steps)",
                        total=spec.max_steps) as advance:
        res = recipes.run_recipe(prep.model, prep.tokenizer, spec, seed=prep.plan.seed, device=prep.device,
                                 dtype=prep.dtype, output_dir=out_dir, progress=train_progress(advance, progress),
                                 safety=prep.safety, utility=prep.utility, resume=resume)
    return res.model, recipes.finetune_record(res, purpose="safety", seed=prep.plan.seed, base_model_digest=base_digest)


def stress_finetune(prep: Prepared, tuned_model, run_dir: Path, tuned_digest: str, progress: Progress,
                    resume: bool = False) -> tuple[object, FinetuneRecord]:
    """A customer's benign fine-tune of the safety-tuned model (Qi et al. 2024): does safety persist?"""
    stress = prep.plan.stress
    with progress.stage(f"Persistence stress: benign fine-tune ({stress.recipe}, {stress.method}, "
                        f"{stress.max_steps} steps)",
                        total=stress.max_steps) as advance:
        res = recipes.stress_finetune(tuned_model, prep.tokenizer, stress, seed=prep.plan.seed, device=prep.device,
                                      dtype=prep.dtype, output_dir=run_dir / "stress",
                                      progress=train_progress(advance, progress), resume=resume)
    return res.model, recipes.finetune_record(res, purpose="stress", seed=prep.plan.seed,
                                              base_model_digest=tuned_digest)
