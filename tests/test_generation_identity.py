"""Our decode loop gives the replies Hugging Face's ``model.generate`` gives each prompt alone.

Ended rows leave the batch (their cache rows are dropped), so a row's neighbours and its padding change
under it, at every batch size: greedy replies must not."""

from __future__ import annotations

import pytest
import torch

from assurance.models.generate import generate, render_prompts, stop_token_ids


def _prompts(n: int = 24) -> list[list[dict]]:
    words = "tell me how the water cycle works and why prime numbers matter in practice".split()
    return [[{"role": "user", "content": " ".join(words[(i * 5 + j) % len(words)] for j in range(1 + (7 * i) % 45))}]
            for i in range(n)]


def _hf_one_at_a_time(model, tok, convs, max_new_tokens):
    stops = stop_token_ids(model, tok)
    outs = []
    with torch.inference_mode():
        for prompt in render_prompts(tok, convs):
            ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stops, pad_token_id=tok.pad_token_id)
            outs.append(tok.decode(new[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return outs


@pytest.fixture(scope="module")
def reference(tiny_model):
    model, tok = tiny_model
    return _hf_one_at_a_time(model, tok, _prompts(), 20)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_batched_equals_hf_one_at_a_time(tiny_model, reference, batch_size):
    model, tok = tiny_model
    assert generate(model, tok, _prompts(), max_new_tokens=20, batch_size=batch_size) == reference
