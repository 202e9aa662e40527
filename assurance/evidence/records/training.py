"""The record of a fine-tuning stage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import BaseRecord


class FinetuneRecord(BaseRecord):
    """A fine-tuning stage: its recipe, every setting and what it cost."""

    kind: Literal["finetune"] = "finetune"
    purpose: Literal["safety", "stress"]
    """``safety``: the safety fine-tune; ``stress``: the benign persistence-stress fine-tune."""
    recipe: str
    """Named recipe, e.g. ``sft``."""
    method: Literal["full", "lora"]
    """Full fine-tuning or a LoRA adapter."""
    hyperparameters: dict[str, Any]
    """Every setting that shaped training (lr, steps, batch size, LoRA rank, ...)."""
    seed: int
    """Seed for data order and initialisation."""
    n_safety_examples: int
    """Safety examples in the training mix."""
    n_utility_examples: int
    """Utility examples in the training mix."""
    achieved_safety_ratio: float
    """Share of safety examples in the mix, by examples."""
    achieved_safety_token_ratio: float
    """Share of supervised tokens that came from safety examples."""
    steps: int
    """Optimizer steps taken."""
    loss_curve: list[tuple[int, float]]
    """(step, loss) pairs, thinned to at most 200 points."""
    tokens_seen: int
    """Supervised (assistant) tokens seen during training."""
    tokens_per_second: float
    """All tokens processed per second of training wall time."""
    wall_seconds: float
    """Training wall time."""
    peak_memory_bytes: int
    """Peak memory: CUDA max allocated on GPU, process peak RSS on CPU."""
    base_model_digest: str
    """Digest of the model that training started from."""
    output_digest: str
    """Digest of the saved adapter or model folder."""
    output_path: str
    """Where the adapter or model was saved."""
    objective: str = "sft"
    """Training objective: ``sft`` (cross-entropy) or ``constrained`` (token-wise constrained)."""
    augmentation: str = "none"
    """Data augmentation: ``none`` or ``deep-alignment`` (safety-recovery examples)."""
    recipe_settings: dict[str, Any] = Field(default_factory=dict)
    """Settings of the augmentation and objective (betas, prefill probability, prefix cap), and counts
    such as how many recovery examples were prefilled."""
    literature: list[str] = Field(default_factory=list)
    """Citations for the recipe's method, shown in the packs."""
    tokens_total: int = 0
    """All tokens processed (prompt and answer, without padding)."""
    resumed_from_step: int | None = None
    """Step of the checkpoint training resumed from, or null for an uninterrupted run."""
    resumed_from_checkpoint_digest: str | None = None
    """``sha256:`` of the checkpoint's ``state.pt`` training resumed from (its ``state_sha256``, checked against
    the file before loading), or null for an uninterrupted run."""
