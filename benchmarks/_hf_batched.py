"""What the generation benchmarks share: battery prompts and Hugging Face's own batched ``model.generate``.

The baseline is the fair one: the same prompts in the same length-sorted groups of ``batch_size`` as our
runner (so it gets the same padding saving), left-padded, greedy, the same stop tokens and
``max_new_tokens``. Only the decode loop differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from assurance.models.generate import render_prompts, stop_token_ids

BATTERY = Path(__file__).resolve().parent.parent / "assurance" / "battery" / "data" / "assurance-core-v1.jsonl"


def battery_prompts(n: int) -> list[list[dict]]:
    """``n`` single-turn conversations spread over the battery (synthetic ones fill up if it is short)."""
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


def hf_batched(model, tokenizer, convs: list[list[dict]], *, batch_size: int, max_new_tokens: int,
               counts: list[int] | None = None) -> list[str]:
    """Greedy replies through ``model.generate``, ``batch_size`` prompts per call, in input order.

    ``counts``, when given, is filled with each reply's number of generated tokens (stop token excluded)."""
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in render_prompts(tokenizer, convs)]
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))  # our runner's grouping
    device = next(model.parameters()).device
    outs: list[str] = [""] * len(encoded)
    n_new = [0] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.tensor([[pad_id] * (width - len(encoded[i])) + encoded[i] for i in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in chunk],
                                device=device)
            new = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=stops, pad_token_id=pad_id)
            for row, i in enumerate(chunk):
                reply = new[row, width:].tolist()
                ended = [k for k, t in enumerate(reply) if t in stops]
                n_new[i] = ended[0] if ended else len(reply)
                outs[i] = tokenizer.decode(reply[:n_new[i]], skip_special_tokens=True).strip()
    if counts is not None:
        counts[:] = n_new
    return outs


def mismatches(a: list[str], b: list[str]) -> list[int]:
    """Indices where two runs' replies differ."""
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
