"""Named recipes and the persistence stress fine-tune: what the pipeline calls.

A recipe is ``<augmentation>+<objective>`` with the defaults left out:

    sft                         plain SFT on the safety/utility mix
    deep-alignment              + safety-recovery examples from triplets (Qi et al. 2025, sec. 3)
    constrained                 token-wise constrained objective vs the starting model (sec. 4)
    deep-alignment+constrained  both

Triplets join the safety side of the mix, so the safety ratio and the achieved
ratios count them as safety examples.

With ``task_data`` the fine-tune is *downstream*: an aligned model trained on a
firm's own task (plus ``safety_mix`` of safety examples), where the paper puts
the constrained objective, its reference being the aligned starting model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from assurance.evidence.records import FinetuneRecord
from assurance.finetune.augment import load_triplets
from assurance.finetune.chat_data import load_chat_jsonl
from assurance.finetune.mixing import SAFETY, UTILITY, MixResult, mix, task_mix
from assurance.finetune.objectives import LITERATURE
from assurance.finetune.trainer import TrainResult, parse_recipe, train
from assurance.plan import FinetuneSpec, StressSpec


def data_sources(spec: FinetuneSpec) -> dict[str, str]:
    """Every data set the recipe reads, by artifact role (for the provenance digests)."""
    if spec.task_data:
        out = {"dataset:task": spec.task_data}
        if spec.safety_mix > 0:
            out["dataset:safety"] = spec.safety_data
    else:
        out = {"dataset:safety": spec.safety_data}
        if spec.utility_data:
            out["dataset:utility"] = spec.utility_data
    if parse_recipe(spec.recipe)[0] == "deep-alignment":
        out["dataset:triplets"] = spec.triplet_data
    return out


def build_mix(spec: FinetuneSpec, seed: int, safety: list | None = None, utility: list | None = None) -> MixResult:
    """The training mix for the recipe; ``safety``/``utility`` are already-loaded chat rows, else loaded here."""
    augmented = parse_recipe(spec.recipe)[0] == "deep-alignment"
    if spec.task_data:
        safety = (load_chat_jsonl(spec.safety_data) if safety is None else list(safety)) if spec.safety_mix else []
        res = task_mix(load_chat_jsonl(spec.task_data), safety, spec.safety_mix, seed)
        if augmented:  # the recovery examples join the safety side, as in a safety tune
            res = with_triplets(res, load_triplets(spec.triplet_data), seed)
        return res
    safety = load_chat_jsonl(spec.safety_data) if safety is None else list(safety)
    if utility is None and spec.utility_data:
        utility = load_chat_jsonl(spec.utility_data)
    if parse_recipe(spec.recipe)[0] == "deep-alignment":
        safety = safety + load_triplets(spec.triplet_data)
    return mix(safety, utility, spec.safety_ratio, seed)


def with_triplets(res: MixResult, triplets: list, seed: int) -> MixResult:
    """``res`` with every triplet added on the safety side, reshuffled with ``seed``."""
    examples = list(res.examples) + [(SAFETY, t) for t in triplets]
    random.Random(seed).shuffle(examples)
    n_safety = res.n_safety + len(triplets)
    return MixResult(examples=examples, n_safety=n_safety, n_utility=res.n_utility,
                     achieved_ratio=n_safety / len(examples))


def run_recipe(model, tokenizer, spec: FinetuneSpec, *, seed: int, device: torch.device, dtype: torch.dtype,
               output_dir: Path, progress: Callable[[dict], None] | None = None, resume: bool = False,
               safety: list | None = None, utility: list | None = None) -> TrainResult:
    """The safety fine-tune: build the recipe's mix and train. Raises TrainingDiverged on NaN/inf."""
    mixed = build_mix(spec, seed, safety, utility)
    res = train(model, tokenizer, mixed, spec, seed=seed, device=device, dtype=dtype, output_dir=output_dir,
                progress=progress, resume=resume)
    res.hyperparameters["training_data"] = (
        f"downstream: task data {spec.task_data} with safety share {spec.safety_mix}" if spec.task_data
        else "safety tune: safety and utility data")
    if spec.task_data:
        res.hyperparameters["safety_mix"] = spec.safety_mix
    return res


def stress_spec(stress: StressSpec) -> FinetuneSpec:
    """The FinetuneSpec a stress run uses (recorded as its hyperparameters): plain SFT unless the plan
    asks for the constrained objective (reference: the model the stress starts from)."""
    return FinetuneSpec(recipe=stress.recipe, method=stress.method, safety_data=stress.data, utility_data=None,
                        safety_ratio=1.0, max_steps=stress.max_steps, lr=stress.lr, batch_size=stress.batch_size,
                        warmup_steps=stress.warmup_steps, max_length=stress.max_length, schedule="linear",
                        checkpoint_every=stress.checkpoint_every, parallel=stress.parallel)


def stress_finetune(model, tokenizer, stress: StressSpec, *, seed: int, device: torch.device, dtype: torch.dtype,
                    output_dir: Path, progress: Callable[[dict], None] | None = None,
                    resume: bool = False) -> TrainResult:
    """Fine-tune the safety-tuned ``model`` briefly on benign data, as a downstream customer would.

    The model is changed in place (the caller has already evaluated and saved it).
    A LoRA safety adapter is first merged into the weights (``merge_and_unload``),
    so the stress run starts from exactly the tuned model and, with
    ``stress.method == "lora"``, trains a fresh adapter on top, the usual customer
    setup. ``output_dir`` receives the stress adapter (or full model).
    """
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    rows = load_chat_jsonl(stress.data)
    benign = MixResult(examples=[(UTILITY, c) for c in rows], n_safety=0, n_utility=len(rows), achieved_ratio=0.0)
    res = train(model, tokenizer, benign, stress_spec(stress), seed=seed, device=device, dtype=dtype,
                output_dir=output_dir, progress=progress, resume=resume)
    res.hyperparameters["stress_data"] = stress.data
    res.hyperparameters["safety_adapter"] = "merged into the weights before the stress run"
    res.literature = [LITERATURE["stress"], *res.literature]
    return res


def finetune_record(res: TrainResult, *, purpose: Literal["safety", "stress"], seed: int,
                    base_model_digest: str, output_digest: str = ""):
    """The FinetuneRecord for a finished run (the caller fills in the output digest once it has hashed it)."""
    return FinetuneRecord(
        purpose=purpose, recipe=res.recipe, method=res.hyperparameters["method"], hyperparameters=res.hyperparameters,
        seed=seed, n_safety_examples=res.n_safety, n_utility_examples=res.n_utility,
        achieved_safety_ratio=res.achieved_ratio, achieved_safety_token_ratio=res.achieved_token_ratio,
        steps=res.steps, loss_curve=[(int(s), float(v)) for s, v in res.loss_curve], tokens_seen=res.tokens_seen,
        tokens_per_second=res.tokens_per_second, wall_seconds=res.wall_seconds,
        peak_memory_bytes=res.peak_memory_bytes, base_model_digest=base_model_digest, output_digest=output_digest,
        output_path=str(Path(res.output_dir).resolve()), objective=res.objective, augmentation=res.augmentation,
        recipe_settings=res.recipe_settings, literature=res.literature, tokens_total=res.tokens_total,
        resumed_from_step=res.resumed_from_step, resumed_from_checkpoint_digest=res.resumed_from_checkpoint_digest,
    )
