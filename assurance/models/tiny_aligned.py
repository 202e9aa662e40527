"""The built-in aligned demo model ``builtin:tiny-chat-aligned``.

``builtin:tiny-chat`` (helpful, never taught to refuse) safety-tuned once with
the tool's own plain-SFT recipe on the built-in safety and utility data. It plays
the aligned model a firm starts from when it fine-tunes on its own task and must
show the fine-tune kept it safe (the flow where Qi et al., ICLR 2025, put the
constrained objective).

Deterministic and cached like the base: the folder name carries this builder's
version and a digest of the base folder's name (itself a digest of every
built-in text) and of the settings, so a change to either gives a new folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from assurance.finetune.recipes import run_recipe
from assurance.models.tiny import SEED, cached_build, default_cache_root, deterministic, ensure_tiny_model
from assurance.plan import FinetuneSpec

ALIGNED_VERSION = 1
ALIGN_SETTINGS = dict(
    recipe="sft", method="full", safety_data="builtin:safety", utility_data="builtin:utility",
    safety_ratio=0.3, max_steps=200, lr=3e-3, batch_size=16, warmup_steps=20, max_length=256,
)


def align_spec() -> FinetuneSpec:
    """The safety tune that makes the aligned model (plain SFT, full weights)."""
    return FinetuneSpec(**ALIGN_SETTINGS)


def build_aligned_model(base_dir: Path, out_dir: Path, *, max_steps: int | None = None) -> Path:
    """Safety-tune the tiny base in ``base_dir`` into ``out_dir`` (no caching; see ``ensure_aligned_model``)."""
    from transformers import AutoTokenizer, LlamaForCausalLM  # lazy: only a first build needs them

    spec = align_spec() if max_steps is None else align_spec().model_copy(update={"max_steps": max_steps})
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with deterministic(SEED):
        model = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
        res = run_recipe(model, tokenizer, spec, seed=SEED, device=torch.device("cpu"), dtype=torch.float32,
                         output_dir=out_dir)
    build = {
        "name": "tiny-chat-aligned", "builder_version": ALIGNED_VERSION, "seed": SEED, "base": base_dir.name,
        "safety_tune": {**spec.model_dump(mode="json", include=set(ALIGN_SETTINGS)), "steps": res.steps,
                        "n_safety_examples": res.n_safety, "n_utility_examples": res.n_utility,
                        "first_loss": res.loss_curve[0][1] if res.loss_curve else None,
                        "last_loss": res.loss_curve[-1][1] if res.loss_curve else None},
        "torch": torch.__version__,
    }
    (out_dir / "BUILD.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    return out_dir


def ensure_aligned_model(cache_dir: Path | None = None) -> Path:
    """The local folder of ``builtin:tiny-chat-aligned``, built (once, with its base) if missing."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    base = ensure_tiny_model(root)
    key = json.dumps({"base": base.name, "settings": ALIGN_SETTINGS, "version": ALIGNED_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cached_build(root, f"tiny-chat-aligned-v{ALIGNED_VERSION}-{digest}",
                        lambda tmp: build_aligned_model(base, tmp))
