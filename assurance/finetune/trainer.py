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
group, wraps the loss module in DDP, gives each rank every N-th row of each
micro-batch (the plan's batch is the global batch, whatever the number of GPUs),
normalises by the global token count, and only rank 0 writes files.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from assurance.distributed import start
from assurance.finetune import checkpoint as ckpt
from assurance.finetune import sharding
from assurance.finetune.augment import TripletTokens
from assurance.finetune.batches import Examples, collate, stream, supervised
from assurance.finetune.mixing import MixResult
from assurance.finetune.objectives import TokenLogProbs, answer_betas, constrained_loss
from assurance.finetune.output import save_output
from assurance.finetune.settings import bf16_autocast, hyperparameters, recipe_settings
from assurance.models.sharded import drain, inference, is_sharded
from assurance.plan import FinetuneSpec

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
    """What training produced and what it cost; everything a FinetuneRecord needs."""

    model: Any
    """The trained model; None after an FSDP fine-tune, whose sharded model is not used again (reload the output)."""
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
    resumed_from_checkpoint_digest: str | None = None


def parse_recipe(recipe: str) -> tuple[str, str]:
    """``deep-alignment+constrained`` -> (augmentation, objective) = ("deep-alignment", "constrained")."""
    parts = recipe.split("+")
    augmentation = "deep-alignment" if "deep-alignment" in parts else "none"
    objective = "constrained" if "constrained" in parts else "sft"
    return augmentation, objective


# ----------------------------------------------------------------------------- model

def wrap_lora(model, lora):
    """Wrap ``model`` in a peft LoRA adapter on the requested modules that exist."""
    from peft import LoraConfig, get_peft_model  # lazy: peft takes seconds to import and only LoRA needs it

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


def rank_rows(rows: list, rank: int, world: int) -> tuple[list, bool]:
    """This rank's share of a micro-batch: every ``world``-th row from ``rank``, so the plan's batch is split
    across ranks, not multiplied by them. (rows, counted): a rank left without a row (a last, short batch)
    takes the first row at zero weight instead, because DDP needs every rank's backward to sync."""
    share = rows[rank::world]
    return (share, True) if share else (rows[:1], False)


def _reference(model, data: Examples, spec, seed: int, world: int, rank: int, pad_id: int,
               device, use_autocast: bool) -> dict[tuple[int, int], torch.Tensor]:
    """log p_ref of every supervised token this rank will train on, from the model as it is now.

    Computed once, before any update: one model in memory instead of a frozen copy.
    For LoRA the adapter is disabled, so the reference is exactly the base model.
    """
    needed: dict[tuple[int, int], Any] = {}
    micro = stream(data, spec.batch_size, seed, spec.bucket_by_length)
    for _ in range(spec.max_steps * spec.grad_accum):
        _, _, rows = next(micro)
        for r in rank_rows(rows, rank, world)[0]:
            needed.setdefault(r.key, r)
    seqs = sorted(needed.values(), key=lambda r: (len(r.ids), r.key))  # length order: little padding
    net = TokenLogProbs(model)
    ref: dict[tuple[int, int], torch.Tensor] = {}
    was_training = model.training
    model.eval()  # no dropout in the reference
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with off, inference(model):
        for i in range(0, len(seqs), 2 * spec.batch_size):
            rows = seqs[i:i + 2 * spec.batch_size]
            b = collate(rows, pad_id)
            mask = None if b["attention_mask"] is None else b["attention_mask"].to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
                lp = net(b["input_ids"].to(device), mask, b["labels"].to(device)).float()
            for r, part in zip(rows, lp.split([supervised(r.labels) for r in rows]), strict=True):
                ref[r.key] = part.clone()
        if is_sharded(model):  # ranks hold different numbers of rows; sharded forwards must pair up
            drain(model, pad_id)
    model.train(was_training)
    return ref


# ----------------------------------------------------------------------------- training

@dataclass
class Counters:
    """What the loop counts on this rank as it trains; a checkpoint keeps them as a list in field order."""

    tokens_seen: int = 0
    """Supervised (final assistant turn) tokens trained on."""
    tokens_safety: int = 0
    """Of those, the tokens of safety examples."""
    tokens_total: int = 0
    """Every non-padding token of the micro-batches, prompts included."""
    prefilled: int = 0
    """Examples drawn with a deep-alignment harmful prefill."""
    recovery_seen: int = 0
    """Triplet (refuse-and-recover) examples drawn."""

    def add(self, data: Examples, rows) -> None:
        for r in rows:
            n = supervised(r.labels)
            self.tokens_seen += n
            self.tokens_safety += n if r.safety else 0
            self.prefilled += r.key[1] > 0
            self.recovery_seen += isinstance(data.items[r.key[0]][1], TripletTokens)

    def as_list(self) -> list[int]:
        return list(astuple(self))


def adamw(named: list[tuple[str, torch.nn.Parameter]], spec) -> torch.optim.AdamW:
    """nanoGPT's rule: decay matrices, not norms and biases."""
    params = [p for _, p in named]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.999), eps=1e-8)


def restore(path: Path, named: list[tuple[str, torch.nn.Parameter]], optimizer, device: torch.device):
    """Put a checkpoint's trainable weights, optimizer state and RNG states back.

    Returns (its step, the loss curve so far, the counters, the wall seconds spent before it)."""
    state = ckpt.load(path)
    by_name = dict(named)
    with torch.no_grad():
        for n, t in state["weights"].items():
            by_name[n].copy_(t.to(device))
    optimizer.load_state_dict(state["optimizer"])
    ckpt.set_rng_state(state["rng"])
    return state["step"], [tuple(x) for x in state["curve"]], Counters(*state["counters"]), state["wall_seconds"]


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
    ranks, device = start(device)  # joins the launcher's process group; each rank on its own GPU
    rank, world = ranks.rank, ranks.world
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
    use_autocast = bf16_autocast(device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()  # the reference pass is part of the cost, so it is inside the clock

    ref = None
    if objective == "constrained":  # before any update and before loading a checkpoint: the *starting* model
        ref = _reference(model, data, spec, seed, world, rank, pad_id, device, use_autocast)
    model.train()

    net = TokenLogProbs(model)
    presharded = is_sharded(model)  # model.parallel: fsdp: the weights arrived in shards (models.sharded)
    fsdp = presharded or (world > 1 and getattr(spec, "parallel", "ddp") == "fsdp")
    root: torch.nn.Module = net
    if presharded:  # its root unit is the causal LM, whose forward the net calls
        root = model.get_base_model() if hasattr(model, "get_base_model") else model
    elif fsdp:  # after the reference pass, which runs the whole model on each rank; before the optimizer sees params
        sharding.shard(net)  # net is the root: its forward is the one the loop calls
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    # LoRA weights added to an already sharded model are whole on every rank, outside FSDP: their
    # gradients are averaged across ranks here, as FSDP does its own.
    unmanaged = sharding.unmanaged(params) if presharded else []
    optimizer = adamw(named, spec)
    ddp = None
    if world > 1 and not fsdp:
        device_ids = [device.index] if device.type == "cuda" else None
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    forward: torch.nn.Module = net if ddp is None else ddp

    start_step, curve, counts, prior_wall = 0, [], Counters(), 0.0
    latest = ckpt.latest(ckpt_dir) if resume else None
    resumed_digest = None
    if latest is not None:
        resumed_digest = ckpt.recorded_digest(latest)  # read now: later checkpoints prune this one
        start_step, curve, counts, prior_wall = restore(latest, named, optimizer, device)

    # The data position is the number of micro-batches consumed: replay the (cheap) index stream to it.
    micro = stream(data, spec.batch_size, seed, spec.bucket_by_length)
    per_step = spec.grad_accum  # micro-batches per optimizer step, all ranks together
    for _ in range(start_step * per_step):
        next(micro)
    epoch, position = 0, 0

    for step in range(start_step, spec.max_steps):
        lr = lr_at(step, spec)
        for g in optimizer.param_groups:
            g["lr"] = lr

        # draw the whole step first so the loss is a mean over all its supervised tokens (on every rank)
        mine = []
        for _ in range(per_step):
            epoch, position, rows = next(micro)
            mine.append(rank_rows(rows, rank, world))
        n_sup = torch.tensor(float(sum(supervised(r.labels) for rows, counted in mine if counted for r in rows)),
                             device=device)
        if world > 1:
            dist.all_reduce(n_sup)
        scale = world / n_sup.clamp(min=1.0)  # DDP averages gradients over ranks; undo that for a global mean

        step_loss = torch.zeros((), device=device)
        for i, (rows, counted) in enumerate(mine):
            b = collate(rows, pad_id)
            ids, labels = b["input_ids"].to(device), b["labels"].to(device)
            mask = None if b["attention_mask"] is None else b["attention_mask"].to(device)
            sync = nullcontext() if ddp is None or i == len(mine) - 1 else ddp.no_sync()
            if fsdp:
                sharding.gradient_sync(root, i == len(mine) - 1)
            with sync:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
                    logp = forward(ids, mask, labels)
                weight = scale if counted else scale * 0.0
                if ref is None:
                    loss = -logp.sum() * weight
                else:
                    ref_lp = torch.cat([ref[r.key] for r in rows])
                    betas = answer_betas(labels, b["start"].to(device), cs)
                    loss = constrained_loss(logp, ref_lp, betas).sum() * weight
                value = loss.item()
                if not math.isfinite(value):
                    raise TrainingDiverged(step + 1, value)
                loss.backward()
            step_loss += loss.detach() / world
            if counted:
                counts.tokens_total += b["n_tokens"]
                counts.add(data, rows)

        if unmanaged:
            sharding.average_gradients(unmanaged, world)
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
                          tokens_per_second=counts.tokens_total * world / elapsed if elapsed > 0 else 0.0))
        if spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0 and step + 1 < spec.max_steps:
            if rank == 0:
                state = {"step": step + 1, "weights": {n: p.detach().cpu() for n, p in named},
                         "optimizer": optimizer.state_dict(), "rng": ckpt.rng_state(), "curve": curve,
                         "counters": counts.as_list(), "wall_seconds": elapsed}
                ckpt.save(ckpt_dir, step + 1, state, {"step": step + 1, "epoch": epoch, "micro_batch": position,
                                                      "micro_batches_consumed": (step + 1) * per_step},
                          keep=spec.keep_checkpoints)
            if world > 1:
                dist.barrier()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = prior_wall + time.perf_counter() - t0
    model.eval()
    whole = sharding.full_state_dict(model) if fsdp else None  # a collective: every rank takes part
    if rank == 0:
        save_output(model, tokenizer, spec.method, output_dir, state_dict=whole)
    if world > 1:
        dist.barrier()

    if world > 1:  # every rank counted its own rows: the record counts the whole run's
        totals = torch.tensor(counts.as_list(), dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        counts = Counters(*(int(v) for v in totals.tolist()))
    hp = hyperparameters(spec, optimizer=optimizer, world=world, device=device, dtype=dtype,
                         use_autocast=use_autocast, data=data, constrained=ref is not None, lora_targets=targets)
    settings, literature = recipe_settings(spec, augmentation, objective, data, recovery_seen=counts.recovery_seen,
                                           prefilled=counts.prefilled)
    hp["recipe_settings"] = settings
    if world > 1:  # how the processes shared the work: ddp, fsdp (training state), or weights loaded in shards
        hp["parallel"] = "fsdp (weights loaded in shards)" if presharded else ("fsdp" if fsdp else "ddp")
    return TrainResult(
        model=None if fsdp else model, output_dir=output_dir, steps=spec.max_steps, loss_curve=thin(curve),
        tokens_seen=counts.tokens_seen, tokens_total=counts.tokens_total,
        tokens_per_second=counts.tokens_total / wall if wall > 0 else 0.0, wall_seconds=wall,
        peak_memory_bytes=peak_memory(device),
        achieved_token_ratio=counts.tokens_safety / counts.tokens_seen if counts.tokens_seen else 0.0,
        hyperparameters=hp, n_safety=mix.n_safety, n_utility=mix.n_utility, achieved_ratio=mix.achieved_ratio,
        recipe=spec.recipe, objective=objective, augmentation=augmentation, recipe_settings=settings,
        literature=literature, resumed_from_step=start_step if latest is not None else None,
        resumed_from_checkpoint_digest=resumed_digest,
    )
