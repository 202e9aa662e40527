"""Our decode loop gives the replies Hugging Face's ``model.generate`` gives each prompt alone.

Ended rows leave the batch (their cache rows are dropped), so a row's neighbours and its padding change
under it, at every batch size: greedy replies must not. Both decode routes are checked: the layers route
(Llama-like models, also under a LoRA wrapper) and the generic ``model(...)`` route (every other model,
here GPT-2), on the tiny demo model and on small random models of each supported architecture. The
reference loop is the benchmark's own (benchmarks/_hf_batched.py), imported by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from assurance.models import _decode
from assurance.models._decode import decode_route
from assurance.models.generate import Sampling, generate, greedy


def _load_reference():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "_hf_batched.py"
    spec = importlib.util.spec_from_file_location("_hf_batched", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_hf_batched", module)
    spec.loader.exec_module(module)
    return module


_reference = _load_reference()
one_at_a_time, hf_batched = _reference.one_at_a_time, _reference.hf_batched


def _prompts(n: int = 24) -> list[list[dict]]:
    words = "tell me how the water cycle works and why prime numbers matter in practice".split()
    return [[{"role": "user", "content": " ".join(words[(i * 5 + j) % len(words)] for j in range(1 + (7 * i) % 45))}]
            for i in range(n)]


@pytest.fixture(scope="module")
def reference(tiny_model):
    model, tok = tiny_model
    return one_at_a_time(model, tok, _prompts(), max_new_tokens=20)


@pytest.fixture
def generic_only(monkeypatch):
    """Send every model the generic ``model(...)`` way."""
    monkeypatch.setattr(_decode, "_LAYER_ROUTE_TYPES", frozenset())


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_batched_equals_hf_one_at_a_time(tiny_model, reference, batch_size):
    model, tok = tiny_model
    assert decode_route(model) == "layers"
    assert generate(model, tok, _prompts(), max_new_tokens=20, batch_size=batch_size) == reference


@pytest.mark.parametrize("batch_size", [3, 64])
def test_generic_route_equals_hf_one_at_a_time(tiny_model, reference, generic_only, batch_size):
    model, tok = tiny_model
    assert decode_route(model) == "generic"
    assert generate(model, tok, _prompts(), max_new_tokens=20, batch_size=batch_size) == reference


def test_sampled_replies_do_not_depend_on_batch_size_or_route(tiny_model, monkeypatch):
    model, tok = tiny_model
    sampling = Sampling(seed=7, temperature=1.0, top_p=0.9)
    kw = dict(max_new_tokens=16, sampling=sampling)
    layers = [generate(model, tok, _prompts(12), batch_size=b, **kw) for b in (1, 5, 12)]
    monkeypatch.setattr(_decode, "_LAYER_ROUTE_TYPES", frozenset())
    generic = generate(model, tok, _prompts(12), batch_size=5, **kw)
    assert layers[0] == layers[1] == layers[2] == generic
    assert layers[0] != generate(model, tok, _prompts(12), batch_size=5, max_new_tokens=16)  # it did sample


def _random_model(kind: str, tok, attention: str = "sdpa"):
    """A small random model of architecture ``kind`` on the demo tokenizer, stopping at tokens its replies use.

    Random weights rarely emit the demo's end of turn, so some tokens the model emits a few steps in are made
    its eos: rows then end at different steps and leave the batch, as real replies do."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = dict(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=96, max_position_embeddings=256, head_dim=16,
                 initializer_range=0.5)
    if kind == "gpt2":
        sizes = dict(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=256,
                     bos_token_id=0, eos_token_id=0, initializer_range=0.5)
    torch.manual_seed(0)
    config = AutoConfig.for_model(kind, **sizes)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attention).eval()
    model.generation_config.eos_token_id = None
    with torch.inference_mode():
        firsts = []
        for conv in _prompts(10):
            ids = tok.apply_chat_template(conv, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            out = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
            firsts.append(out[0, -3].item())
    model.generation_config.eos_token_id = sorted(set(firsts[::2]))
    return model


@pytest.mark.parametrize(("kind", "attention", "route"), [
    ("llama", "eager", "layers"), ("mistral", "sdpa", "layers"), ("qwen2", "sdpa", "layers"),
    ("qwen3", "sdpa", "layers"), ("gpt2", "sdpa", "generic")])
def test_each_architecture_equals_hf_one_at_a_time(tiny_model, kind, attention, route):
    _, tok = tiny_model
    model = _random_model(kind, tok, attention)
    assert decode_route(model) == route
    reference = one_at_a_time(model, tok, _prompts(10), max_new_tokens=12)
    lengths = {len(tok(r)["input_ids"]) for r in reference}
    assert len(lengths) > 2, "rows should end at different steps"
    for batch_size in (3, 10):
        assert generate(model, tok, _prompts(10), max_new_tokens=12, batch_size=batch_size) == reference


def test_lora_wrapped_model_takes_the_layers_route(tiny_model):
    from peft import LoraConfig, get_peft_model

    base, tok = tiny_model
    plain = one_at_a_time(base, tok, _prompts(10), max_new_tokens=12)
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    model = get_peft_model(base, config).eval()
    try:
        assert decode_route(model) == "layers"
        reference = one_at_a_time(model, tok, _prompts(10), max_new_tokens=12)
        assert reference != plain  # the adapter changes replies
        assert generate(model, tok, _prompts(10), max_new_tokens=12, batch_size=4) == reference
    finally:
        model.unload()  # the session's tiny model is shared: take the LoRA layers out again


def test_equal_length_prompts_share_a_prefill_group_and_rows_leave_when_they_end(tiny_model, monkeypatch):
    """The layers route packs prompts of one length into one causal attention call, and a row leaves the
    batch on the step it ends (the rows behind it move into its place)."""
    _, tok = tiny_model
    model = _random_model("llama", tok)
    convs = _prompts(10) * 2  # each length at least twice over
    reference = one_at_a_time(model, tok, convs, max_new_tokens=12)
    ended: list[int] = []  # tokens each reply has before its stop token
    assert hf_batched(model, tok, convs, batch_size=1, max_new_tokens=12, counts=ended) == reference
    steps: list[int] = []
    real_step = _decode._LayerStep.__call__

    def counting(self, tokens, pos):
        steps.append(len(tokens))
        return real_step(self, tokens, pos)

    monkeypatch.setattr(_decode._LayerStep, "__call__", counting)
    assert generate(model, tok, convs, max_new_tokens=12, batch_size=len(convs)) == reference
    # Step i runs the rows whose replies have more than i tokens (a stop token ends the others; the
    # last step is never run, its tokens are not needed). Replies cut at 12 tokens count as still going.
    assert steps == [sum(n > i for n in ended) for i in range(len(steps))]
    assert len(set(ended)) > 2, "rows should end at different steps"


@pytest.mark.parametrize("size", [7, 128, 3000, 32001])
def test_greedy_pick_is_argmax_with_its_tie_rule(size):
    """The tiled CPU argmax returns what ``argmax`` returns, ties (first maximum) and -inf rows included."""
    torch.manual_seed(size)
    logits = torch.randn(9, size)
    logits[1, : size // 2] = logits[1, size - 1] = 99.0  # tied maxima: the first wins
    logits[2] = float("-inf")
    logits[3, -1] = 1e30  # the maximum in the padded last tile
    logits[4] = 0.0
    assert torch.equal(greedy(logits), logits.argmax(-1))
    wide = torch.randn(9, 2, size)[:, 1]  # a view: not contiguous in memory
    assert torch.equal(greedy(wide), wide.argmax(-1))


def test_layers_route_with_the_padded_prefill_a_gpu_takes(tiny_model, reference, monkeypatch):
    """On a GPU the layers route prefills one padded batch through the model's forward: same replies."""
    model, tok = tiny_model
    monkeypatch.setattr(_decode, "_PACKED_PREFILL_DEVICES", frozenset())
    for batch_size in (3, 64):
        assert generate(model, tok, _prompts(), max_new_tokens=20, batch_size=batch_size) == reference
