"""What the generation benchmarks and tests share: battery prompts and Hugging Face's own ``model.generate``.

``one_at_a_time`` is the reference every batched reply must equal (tests/test_generation_identity.py
imports this file). The batched baseline is the fair one: the same prompts in the same length-sorted
groups of ``batch_size`` as our runner (so it gets the same padding saving), left-padded, greedy, the
same stop tokens and ``max_new_tokens``. Only the decode loop differs.
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


def one_at_a_time(model, tokenizer, convs: list[list[dict]], *, max_new_tokens: int) -> list[str]:
    """The naive baseline and the reference: the obvious loop, one greedy ``model.generate`` call per prompt."""
    stops = stop_token_ids(model, tokenizer)
    outs = []
    with torch.inference_mode():
        for prompt in render_prompts(tokenizer, convs):
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            ids = ids.to(next(model.parameters()).device)
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
            outs.append(tokenizer.decode(_until_stop(new[0, ids.shape[1]:].tolist(), stops),
                                         skip_special_tokens=True).strip())
    return outs


def _until_stop(reply: list[int], stops: list[int]) -> list[int]:
    """The reply without its stop token (which need not be a special token the decoder skips)."""
    ended = [k for k, t in enumerate(reply) if t in stops]
    return reply[:ended[0]] if ended else reply


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
                reply = _until_stop(new[row, width:].tolist(), stops)
                n_new[i] = len(reply)
                outs[i] = tokenizer.decode(reply, skip_special_tokens=True).strip()
    if counts is not None:
        counts[:] = n_new
    return outs


def mismatches(a: list[str], b: list[str]) -> list[int]:
    """Indices where two runs' replies differ."""
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
