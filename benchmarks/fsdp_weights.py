"""``model.parallel: fsdp`` against the whole model: what loading in shards costs, and whether it changes anything.

Builds a Llama (random weights; ``--tiny``: the tiny shape on CPU, else the ~1B shape of ``h200.py`` in bf16 on
CUDA), saves it to a folder, then, in this one process:

* loads it whole (``load_model``) and in shards (``load_sharded``), and keeps both: a process group of the
  launcher's size, or of one process when run plainly (every FSDP hook, gather and lockstep all-reduce still
  runs, over NCCL on a GPU);
* generates the same battery prompts with both (greedy, after a warm-up at the same shapes), counts the replies
  that differ, and times both (two interleaved repeats, best of each);
* trains a few LoRA steps on the sharded model (bf16 autocast on CUDA) and checks the loss is finite.

Prints ``name=value`` lines and, last, ``ratio=<sharded time / whole time>`` for generation (above 1: the
price of gathering weights at every forward). Under ``torchrun --nproc_per_node N`` each rank holds 1/N.

    python benchmarks/fsdp_weights.py            # a GPU machine (a minute or two)
    python benchmarks/fsdp_weights.py --tiny     # anywhere, seconds
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402  (after the path above)
import torch.distributed as dist  # noqa: E402
from _hf_batched import battery_prompts, mismatches  # noqa: E402
from h200 import LLAMA_1B, TINY, build_model, long_conversations, sync  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    from assurance.distributed import Ranks, start
    from assurance.finetune.mixing import MixResult
    from assurance.finetune.trainer import train
    from assurance.models.generate import generate
    from assurance.models.loading import load_model
    from assurance.models.sharded import load_sharded
    from assurance.models.tiny import build_tokenizer, corpus, read_inputs
    from assurance.plan.training import FinetuneSpec

    cuda = not args.tiny and torch.cuda.is_available()
    if not args.tiny and not cuda:
        raise SystemExit("no CUDA device: run with --tiny on CPU")
    device, dtype = (torch.device("cuda"), torch.bfloat16) if cuda else (torch.device("cpu"), torch.float32)
    torch.set_num_threads(1 if not cuda else torch.get_num_threads())
    ranks, device = start(device)  # the launcher's processes, if launched
    if not dist.is_initialized():  # one process: a group of one, so every collective still runs
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
        ranks = Ranks()
    tokenizer = build_tokenizer(corpus(read_inputs()))
    prompts, batch, new = (battery_prompts(16), 8, 12) if args.tiny else (battery_prompts(256), 64, 64)
    with tempfile.TemporaryDirectory(prefix="fsdp-weights-") as tmp:
        folder = Path(tmp)
        if ranks.main:
            model = build_model(tokenizer, TINY if args.tiny else LLAMA_1B, torch.device("cpu"), dtype)
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            del model
        folder = Path(ranks.share(str(folder)))
        whole, tok = load_model(folder, device=device, dtype=dtype)
        model, tok = load_sharded(folder, ranks=ranks, device=device, dtype=dtype)
        runs = {"whole": whole, "sharded": model}
        gen = ranks.sharded(None) or generate
        times: dict[str, list[float]] = {name: [] for name in runs}
        outs: dict[str, list[str]] = {}
        for m in runs.values():  # warm-up at the measured shapes: kernels, allocator
            gen(m, tok, prompts[:batch], max_new_tokens=new, batch_size=batch)
        for _ in range(2):  # interleaved, best of each
            for name, m in runs.items():
                sync(device)
                t = time.perf_counter()
                outs[name] = gen(m, tok, prompts, max_new_tokens=new, batch_size=batch)
                sync(device)
                times[name].append(time.perf_counter() - t)
        del whole, runs
        local = sum(p.to_local().numel() for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        steps = 3
        mix = MixResult(examples=[("utility", c) for c in long_conversations(4 * steps, 128)], n_safety=0,
                        n_utility=4 * steps, achieved_ratio=0.0)
        spec = FinetuneSpec(method="lora", max_steps=steps, batch_size=4, max_length=128, lr=1e-4, warmup_steps=1,
                            utility_data=None, parallel="fsdp")
        result = train(model, tok, mix, spec, seed=0, device=device, dtype=dtype, output_dir=folder / "adapter")
        if ranks.main:
            print(f"device={torch.cuda.get_device_name(device) if cuda else 'cpu'} dtype={dtype} "
                  f"processes={ranks.world}")
            print(f"params_total={total} params_this_rank={local}")
            print(f"prompts={len(prompts)} batch={batch} max_new_tokens={new}")
            print(f"mismatches_sharded_vs_whole={len(mismatches(outs['sharded'], outs['whole']))}")
            print(f"whole_s={min(times['whole']):.3f} sharded_s={min(times['sharded']):.3f} (all: {times})")
            print(f"lora_steps={result.steps} lora_losses={[round(v, 4) for _, v in result.loss_curve]} "
                  f"peak_memory_gib={result.peak_memory_bytes / 2**30:.2f}")
            print(f"ratio={min(times['sharded']) / min(times['whole']):.2f}")
    dist.barrier()  # as `assure run`: leave together, without destroy_process_group (gloo can abort a rank then)
    return 0


if __name__ == "__main__":
    sys.exit(main())
