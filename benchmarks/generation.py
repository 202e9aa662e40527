"""Batched generation against a one-at-a-time baseline, on the tiny demo model.

Generates the same prompts twice: a plain loop calling ``model.generate`` on
one prompt at a time, and ``assurance.models.generate.generate`` with batch 64 (the demo's and the
default plan's batch size; ``ASSURE_BENCH_BATCH`` overrides it).
Checks that the greedy outputs match and prints ``ratio=<single/batched>`` as
the last line (higher is better; a ratio needs no reference machine). Both are
run ``ASSURE_BENCH_REPEATS`` times (default 3), interleaved, and the best time
of each is compared.

Torch runs single-threaded here unless ``ASSURE_BENCH_THREADS`` says otherwise:
on a small, busy machine (2 shared cores) OpenMP threads waiting on each other
made both runs 10-50x slower and the ratio pure noise, while one thread
measures what batching itself buys.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from assurance.models.generate import generate, render_prompts, stop_token_ids
from assurance.models.loading import load_model, resolve_model_path

N_PROMPTS = 128
MAX_NEW_TOKENS = 32
BATCH_SIZE = int(os.environ.get("ASSURE_BENCH_BATCH", "64"))  # the demo plan's and the default plan's batch size
BATTERY = Path(__file__).resolve().parent.parent / "assurance" / "battery" / "data" / "assurance-core-v1.jsonl"


def prompts(n: int = N_PROMPTS) -> list[list[dict]]:
    """``n`` single-turn conversations: spread over the battery if present, else synthetic."""
    texts: list[str] = []
    if BATTERY.is_file():
        rows = [json.loads(line) for line in BATTERY.read_text().splitlines() if line.strip()]
        texts = [r["prompt"] for r in rows if isinstance(r.get("prompt"), str)]
        texts = [texts[i * len(texts) // n] for i in range(n)] if len(texts) >= n else texts
    words = "please explain briefly how the water cycle and prime numbers work with an example".split()
    while len(texts) < n:
        i = len(texts)
        texts.append(" ".join(words[(i + j) % len(words)] for j in range(1 + i % 40)))
    return [[{"role": "user", "content": t}] for t in texts]


def one_at_a_time(model, tokenizer, convs: list[list[dict]]) -> list[str]:
    """The baseline: the obvious loop, one ``model.generate`` call per prompt."""
    stops = stop_token_ids(model, tokenizer)
    outs = []
    with torch.inference_mode():
        for prompt in render_prompts(tokenizer, convs):
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                                 do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
            outs.append(tokenizer.decode(new[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return outs


def main() -> int:
    torch.set_num_threads(int(os.environ.get("ASSURE_BENCH_THREADS", "1")))
    model, tokenizer = load_model(resolve_model_path("builtin:tiny-chat"), device="cpu", dtype=torch.float32)
    convs = prompts()
    generate(model, tokenizer, convs[:4], max_new_tokens=4, batch_size=4)  # warm-up, untimed
    # Interleaved repeats, best of each: on a shared machine the minimum is the
    # least noisy estimate of what the code costs (other load only adds time).
    repeats = int(os.environ.get("ASSURE_BENCH_REPEATS", "3"))
    single_times, batched_times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        single = one_at_a_time(model, tokenizer, convs)
        t1 = time.perf_counter()
        batched = generate(model, tokenizer, convs, max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE)
        t2 = time.perf_counter()
        single_times.append(t1 - t0)
        batched_times.append(t2 - t1)
    mismatches = [i for i, (a, b) in enumerate(zip(single, batched, strict=True)) if a != b]
    for i in mismatches[:5]:
        print(f"mismatch #{i}: single={single[i]!r} batched={batched[i]!r}")
    print(f"prompts={len(convs)} max_new_tokens={MAX_NEW_TOKENS} batch_size={BATCH_SIZE} "
          f"torch_threads={torch.get_num_threads()} mismatches={len(mismatches)}")
    print(f"repeats={repeats} single_s={min(single_times):.2f} batched_s={min(batched_times):.2f} "
          f"(all single: {[round(t, 2) for t in single_times]}, all batched: {[round(t, 2) for t in batched_times]})")
    print(f"ratio={min(single_times) / min(batched_times):.2f}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
