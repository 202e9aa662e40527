"""The built-in aligned demo model ``builtin:tiny-chat-aligned``.

``builtin:tiny-chat`` (helpful, never taught to refuse) trained on, in its
build, a seeded mix of the built-in refusals and helpful chats (30% safety by
examples), with the base's own plain-SFT loop and settings (loss on assistant
tokens only). It plays the aligned model a firm starts from when it fine-tunes
on its own task and must show the fine-tune kept it safe (the flow where Qi et
al., ICLR 2025, put the constrained objective).

It uses the model builder's loop, not the product's trainer, so building a
built-in model never depends on the plan or the fine-tuning package (and the
import graph stays free of circles). Deterministic and cached like the base: the
folder name carries this builder's version and a digest of the base folder's
name (itself a digest of every built-in text) and of the settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from assurance.finetune.mixing import mix
from assurance.models.tiny import (
    SEED,
    TRAIN_SETTINGS,
    cached_build,
    chat_rows,
    default_cache_root,
    deterministic,
    ensure_tiny_model,
    train_base,
)

ALIGNED_VERSION = 1
ALIGN_SETTINGS = dict(safety_ratio=0.3, steps=200, data=["finetune/safety.jsonl", "finetune/utility.jsonl"])
_DATA = Path(__file__).resolve().parent.parent / "finetune" / "data"


def align_mix(seed: int = SEED) -> tuple[list[list[dict]], int, int]:
    """(conversations, safety examples, utility examples): every built-in refusal and enough helpful chats."""
    safety = chat_rows((_DATA / "safety.jsonl").read_bytes())
    utility = chat_rows((_DATA / "utility.jsonl").read_bytes())
    mixed = mix(safety, utility, float(ALIGN_SETTINGS["safety_ratio"]), seed)  # type: ignore[arg-type]
    return [c for _, c in mixed.examples], mixed.n_safety, mixed.n_utility


def build_aligned_model(base_dir: Path, out_dir: Path, *, max_steps: int | None = None) -> Path:
    """Train the tiny base in ``base_dir`` on the safety mix into ``out_dir`` (no caching; see
    ``ensure_aligned_model``)."""
    from transformers import AutoTokenizer, LlamaForCausalLM  # lazy: only a first build needs them

    steps = int(ALIGN_SETTINGS["steps"]) if max_steps is None else max_steps  # type: ignore[call-overload]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    chats, n_safety, n_utility = align_mix()
    with deterministic(SEED):
        model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
        losses = train_base(model, tokenizer, chats, steps=steps, seed=SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    build = {
        "name": "tiny-chat-aligned", "builder_version": ALIGNED_VERSION, "seed": SEED, "base": base_dir.name,
        "safety_tune": {**TRAIN_SETTINGS, **ALIGN_SETTINGS, "steps": steps, "recipe": "sft",
                        "n_safety_examples": n_safety, "n_utility_examples": n_utility,
                        "loss": "assistant tokens only", "first_loss": losses[0] if losses else None,
                        "last_loss": losses[-1] if losses else None},
        "torch": torch.__version__,
    }
    (out_dir / "BUILD.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    return out_dir


def ensure_aligned_model(cache_dir: Path | None = None) -> Path:
    """The local folder of ``builtin:tiny-chat-aligned``, built (once, with its base) if missing."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    base = ensure_tiny_model(root)
    key = json.dumps({"base": base.name, "settings": ALIGN_SETTINGS, "train": TRAIN_SETTINGS,
                      "version": ALIGNED_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cached_build(root, f"tiny-chat-aligned-v{ALIGNED_VERSION}-{digest}",
                        lambda tmp: build_aligned_model(base, tmp))
