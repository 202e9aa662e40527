"""Fine-tuning on chat data and safety triplets: full weights or a LoRA adapter.

One plain loop, read top to bottom: tokenise, (optionally) wrap in LoRA, compute
reference log-probs if the objective is constrained, resume from the latest
checkpoint if asked, then for max_steps optimizer steps draw seeded micro-batches,
accumulate gradients, clip, step, checkpoint. The loss is a token mean over the
final assistant turn only; the prompt (and a deep-alignment harmful prefill) is
context, not a target. Everything measured here ends up in a FinetuneRecord, so
it must be honest: tokens are counted without padding and ratios as achieved.

Several GPUs: ``accelerate launch --num_processes N -m assurance.cli ...`` (or
torchrun) sets WORLD_SIZE/RANK/LOCAL_RANK; the loop then initialises the process
group, wraps the loss module in DDP, gives each rank every N-th micro-batch,
normalises by the global token count, and only rank 0 writes files.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from assurance.finetune import checkpoint as ckpt
from assurance.finetune.augment import TripletTokens
from assurance.finetune.batches import IGNORE, Examples, collate, stream, supervised
from assurance.finetune.mixing import MixResult
from assurance.finetune.objectives import LITERATURE, constrained_loss, token_logprobs
from assurance.plan import FinetuneSpec

MAX_CURVE_POINTS = 200
# Causal LMs whose forward rescales logits after the head; for these we take the plain (slower) path.
_LOGIT_POSTPROCESS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


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
    """What training produced and what it cost; everything a FinetuneRecord needs."""

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
    recipe: str = "sft"
    objective: str = "sft"
    augmentation: str = "none"
    recipe_settings: dict[str, Any] = field(default_factory=dict)
    literature: list[str] = field(default_factory=list)
    resumed_from_step: int | None = None


def parse_recipe(recipe: str) -> tuple[str, str]:
    """``deep-alignment+constrained`` -> (augmentation, objective) = ("deep-alignment", "constrained")."""
    parts = recipe.split("+")
    augmentation = "deep-alignment" if "deep-alignment" in parts else "none"
    objective = "constrained" if "constrained" in parts else "sft"
    return augmentation, objective


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


class TokenLogProbs(torch.nn.Module):
    """log p(label) at every supervised position, as one flat vector in row-major order.

    The LM head runs only on supervised positions: on a small model the vocabulary
    projection of every prompt and pad token is most of the forward cost. This is
    the module DDP wraps, so gradient sync sees a normal forward.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.fast = not any(getattr(base.config, a, None) for a in _LOGIT_POSTPROCESS)
        self._parts = (base.get_decoder(), base.get_output_embeddings())  # a tuple: not re-registered

    def forward(self, input_ids, attention_mask, labels):
        sel = labels[:, 1:] != IGNORE
        if self.fast:
            backbone, head = self._parts
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            logits = head(hidden[:, :-1][sel])
        else:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1][sel]
        return token_logprobs(logits, labels[:, 1:][sel])


def answer_betas(labels: torch.Tensor, start: torch.Tensor, c) -> torch.Tensor:
    """b_t for each supervised token; t = 1 at the first token of the assistant turn."""
    t = torch.arange(1, labels.size(1), device=labels.device).unsqueeze(0) - start.unsqueeze(1) + 1
    t = t[labels[:, 1:] != IGNORE].float()
    return torch.where(t <= 1, c.beta_first, torch.where(t <= c.early_tokens, c.beta_early, c.beta_rest))


def lr_at(step: int, spec) -> float:
    """Linear warm-up to spec.lr, then linear or cosine decay towards 0 at max_steps."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / (spec.warmup_steps + 1)
    frac = (step - spec.warmup_steps) / max(1, spec.max_steps - spec.warmup_steps)
    if getattr(spec, "schedule", "linear") == "cosine":
        return spec.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return spec.lr * (1.0 - frac)


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


def distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this rank's device); starts the process group under accelerate/torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def _reference(model, data: Examples, spec, seed: int, world: int, rank: int, pad_id: int,
               device, use_autocast: bool) -> dict[tuple[int, int], torch.Tensor]:
    """log p_ref of every supervised token this rank will train on, from the model as it is now.

    Computed once, before any update: one model in memory instead of a frozen copy.
    For LoRA the adapter is disabled, so the reference is exactly the base model.
    """
    needed: dict[tuple[int, int], Any] = {}
    micro = stream(data, spec.batch_size, seed, spec.bucket_by_length)
    for n in range(spec.max_steps * spec.grad_accum * world):
        _, _, rows = next(micro)
        if n % world == rank:
            for r in rows:
                needed.setdefault(r.key, r)
    seqs = sorted(needed.values(), key=lambda r: (len(r.ids), r.key))  # length order: little padding
    net = TokenLogProbs(model)
    ref: dict[tuple[int, int], torch.Tensor] = {}
    was_training = model.training
    model.eval()  # no dropout in the reference
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with off, torch.inference_mode():
        for i in range(0, len(seqs), 2 * spec.batch_size):
            rows = seqs[i:i + 2 * spec.batch_size]
            b = collate(rows, pad_id)
            mask = None if b["attention_mask"] is None else b["attention_mask"].to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
                lp = net(b["input_ids"].to(device), mask, b["labels"].to(device)).float()
            for r, part in zip(rows, lp.split([supervised(r.labels) for r in rows])):
                ref[r.key] = part.clone()
    model.train(was_training)
    return ref


# ----------------------------------------------------------------------------- training

def train(model, tokenizer, mix: MixResult, spec: FinetuneSpec, *, seed: int, device: torch.device,
          dtype: torch.dtype, output_dir: Path, progress: Callable[[dict], None] | None = None,
          resume: bool = False) -> TrainResult:
    """Fine-tune ``model`` on ``mix`` for ``spec.max_steps`` optimizer steps and save it to ``output_dir``.

    The recipe (``spec.recipe``) picks the augmentation of triplet examples in the mix
    and the objective. ``resume``: continue from the newest checkpoint in
    ``output_dir/checkpoints`` if there is one (identical result to an uninterrupted run).
    """
    output_dir = Path(output_dir)
    ckpt_dir = output_dir / "checkpoints"
    rank, world, device = distributed(device)
    augmentation, objective = parse_recipe(spec.recipe)
    da, cs = getattr(spec, "deep_alignment", None), getattr(spec, "constrained", None)
    torch.manual_seed(seed)  # before LoRA init, so adapter weights are seeded too

    data = Examples(tokenizer, mix.examples, spec.max_length, seed=seed, augment=augmentation != "none",
                    prefill_prob=da.prefill_prob if da else 0.5, max_prefix=da.max_prefix_tokens if da else 100)
    if len(data) == 0:
        raise ValueError(f"every example's prompt fills max_length={spec.max_length}; nothing left to train on")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    targets = None
    if spec.method == "lora":
        model, targets = wrap_lora(model, spec.lora)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.to(device)
    use_autocast = device.type == "cuda" and dtype == torch.bfloat16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()  # the reference pass is part of the cost, so it is inside the clock

    ref = None
    if objective == "constrained":  # before any update and before loading a checkpoint: the *starting* model
        ref = _reference(model, data, spec, seed, world, rank, pad_id, device, use_autocast)
    model.train()

    # nanoGPT's rule: decay matrices, not norms and biases
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)
    net = TokenLogProbs(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    start_step, curve, prior_wall = 0, [], 0.0
    tok_seen = tok_safety = tok_total = 0
    n_prefilled = n_recovery_seen = 0
    resumed_from = None
    latest = ckpt.latest(ckpt_dir) if resume else None
    if latest is not None:
        state = ckpt.load(latest)
        by_name = dict(named)
        with torch.no_grad():
            for n, t in state["weights"].items():
                by_name[n].copy_(t.to(device))
        optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"])
        start_step = resumed_from = state["step"]
        curve = [tuple(x) for x in state["curve"]]
        tok_seen, tok_safety, tok_total, n_prefilled, n_recovery_seen = state["counters"]
        prior_wall = state["wall_seconds"]

    # The data position is the number of micro-batches consumed: replay the (cheap) index stream to it.
    micro = stream(data, spec.batch_size, seed, spec.bucket_by_length)
    per_step = spec.grad_accum * world
    for _ in range(start_step * per_step):
        next(micro)
    epoch, position = 0, 0

    for step in range(start_step, spec.max_steps):
        lr = lr_at(step, spec)
        for g in optimizer.param_groups:
            g["lr"] = lr

        # draw the whole step first so the loss is a mean over all its supervised tokens (on every rank)
        mine = []
        for n in range(per_step):
            epoch, position, rows = next(micro)
            if n % world == rank:
                mine.append(rows)
        n_sup = torch.tensor(float(sum(supervised(r.labels) for rows in mine for r in rows)), device=device)
        if world > 1:
            dist.all_reduce(n_sup)
        scale = world / n_sup.clamp(min=1.0)  # DDP averages gradients over ranks; undo that for a global mean

        step_loss = torch.zeros((), device=device)
        for i, rows in enumerate(mine):
            b = collate(rows, pad_id)
            ids, labels = b["input_ids"].to(device), b["labels"].to(device)
            mask = None if b["attention_mask"] is None else b["attention_mask"].to(device)
            sync = nullcontext() if world == 1 or i == len(mine) - 1 else net.no_sync()
            with sync:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
                    logp = net(ids, mask, labels)
                if ref is None:
                    loss = -logp.sum() * scale
                else:
                    ref_lp = torch.cat([ref[r.key] for r in rows])
                    loss = constrained_loss(logp, ref_lp, answer_betas(labels, b["start"].to(device), cs)).sum() * scale
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDiverged(step + 1, value)
                loss.backward()
            step_loss += loss.detach() / world
            tok_total += b["n_tokens"]
            for r in rows:
                n = supervised(r.labels)
                tok_seen += n
                tok_safety += n if r.safety else 0
                n_prefilled += r.key[1] > 0
                n_recovery_seen += _is_triplet(data, r)

        norm = torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        if not torch.isfinite(norm):
            raise TrainingDiverged(step + 1, float(norm), what="gradient norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        if world > 1:
            dist.all_reduce(step_loss)
        curve.append((step + 1, float(step_loss)))
        elapsed = prior_wall + time.perf_counter() - t0
        if progress is not None:
            progress(dict(step=step + 1, max_steps=spec.max_steps, loss=curve[-1][1], lr=lr,
                          tokens_per_second=tok_total * world / elapsed if elapsed > 0 else 0.0))
        if spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0 and step + 1 < spec.max_steps:
            if rank == 0:
                state = {"step": step + 1, "weights": {n: p.detach().cpu() for n, p in named},
                         "optimizer": optimizer.state_dict(), "rng": ckpt.rng_state(), "curve": curve,
                         "counters": [tok_seen, tok_safety, tok_total, n_prefilled, n_recovery_seen],
                         "wall_seconds": elapsed}
                ckpt.save(ckpt_dir, step + 1, state, {"step": step + 1, "epoch": epoch, "micro_batch": position,
                                                      "micro_batches_consumed": (step + 1) * per_step},
                          keep=spec.keep_checkpoints)
            if world > 1:
                dist.barrier()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = prior_wall + time.perf_counter() - t0
    model.eval()

    if rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        # LoRA: adapter_model.safetensors + adapter_config.json. Full: model.safetensors.
        model.save_pretrained(output_dir)
        if spec.method == "full":
            tokenizer.save_pretrained(output_dir)
        # Checkpoints exist for crash recovery only; the finished output is the artifact whose digest is recorded.
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    if world > 1:
        dist.barrier()

    effective = spec.batch_size * spec.grad_accum * world
    hp: dict[str, Any] = {
        "recipe": spec.recipe, "method": spec.method, "max_steps": spec.max_steps, "lr": spec.lr,
        "batch_size": spec.batch_size, "grad_accum": spec.grad_accum, "world_size": world,
        "effective_batch_size": effective, "warmup_steps": spec.warmup_steps,
        "schedule": f"linear_warmup_{getattr(spec, 'schedule', 'linear')}_decay", "optimizer": "AdamW",
        "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": spec.weight_decay,
        "weight_decay_applies_to": "parameters with 2+ dims", "max_grad_norm": spec.max_grad_norm,
        "max_length": spec.max_length, "safety_ratio": getattr(spec, "safety_ratio", None),
        "bucket_by_length": spec.bucket_by_length, "checkpoint_every": spec.checkpoint_every,
        "loss": "token mean over the final assistant turn of "
                + ("the token-wise constrained loss" if ref is not None else "cross-entropy"),
        "dtype": str(dtype).removeprefix("torch."), "device": device.type, "autocast_bf16": use_autocast,
        "examples": len(data), "examples_dropped_by_truncation": data.dropped,
        "epochs": round(spec.max_steps * effective / len(data), 4),
    }
    if spec.method == "lora":
        hp["lora"] = {"r": spec.lora.r, "alpha": spec.lora.alpha, "dropout": spec.lora.dropout,
                      "target_modules": list(spec.lora.target_modules), "target_modules_used": targets}
    settings: dict[str, Any] = {}
    literature = []
    if augmentation != "none":
        settings["deep_alignment"] = {"prefill_prob": da.prefill_prob, "max_prefix_tokens": da.max_prefix_tokens,
                                      "triplets": data.n_triplets, "recovery_examples_seen": n_recovery_seen,
                                      "prefilled_examples_seen": n_prefilled,
                                      "redrawn": "every epoch, from (seed, epoch, example index)"}
        literature.append(LITERATURE["deep-alignment"])
    if objective == "constrained":
        settings["constrained"] = {"beta_first": cs.beta_first, "beta_early": cs.beta_early,
                                   "early_tokens": cs.early_tokens, "beta_rest": cs.beta_rest,
                                   "reference": "the starting model" + (" (adapter disabled)" if spec.method == "lora" else "")
                                                + ", log-probs computed once before training"}
        literature.append(LITERATURE["constrained"])
    hp["recipe_settings"] = settings

    return TrainResult(
        model=model, output_dir=output_dir, steps=spec.max_steps, loss_curve=thin(curve),
        tokens_seen=tok_seen, tokens_total=tok_total * world,
        tokens_per_second=tok_total * world / wall if wall > 0 else 0.0, wall_seconds=wall,
        peak_memory_bytes=peak_memory(device),
        achieved_token_ratio=tok_safety / tok_seen if tok_seen else 0.0,
        hyperparameters=hp, n_safety=mix.n_safety, n_utility=mix.n_utility, achieved_ratio=mix.achieved_ratio,
        recipe=spec.recipe, objective=objective, augmentation=augmentation, recipe_settings=settings,
        literature=literature, resumed_from_step=resumed_from,
    )


def _is_triplet(data: Examples, r) -> bool:
    return isinstance(data.items[r.key[0]][1], TripletTokens)
