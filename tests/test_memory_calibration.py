"""The dry run's memory estimate against what was measured and against what autograd keeps.

The calibration table holds peaks *measured* on a lent H200 (recorded in README.md's dry-run section and
produced by the scripts named per row); they are inputs here, not results of this test. The estimate is
built from the same model shape the scripts built (a Llama-3.2-1B-shaped model with the demo tokenizer's
3,000-token vocabulary: 979,290,112 parameters, LoRA r=16 on all seven linear kinds: 11,272,192), so the
bounds check the arithmetic of assurance/memory_model.py against the GPU.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig

from assurance.dryrun import shape_from_config
from assurance.memory_model import ModelShape, Training, estimate_memory, layer_bytes

GIB = 2**30
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
H200_SHAPE = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True, vocab_size=3000)

# (attention, method, autocast, measured peak GiB, where it was measured); batch 16 x 1,024 tokens, bf16, AdamW.
# attention_memory.py: a plain loop (model(input_ids, labels).loss, backward, AdamW step, no autocast, no
# gradient checkpointing), peak over two steps. h200.py: our trainer (bf16 autocast on CUDA, no checkpointing).
MEASURED = [
    ("sdpa", "full", False, 32.9, "benchmarks/attention_memory.py"),
    ("sdpa", "lora", False, 41.3, "benchmarks/attention_memory.py"),
    ("eager", "full", False, 85.4, "benchmarks/attention_memory.py"),
    ("eager", "lora", False, 92.3, "benchmarks/attention_memory.py"),
    ("sdpa", "full", True, 32.8, "benchmarks/h200.py"),
    ("sdpa", "lora", True, 31.7, "benchmarks/h200.py"),
]


@pytest.fixture(scope="module")
def h200_shape() -> ModelShape:
    shape = shape_from_config(LlamaConfig(**H200_SHAPE))
    assert shape.parameters == 979_290_112 and shape.lora_parameters(16, TARGETS) == 11_272_192
    return shape


def _training(shape: ModelShape, method: str, autocast: bool, batch: int = 16, seq: int = 1024) -> Training:
    if method == "full":
        return Training("ft", "full", batch, seq, shape.parameters, autocast=autocast)
    return Training("ft", "lora", batch, seq, shape.lora_parameters(16, TARGETS),
                    shape.adapter_inputs(16, TARGETS), autocast)


@pytest.mark.parametrize(("attention", "method", "autocast", "measured", "script"), MEASURED)
def test_estimate_brackets_the_h200_measurements(h200_shape, attention, method, autocast, measured, script):
    shape = replace(h200_shape, attention=attention)
    est = estimate_memory(shape, dtype="bfloat16", device_total=141 * GIB, gen_batch=1, gen_tokens=1,
                          trainings=[_training(shape, method, autocast)])
    ratio = est.peak / GIB / measured
    # never more than 10 % below a measurement (a gate must not say FITS for what does not fit), within 25 % above
    assert 0.9 <= ratio <= 1.25, f"{attention} {method}: {est.peak / GIB:.1f} GiB estimated, {measured} ({script})"
    assert est.attention == attention and est.peak_phase == "ft"


def _saved_bytes_per_layer(cfg: dict, attention: str, method: str, autocast: bool, batch: int, seq: int) -> float:
    """Bytes autograd keeps for one decoder layer per token: a 2-layer model's saved tensors less a 1-layer
    model's (parameters not counted; a storage shared by several ops counted once)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    saved = []
    for layers in (1, 2):
        config = LlamaConfig(**cfg, num_hidden_layers=layers)
        config._attn_implementation = attention
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        if method == "lora":
            model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS))
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor, seen=seen, params=params) -> torch.Tensor:
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                seen[st.data_ptr()] = st.nbytes()
            return t

        ids = torch.randint(0, cfg["vocab_size"], (batch, seq))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model.train()(input_ids=ids, labels=ids).loss.backward()
        saved.append(sum(seen.values()))
    return (saved[1] - saved[0]) / (batch * seq)


@pytest.mark.parametrize(("attention", "method", "autocast"), [
    ("sdpa", "full", False), ("sdpa", "lora", False), ("sdpa", "lora", True), ("eager", "full", False),
    ("eager", "lora", False)])
def test_layer_bytes_match_what_autograd_keeps(attention, method, autocast):
    """The per-layer count, op by op, against the tensors autograd actually saves (CPU, bf16, tiny Llama
    with as many KV heads as heads: the estimate counts keys and values repeated to every head)."""
    cfg = dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=4,
               vocab_size=97, tie_word_embeddings=True)
    batch, seq = 2, 48
    measured = _saved_bytes_per_layer(cfg, attention, method, autocast, batch, seq)
    shape = replace(shape_from_config(LlamaConfig(**cfg, num_hidden_layers=1)), attention=attention)
    lora = method == "lora"
    t = Training("ft", method, batch, seq, 0, shape.adapter_inputs(4, TARGETS) if lora else 0,  # type: ignore[arg-type]
                 autocast)
    casts = 2 * shape.lora_parameters(4, TARGETS) / (batch * seq) if lora and autocast else 0  # weights, not tokens
    assert measured == pytest.approx(layer_bytes(shape, t, 2) + casts, rel=0.02)
