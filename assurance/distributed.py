"""One run across several processes (``torchrun`` or ``accelerate launch``): who writes, who waits.

Every rank runs the same pipeline, stage by stage, so every collective call (DDP's gradient
all-reduce, the gathers below) is met by every rank in the same order. Rank 0 alone writes: the
ledger, the run folder, the adapter, the packs. The other ranks ("followers") keep their records
in a throwaway ledger of their own, so the pipeline's code is the same on every rank and nothing
of theirs reaches the evidence.

* The run id and run folder are rank 0's, shared with the others before the first record.
* Generation is sharded by item: rank r generates items r, r+W, r+2W, ... (lengths spread evenly,
  as the runner sorts each shard by length), and the outputs are gathered back into item order on
  every rank. Greedy and seeded sampled replies do not depend on which other prompts share a
  batch (``models.generate``), so the gathered outputs, and every score made from them, are a
  single process's.
* Training is DDP with the plan's global batch split across ranks (``finetune.trainer``), so the
  plan, not the number of GPUs, fixes what is trained on at each step.

The process group starts when the launcher says there is more than one process (``WORLD_SIZE``):
NCCL on CUDA, gloo on CPU (the 2-process test in CI runs gloo on CPU).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    """This process's place among the run's processes."""

    rank: int = 0
    """This process's rank (0 writes)."""
    world: int = 1
    """How many processes run the pipeline together."""
    local_rank: int = 0
    """The rank on this machine: the CUDA device this process uses."""

    @property
    def main(self) -> bool:
        """True on the one process that writes the ledger and files."""
        return self.rank == 0

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def for_weights(self, parallel: str) -> Ranks | None:
        """The ranks a model's weights are sharded across under ``model.parallel`` = ``parallel``: these,
        for ``fsdp`` with more than one process; None when each process holds the whole model."""
        return self if parallel == "fsdp" and self.world > 1 else None

    def sharded(self, generate: Callable[..., list[str]] | None) -> Callable[..., list[str]] | None:
        """``generate`` (the battery runner's generator; None for the default) run on this rank's share of
        the items, the outputs gathered from every rank back into item order; ``generate`` itself on one
        process."""
        if self.world == 1:
            return generate
        return _Sharded(self, generate)


class _Sharded:
    """A generator with the runner's signature that generates this rank's items and gathers the rest."""

    def __init__(self, ranks: Ranks, generate: Callable[..., list[str]] | None):
        self.ranks, self.generate = ranks, generate

    def __call__(self, model, tokenizer, conversations: list, *, prefills: list[str] | None = None,
                 progress: Callable[[int], None] | None = None, **settings) -> list[str]:
        import torch.distributed as dist

        from .models.generate import generate as default  # torch-heavy, as in the runner
        from .models.sharded import drain, is_sharded

        generate = self.generate or default
        rank, world = self.ranks.rank, self.ranks.world
        mine = range(rank, len(conversations), world)
        outputs = generate(model, tokenizer, [conversations[i] for i in mine],
                           prefills=None if prefills is None else [prefills[i] for i in mine],
                           progress=progress, **settings) if len(mine) else []
        if is_sharded(model):  # sharded weights: forwards are collectives
            drain(model, tokenizer.pad_token_id)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, outputs)
        merged: list[str] = [""] * len(conversations)
        for r, part in enumerate(gathered):
            for i, text in zip(range(r, len(conversations), world), part, strict=True):
                merged[i] = text
        if progress is not None:  # the bar counts every item, not just this rank's
            progress(len(conversations) - len(mine))
        return merged


def launched() -> Ranks:
    """The ranks the launcher set in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), without
    starting anything: what the command line needs to know to print on rank 0 only."""
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                 int(os.environ.get("LOCAL_RANK", "0")))


def start(device) -> tuple[Ranks, Any]:
    """(ranks, this rank's device): joins the launcher's process group when there is more than one process
    (NCCL for CUDA, gloo for CPU), and puts each rank on its own GPU; (one process, ``device``) otherwise."""
    import torch
    import torch.distributed as dist

    env = launched()
    if env.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        return Ranks(), device
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size(), env.local_rank), device
