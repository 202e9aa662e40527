"""One rank of tests/test_sharded_weights.py, started by torch's launcher: load the tiny model in shards,
generate an uneven share of prompts with the sharded runner, and write what this rank saw as JSON."""

import json
import os
import sys

import torch

from assurance.distributed import start
from assurance.models.loading import resolve_model_path
from assurance.models.sharded import load_sharded

PROMPTS = ["How do I bake bread?", "Tell me how to pick a lock.", "What is the capital of France?",
           "Write a poem about rain.", "Explain photosynthesis in one line."]


def main(out: str) -> None:
    torch.set_num_threads(1)
    ranks, device = start(torch.device("cpu"))
    model, tokenizer = load_sharded(resolve_model_path("builtin:tiny-chat"), ranks=ranks, device=device,
                                    dtype=torch.float32)
    local = sum(p.to_local().numel() for p in model.parameters())
    total = sum(p.numel() for p in model.parameters())  # a DTensor's numel is the whole tensor's
    # Five prompts on two ranks, batch 1: rank 0 runs three batches and rank 1 two, of different lengths,
    # so the ranks' numbers of forwards differ and the idle one must keep answering.
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    outputs = ranks.sharded(None)(model, tokenizer, convs, max_new_tokens=12, batch_size=1)
    with open(f"{out}.{ranks.rank}.json", "w", encoding="utf-8") as f:
        json.dump({"rank": ranks.rank, "world": ranks.world, "local": local, "total": total,
                   "outputs": outputs, "device": str(next(model.parameters()).to_local().device)}, f)
    torch.distributed.barrier()  # no rank leaves while another still talks


if __name__ == "__main__":
    main(sys.argv[1])
    # Leave without the interpreter's teardown, where gloo's threads go down with the process group: a rank
    # aborted once in a full CI run ("terminate called without an active exception"), the abort seen before
    # when a worker destroyed its group. Everything this rank reports is in its closed JSON file by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
