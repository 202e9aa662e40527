"""Peak GPU memory of one training step of a ~1B Llama (bf16, random weights, batch 16 x 1024 tokens),
SDPA against eager attention, full fine-tune (AdamW on every weight) and LoRA r=16 on every linear layer.

It checks what `assure run --dry-run`'s activation estimate assumes (Korthikanti et al. 2022 count the
attention score matrix; SDPA does not store it). Needs a CUDA GPU with about 100 GiB free (sized for a lent
H200; about 30 s there). Prints one line per case, then `ratio=` (eager over SDPA peak, full fine-tune).

    python benchmarks/attention_memory.py
"""

from __future__ import annotations

import gc
import json
import os
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPE = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
             num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True, vocab_size=3000)
out = {}
for attn in ("sdpa", "eager"):
    for method in ("full", "lora"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        cfg = LlamaConfig(**SHAPE)
        cfg._attn_implementation = attn
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        if method == "lora":
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=[
                "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5)
        x = torch.randint(0, 3000, (16, 1024), device="cuda")
        t = time.perf_counter()
        for _ in range(2):
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
        out[f"{attn}_{method}_peak_gib"] = round(peak, 2)
        print(f"{attn}_{method}_peak_gib={peak:.2f}  (attention {model.config._attn_implementation}, "
              f"{time.perf_counter() - t:.1f}s)", flush=True)
        del model, opt, params, loss, x
        gc.collect()
        torch.cuda.empty_cache()
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "attention_memory.json"), "w") as fh:
        json.dump(out, fh, indent=1)
print(f"ratio={out['eager_full_peak_gib'] / out['sdpa_full_peak_gib']:.3f}")
