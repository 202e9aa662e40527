"""The work of each stage (evaluate, fine-tune, stress), called in order by ``pipeline.run_stages``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .battery.runner import evaluate
from .evidence.records import (
    FinetuneRecord,
    MetricRecord,
    Record,
)
from .evidence.store import Store
from .backends import _free, _generator
from .inputs import Prepared, Progress

if TYPE_CHECKING:
    from .pipeline import Done

# Each evaluated stage is compared item by item with the stage before it.
COMPARED_WITH = {"tuned": "base", "stress": "tuned"}


def _battery_record(prep: Prepared, judge, gen: dict, artifacts: dict[str, str]):
    """``artifacts`` (role -> digest) are the provenance digests just taken: the benchmark files
    are not hashed a second time."""
    from .battery.runner import battery_record
    from .battery.wiring import judge_entries

    rec = battery_record(prep.battery, judge, gen, prep.plan.battery.sampling)
    update = {"judges": rec.judges + judge_entries(prep.judges, prep.benign_judge),
              "extra_suites": [e.entry(artifacts[f"dataset:benchmark:{e.benchmark}"]) for e in prep.extra]}
    if prep.extra:
        update["generation"] = rec.generation | {"n_probes_extra": sum(e.suite.n_probes() for e in prep.extra)}
    return rec.model_copy(update=update)


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
