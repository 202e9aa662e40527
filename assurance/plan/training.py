"""Plan settings for the safety fine-tune and the persistence stress fine-tune."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import MAX_STEPS, Section


class Parallel(Section):
    """How several processes share a fine-tune: the one field the safety and stress fine-tunes both have."""

    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Several processes (torchrun / accelerate launch) only. ``ddp``: each GPU holds the whole training state
    (weights, gradients, AdamW moments). ``fsdp``: all three sharded across the GPUs, one decoder layer gathered at
    a time (for a full fine-tune whose training state does not fit one GPU; the weights alone must, for evaluation).
    One process: ignored."""

    @model_validator(mode="after")
    def _no_fsdp_checkpoints(self):
        """``parallel: fsdp`` writes no checkpoints: its weights and AdamW moments are sharded across the
        processes, and the checkpoint format holds one process's whole state."""
        if self.parallel == "fsdp" and vars(self).get("checkpoint_every"):  # a field of each subclass
            raise ValueError("checkpoint_every must be 0 with parallel: fsdp (sharded training writes no checkpoints)")
        return self


class LoraSpec(Section):
    """LoRA adapter settings (peft)."""

    r: int = Field(16, gt=0)
    """Adapter rank."""
    alpha: int = Field(32, gt=0)
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names to adapt."""


class DeepAlignmentSpec(Section):
    """Safety-recovery augmentation (Qi et al., ICLR 2025), used when the recipe names ``deep-alignment``."""

    prefill_prob: float = Field(0.5, ge=0, le=1)
    """Chance that a triplet is trained with a harmful prefix; otherwise plain instruction -> refusal."""
    max_prefix_tokens: int = Field(100, gt=0)
    """k is drawn uniformly in 1..min(this, tokens in the harmful answer)."""


class ConstrainedSpec(Section):
    """Token-wise constrained objective (Qi et al., ICLR 2025), used when the recipe names ``constrained``."""

    beta_first: float = Field(0.5, gt=0)
    """b_1: strength on the first answer token."""
    beta_early: float = Field(2.0, gt=0)
    """b_2 .. b_{early_tokens}: the tokens where shallow alignment lives get the tightest constraint."""
    early_tokens: int = Field(5, ge=1)
    """Last answer position that gets ``beta_early``."""
    beta_rest: float = Field(0.1, gt=0)
    """b_t for every later answer token; small b behaves like cross-entropy."""


Recipe = Literal["sft", "deep-alignment", "constrained", "deep-alignment+constrained"]


class FinetuneSpec(Parallel):
    """The plan's fine-tune: a safety fine-tune, or (with ``task_data``) a downstream fine-tune of an aligned model."""

    enabled: bool = True
    """Fine-tune the model. False: an evaluate-only run (as ``assure evaluate``) that evaluates and gates the
    supplied ``target`` (or ``model``) as it is; the persistence stress fine-tune, which needs training, is off."""
    recipe: Recipe = "sft"
    """Named recipe: a data augmentation and an objective joined by ``+``. ``sft``: cross-entropy on
    assistant tokens. ``deep-alignment``: adds safety-recovery examples built from ``triplet_data``.
    ``constrained``: the token-wise constrained objective against the starting model (for a downstream
    fine-tune, the aligned model it starts from, frozen; its log-probs are computed once before training)."""
    task_data: str | None = None
    """Chat JSONL of the firm's own task, or a built-in (``builtin:benign_stress``). Set, the fine-tune is a
    *downstream* fine-tune of an aligned model on this task data (Qi et al., ICLR 2025, sec. 4): it trains on the
    task examples, mixed with ``safety_data`` at ``safety_mix``, and ``utility_data``/``safety_ratio`` are unused.
    Null (the default): the safety fine-tune on ``safety_data`` and ``utility_data``."""
    safety_mix: float = Field(0.0, ge=0, lt=1)
    """Downstream fine-tune only: the share of safety examples mixed into the task data (0: task data only)."""
    method: Literal["full", "lora"] = "lora"
    """``lora`` trains an adapter; ``full`` trains every weight."""
    safety_data: str = "builtin:safety"
    """Chat JSONL of harmful requests with refusals, or ``builtin:safety``."""
    utility_data: str | None = "builtin:utility"
    """Chat JSONL of ordinary tasks that keep the model useful, ``builtin:utility``, or null."""
    triplet_data: str = "builtin:safety_triplets"
    """JSONL of (instruction, harmful, refusal) triplets for ``deep-alignment``; counted as safety data."""
    safety_ratio: float = Field(0.5, gt=0, le=1)
    """Share of safety examples in the training mix."""
    max_steps: int = Field(200, gt=0, le=MAX_STEPS)
    """Optimizer steps."""
    lr: float = Field(2e-4, gt=0)
    """Peak learning rate (AdamW)."""
    schedule: Literal["linear", "cosine"] = "linear"
    """Decay after warm-up, towards 0 at max_steps."""
    batch_size: int = Field(8, gt=0)
    """Examples per micro-batch, all processes together: under torchrun each of N processes takes every N-th."""
    grad_accum: int = Field(1, gt=0)
    """Micro-batches accumulated per optimizer step."""
    warmup_steps: int = Field(10, ge=0, le=MAX_STEPS)
    """Linear warm-up steps."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""
    max_length: int = Field(256, gt=8)
    """Examples are truncated to this many tokens."""
    bucket_by_length: bool = True
    """Group examples of similar length into micro-batches (less padding; order stays seeded)."""
    checkpoint_every: int = Field(0, ge=0, le=MAX_STEPS)
    """Save a resumable checkpoint every N optimizer steps (0: never)."""
    keep_checkpoints: int = Field(2, ge=1)
    """Checkpoints kept on disk; older ones are deleted. All are removed once training finishes."""
    lora: LoraSpec = Field(default_factory=LoraSpec)
    """Adapter settings when ``method`` is ``lora``."""
    deep_alignment: DeepAlignmentSpec = Field(default_factory=DeepAlignmentSpec)
    """Augmentation settings for ``deep-alignment`` recipes."""
    constrained: ConstrainedSpec = Field(default_factory=ConstrainedSpec)
    """Objective settings for ``constrained`` recipes."""


class StressSpec(Parallel):
    """Persistence stress: a short benign fine-tune of the safety-tuned model, as a customer would run."""

    enabled: bool = True
    """Run the stress stage and evaluate the stressed model."""
    data: str = "builtin:benign_stress"
    """Chat JSONL of benign tasks, or ``builtin:benign_stress``."""
    recipe: Literal["sft", "constrained"] = "sft"
    """``sft``: plain SFT, as a customer would run it (the default). ``constrained``: the token-wise constrained
    objective with the model the stress starts from as its frozen reference."""
    method: Literal["full", "lora"] = "lora"
    """A LoRA safety adapter is merged into the weights first; ``lora`` then trains a fresh adapter."""
    max_steps: int = Field(30, gt=0, le=MAX_STEPS)
    """Optimizer steps."""
    lr: float = Field(1e-4, gt=0)
    """Peak learning rate."""
    batch_size: int = Field(8, gt=0)
    """Examples per step."""
    warmup_steps: int = Field(3, ge=0, le=MAX_STEPS)
    """Linear warm-up steps."""
    max_length: int = Field(256, gt=8)
    """Examples are truncated to this many tokens."""
    checkpoint_every: int = Field(0, ge=0, le=MAX_STEPS)
    """Save a resumable checkpoint every N optimizer steps (0: never; a killed stress run then restarts)."""


TINY_MODEL = "builtin:tiny-chat"
"""The plan's default model: the built-in demo model, which gets its own fine-tune settings (below)."""

TINY_SAFETY_TUNE: dict[str, Any] = dict(
    method="full", lr=3e-3, batch_size=16, warmup_steps=20, weight_decay=0.01, safety_ratio=0.3,
)
"""The safety fine-tune ``builtin:tiny-chat`` gets when the plan sets none of ``TUNING_FIELDS``.

The generic defaults above are for the models people bring (1-8B): LoRA r 16 / alpha 32 at lr 2e-4 for a
few hundred steps is the common recipe (QLoRA, Dettmers et al. 2023: lr 2e-4 for 7-13B models). They teach
the tiny model nothing (measured on the default battery: 24.8% of harmful prompts refused before, 16.7% after).
The learning rate that moves a model grows as it gets narrower (the Tinker cookbook's LoRA rule, after "LoRA
Without Regret", Thinking Machines 2025: lr ~ hidden_size**-0.78), and the tiny model is 128 wide, not
2048-4096, and barely trained: even LoRA at lr 3e-3 (alpha 128 too) left its loss on the refusals at 4.7-5.2,
where full weights at 3e-3 reached 1.3. These are the settings its aligned sibling
(``builtin:tiny-chat-aligned``) was built with: full weights at its own training rate, 30% safety examples;
measured: 77.9% of harmful and 56.9% of benign prompts refused after the tune (it refuses, but tells the two
apart only roughly)."""

TUNING_FIELDS = frozenset({"recipe", "method", "lr", "schedule", "max_steps", "batch_size", "grad_accum",
                           "warmup_steps", "weight_decay", "max_grad_norm", "safety_ratio", "lora", "task_data"})
"""Setting any of these in a plan means the user chose their own fine-tune: the tiny model's settings stay out."""


def tiny_model_tuning(model_path: str, spec: FinetuneSpec) -> FinetuneSpec:
    """``spec`` with ``TINY_SAFETY_TUNE`` applied when the model is ``builtin:tiny-chat`` and the plan set none of
    ``TUNING_FIELDS``; otherwise ``spec`` unchanged. The values land in the recorded plan as explicit fields, so
    a resumed or re-read run sees the same settings."""
    if model_path != TINY_MODEL or not spec.enabled or spec.model_fields_set & TUNING_FIELDS:
        return spec
    return FinetuneSpec.model_validate({**spec.model_dump(exclude_unset=True), **TINY_SAFETY_TUNE})
