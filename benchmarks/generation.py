"""Our batched generation against Hugging Face's: one-at-a-time and batched ``model.generate``, tiny demo model.

Generates the same 128 battery prompts three ways: a plain loop calling ``model.generate`` on one prompt at a
time; Hugging Face's ``model.generate`` batched at our batch size, on the same length-sorted groups (the fair
baseline, see ``_hf_batched.py``); and ``assurance.models.generate.generate`` with batch 64 (the demo's and
the default plan's batch size; ``ASSURE_BENCH_BATCH`` overrides it). Checks that all three give the same
greedy replies, and prints ``ratio_single=<one-at-a-time / ours>`` and, as the last line,
``ratio=<HF batched / ours>`` (higher is better; a ratio needs no reference machine). Each is run
``ASSURE_BENCH_REPEATS`` times (default 3), interleaved, and the best time of each is compared.
Times are the process's CPU time (torch runs one thread, so that is the work done): on a shared machine
wall time mostly measures the neighbours (ratios from 0.8 to 1.5 in three runs of the same code);
``ratio_wall=`` gives the wall-clock ratio beside it.

``ASSURE_BENCH_DEVICE=cuda`` runs the same comparison on a GPU (float32, TF32 off, so the three must
still agree token for token); there the times are wall clock after a device synchronise, since CPU
time would only count the launching of kernels.

Torch runs single-threaded here unless ``ASSURE_BENCH_THREADS`` says otherwise:
on a small, busy machine (2 shared cores) OpenMP threads waiting on each other
made both runs 10-50x slower and the ratio pure noise, while one thread
measures what batching itself buys.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _hf_batched import battery_prompts, hf_batched, mismatches, one_at_a_time
from h200 import sync

from assurance.models.generate import generate
from assurance.models.loading import load_model, resolve_model_path

N_PROMPTS = 128
MAX_NEW_TOKENS = 32
BATCH_SIZE = int(os.environ.get("ASSURE_BENCH_BATCH", "64"))  # the demo plan's and the default plan's batch size
DEVICE = torch.device(os.environ.get("ASSURE_BENCH_DEVICE", "cpu"))


def clock() -> float:
    """CPU time on CPU; wall time once queued GPU work has finished on a GPU."""
    if DEVICE.type == "cuda":
        sync(DEVICE)
        return time.perf_counter()
    return time.process_time()


def main() -> int:
    torch.set_num_threads(int(os.environ.get("ASSURE_BENCH_THREADS", "1")))
    torch.backends.cuda.matmul.allow_tf32 = False  # on a GPU: float32 products stay float32, so outputs agree
    model, tokenizer = load_model(resolve_model_path("builtin:tiny-chat"), device=DEVICE, dtype=torch.float32)
    convs = battery_prompts(N_PROMPTS)
    kw = dict(max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE)
    generate(model, tokenizer, convs[:4], max_new_tokens=4, batch_size=4)  # warm-up, untimed
    hf_batched(model, tokenizer, convs[:4], max_new_tokens=4, batch_size=4)
    # Interleaved repeats, best of each: on a shared machine the minimum is the
    # least noisy estimate of what the code costs (other load only adds time).
    repeats = int(os.environ.get("ASSURE_BENCH_REPEATS", "3"))
    runs = {"single": lambda: one_at_a_time(model, tokenizer, convs, max_new_tokens=MAX_NEW_TOKENS),
            "hf_batched": lambda: hf_batched(model, tokenizer, convs, **kw),
            "ours": lambda: generate(model, tokenizer, convs, **kw)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    walls: dict[str, list[float]] = {name: [] for name in runs}
    outs: dict[str, list[str]] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            t, w = clock(), time.perf_counter()
            outs[name] = fn()
            times[name].append(clock() - t)
            walls[name].append(time.perf_counter() - w)
    bad = 0
    for other in ("single", "hf_batched"):
        diff = mismatches(outs[other], outs["ours"])
        bad += len(diff)
        for i in diff[:5]:
            print(f"mismatch #{i}: {other}={outs[other][i]!r} ours={outs['ours'][i]!r}")
    best = {name: min(t) for name, t in times.items()}
    print(f"prompts={len(convs)} max_new_tokens={MAX_NEW_TOKENS} batch_size={BATCH_SIZE} "
          f"torch_threads={torch.get_num_threads()} device={DEVICE} mismatches={bad}")
    clock_kind = "wall" if DEVICE.type == "cuda" else "cpu"
    print(f"repeats={repeats} {clock_kind} " + " ".join(f"{n}_s={best[n]:.3f}" for n in runs) + " (all: "
          + ", ".join(f"{n}={[round(t, 3) for t in times[n]]}" for n in runs) + ")")
    print(f"ratio_wall={min(walls['hf_batched']) / min(walls['ours']):.2f} (wall clock, best of each)")
    print(f"ratio_single={best['single'] / best['ours']:.2f}")
    print(f"ratio={best['hf_batched'] / best['ours']:.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
