"""What a fine-tune records about how it trained: the FinetuneRecord's hyperparameters and recipe settings.

Kept apart from the loop in ``trainer.py`` so the loop reads top to bottom; every value here is
what the run actually used (the optimizer's own betas and eps, the examples left after truncation).
"""

from __future__ import annotations

from typing import Any

import torch

from assurance.finetune.batches import Examples
from assurance.finetune.objectives import LITERATURE


def bf16_autocast(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the trainer runs its forward under bfloat16 autocast: a bfloat16 model on CUDA. The dry
    run's memory estimate asks the same question."""
    return device.type == "cuda" and dtype == torch.bfloat16


def hyperparameters(spec, *, optimizer: torch.optim.Optimizer, world: int, device: torch.device, dtype: torch.dtype,
                    use_autocast: bool, data: Examples, constrained: bool,
                    lora_targets: list[str] | None) -> dict[str, Any]:
    """The settings the run trained with; the optimizer's betas and eps are read from the optimizer itself."""
    effective = spec.batch_size * spec.grad_accum  # split across ranks, not multiplied (trainer.rank_rows)
    hp: dict[str, Any] = {
        "recipe": spec.recipe, "method": spec.method, "max_steps": spec.max_steps, "lr": spec.lr,
        "batch_size": spec.batch_size, "grad_accum": spec.grad_accum, "world_size": world,
        "rows_per_rank": -(-spec.batch_size // world),
        "effective_batch_size": effective, "warmup_steps": spec.warmup_steps,
        "schedule": f"linear_warmup_{getattr(spec, 'schedule', 'linear')}_decay", "optimizer": "AdamW",
        "betas": list(optimizer.defaults["betas"]), "eps": optimizer.defaults["eps"], "weight_decay": spec.weight_decay,
        "weight_decay_applies_to": "parameters with 2+ dims", "max_grad_norm": spec.max_grad_norm,
        "max_length": spec.max_length, "safety_ratio": getattr(spec, "safety_ratio", None),
        "bucket_by_length": spec.bucket_by_length, "checkpoint_every": spec.checkpoint_every,
        "loss": "token mean over the final assistant turn of "
                + ("the token-wise constrained loss" if constrained else "cross-entropy"),
        "dtype": str(dtype).removeprefix("torch."), "device": device.type, "autocast_bf16": use_autocast,
        "examples": len(data), "examples_dropped_by_truncation": data.dropped,
        "epochs": round(spec.max_steps * effective / len(data), 4),
    }
    if spec.method == "lora":
        hp["lora"] = {"r": spec.lora.r, "alpha": spec.lora.alpha, "dropout": spec.lora.dropout,
                      "target_modules": list(spec.lora.target_modules), "target_modules_used": lora_targets}
    return hp


def recipe_settings(spec, augmentation: str, objective: str, data: Examples, *, recovery_seen: int,
                    prefilled: int) -> tuple[dict[str, Any], list[str]]:
    """The recipe's own settings and what it did (deep-alignment draws), with the papers it follows."""
    settings: dict[str, Any] = {}
    literature = []
    if augmentation != "none":
        da = spec.deep_alignment
        settings["deep_alignment"] = {"prefill_prob": da.prefill_prob, "max_prefix_tokens": da.max_prefix_tokens,
                                      "triplets": data.n_triplets, "recovery_examples_seen": recovery_seen,
                                      "prefilled_examples_seen": prefilled,
                                      "redrawn": "every epoch, from (seed, epoch, example index)"}
        literature.append(LITERATURE["deep-alignment"])
    if objective == "constrained":
        cs = spec.constrained
        settings["constrained"] = {"beta_first": cs.beta_first, "beta_early": cs.beta_early,
                                   "early_tokens": cs.early_tokens, "beta_rest": cs.beta_rest,
                                   "reference": "the starting model"
                                                + (" (adapter disabled)" if spec.method == "lora" else "")
                                                + ", log-probs computed once before training"}
        literature.append(LITERATURE["constrained"])
    return settings, literature
