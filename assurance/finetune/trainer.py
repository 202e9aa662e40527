"""Supervised fine-tuning on chat data: full weights or a LoRA adapter.

One plain loop, read top to bottom: tokenise, (optionally) wrap in LoRA, then
for max_steps optimizer steps draw seeded batches, accumulate gradients, clip,
step. The loss is the token mean of cross-entropy over the final assistant turn
only; the prompt teaches nothing and would dilute the safety signal.
Everything measured here ends up in a FinetuneRecord, so it must be honest:
tokens are counted without padding and the ratio is reported as achieved.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from assurance.finetune.mixing import SAFETY, MixResult
from assurance.plan import FinetuneSpec

IGNORE = -100
SCHEDULE = "linear_warmup_linear_decay"
MAX_CURVE_POINTS = 200


class TrainingDiverged(RuntimeError):
    """The loss (or gradient) became NaN or infinite; the weights are no longer trustworthy."""

    def __init__(self, step: int, loss: float, what: str = "loss"):
        self.step, self.loss = step, loss
        super().__init__(
            f"training diverged at step {step}: {what} is {loss} "
            f"(try a lower learning rate or a smaller max_grad_norm)"
        )


@dataclass
class TrainResult:
    """What training produced and what it cost."""

    model: Any
    output_dir: Path
    steps: int
    loss_curve: list[tuple[int, float]]
    tokens_seen: int
    tokens_total: int
    tokens_per_second: float
    wall_seconds: float
    peak_memory_bytes: int
    achieved_token_ratio: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    n_safety: int = 0
    n_utility: int = 0
    achieved_ratio: float = 1.0


# ----------------------------------------------------------------------------- data

def encode(tokenizer, conv: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one conversation; labels are -100 on the prompt.

    Prompt and answer are tokenised separately and joined, so the boundary never
    falls inside a merged BPE token, and the prompt tokens match what the model
    sees at generation time (the prompt rendered with add_generation_prompt).
    """
    full = tokenizer.apply_chat_template(conv, tokenize=False)
    prompt = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template's generation prompt is not a prefix of the full conversation, "
            "so the answer tokens cannot be located for loss masking.\n"
            f"  prompt ends: {prompt[-80:]!r}\n  full text:   {full[len(prompt) - 80:len(prompt) + 20]!r}"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
    return ids, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch; padding gets label -100 and attention mask 0."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def supervised(labels: list[int]) -> int:
    # labels[0] is never predicted (nothing precedes it), matching the shifted loss below
    return sum(1 for y in labels[1:] if y != IGNORE)


# ----------------------------------------------------------------------------- model

def wrap_lora(model, lora):
    """Wrap ``model`` in a peft LoRA adapter on the requested modules that exist."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    targets = [t for t in lora.target_modules if t in present]
    if not targets:
        raise ValueError(
            f"none of the LoRA target_modules {lora.target_modules} exist in this model; "
            f"its linear layers are named: {', '.join(sorted(present))}"
        )
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config), targets


def lr_at(step: int, spec: FinetuneSpec) -> float:
    """Linear warm-up to spec.lr, then linear decay towards 0 at max_steps."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / (spec.warmup_steps + 1)
    return spec.lr * (spec.max_steps - step) / max(1, spec.max_steps - spec.warmup_steps)


def thin(curve: list[tuple[int, float]], n: int = MAX_CURVE_POINTS) -> list[tuple[int, float]]:
    """At most n evenly spaced points, always keeping the first and last."""
    if len(curve) <= n:
        return list(curve)
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS reports bytes, Linux KiB


# ----------------------------------------------------------------------------- training

def train(model, tokenizer, mix: MixResult, spec: FinetuneSpec, *, seed: int, device: torch.device,
          dtype: torch.dtype, output_dir: Path,
          progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Fine-tune ``model`` on ``mix`` for ``spec.max_steps`` optimizer steps and save it to ``output_dir``."""
    output_dir = Path(output_dir)
    torch.manual_seed(seed)  # before LoRA init, so adapter weights are seeded too

    # tokenise once; examples whose answer was truncated away entirely carry no signal
    data, sources, dropped = [], [], 0
    for source, conv in mix.examples:
        ids, labels = encode(tokenizer, conv, spec.max_length)
        if supervised(labels) == 0:
            dropped += 1
            continue
        data.append((ids, labels))
        sources.append(source)
    if not data:
        raise ValueError(f"every example's prompt fills max_length={spec.max_length}; nothing left to train on")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    targets = None
    if spec.method == "lora":
        model, targets = wrap_lora(model, spec.lora)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.to(device)
    model.train()

    # nanoGPT's rule: decay matrices, not norms and biases
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)
    use_autocast = device.type == "cuda" and dtype == torch.bfloat16

    # seeded endless stream of batches, reshuffled every epoch
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            order = torch.randperm(len(data), generator=gen).tolist()
            for i in range(0, len(order), spec.batch_size):
                yield order[i:i + spec.batch_size]

    stream = batches()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    curve: list[tuple[int, float]] = []
    tok_seen = tok_safety = tok_total = 0
    t0 = time.perf_counter()

    for step in range(spec.max_steps):
        lr = lr_at(step, spec)
        for g in optimizer.param_groups:
            g["lr"] = lr

        # draw the whole step first so the loss is a mean over all its supervised tokens
        micro = [next(stream) for _ in range(spec.grad_accum)]
        n_sup = sum(supervised(data[i][1]) for b in micro for i in b)
        step_loss = 0.0
        for b in micro:
            batch = {k: v.to(device) for k, v in collate([data[i] for i in b], pad_id).items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               use_cache=False).logits
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)),
                                   batch["labels"][:, 1:].reshape(-1), ignore_index=IGNORE, reduction="sum") / n_sup
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(step + 1, value)
            loss.backward()
            step_loss += value
            tok_total += int(batch["attention_mask"].sum())
            for i in b:
                n = supervised(data[i][1])
                tok_seen += n
                tok_safety += n if sources[i] == SAFETY else 0

        norm = torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        if not torch.isfinite(norm):
            raise TrainingDiverged(step + 1, float(norm), what="gradient norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        curve.append((step + 1, step_loss))
        if progress is not None:
            elapsed = time.perf_counter() - t0
            progress(dict(step=step + 1, max_steps=spec.max_steps, loss=step_loss, lr=lr,
                          tokens_per_second=tok_total / elapsed if elapsed > 0 else 0.0))

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    model.eval()

    output_dir.mkdir(parents=True, exist_ok=True)
    # LoRA: adapter_model.safetensors + adapter_config.json. Full: model.safetensors
    # (the default in transformers 4.35+, the only format in 5, which dropped safe_serialization).
    model.save_pretrained(output_dir)
    if spec.method == "full":
        tokenizer.save_pretrained(output_dir)

    effective = spec.batch_size * spec.grad_accum
    hp: dict[str, Any] = {
        "recipe": spec.recipe, "method": spec.method, "max_steps": spec.max_steps, "lr": spec.lr,
        "batch_size": spec.batch_size, "grad_accum": spec.grad_accum, "effective_batch_size": effective,
        "warmup_steps": spec.warmup_steps, "schedule": SCHEDULE, "optimizer": "AdamW",
        "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": spec.weight_decay,
        "weight_decay_applies_to": "parameters with 2+ dims", "max_grad_norm": spec.max_grad_norm,
        "max_length": spec.max_length, "safety_ratio": spec.safety_ratio,
        "loss": "token-mean cross-entropy on the final assistant turn",
        "dtype": str(dtype).removeprefix("torch."), "device": device.type, "autocast_bf16": use_autocast,
        "examples": len(data), "examples_dropped_by_truncation": dropped,
        "epochs": round(spec.max_steps * effective / len(data), 4),
    }
    if spec.method == "lora":
        hp["lora"] = {"r": spec.lora.r, "alpha": spec.lora.alpha, "dropout": spec.lora.dropout,
                      "target_modules": list(spec.lora.target_modules), "target_modules_used": targets}

    return TrainResult(
        model=model, output_dir=output_dir, steps=spec.max_steps, loss_curve=thin(curve),
        tokens_seen=tok_seen, tokens_total=tok_total,
        tokens_per_second=tok_total / wall if wall > 0 else 0.0, wall_seconds=wall,
        peak_memory_bytes=peak_memory(device),
        achieved_token_ratio=tok_safety / tok_seen if tok_seen else 0.0,
        hyperparameters=hp, n_safety=mix.n_safety, n_utility=mix.n_utility, achieved_ratio=mix.achieved_ratio,
    )
