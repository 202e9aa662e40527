"""Fine-tuning speed: our trainer against TRL's SFTTrainer, in one run.

Both train the same tiny Llama (the demo model's architecture and tokenizer, fresh
weights), from the same start, on the same tokens with the same loss mask (TRL gets
our pre-tokenised input_ids and labels, so masking is identical by construction),
with the same batch size, steps, optimizer (AdamW), schedule, clipping and fp32 on
CPU. TRL runs at its defaults except gradient checkpointing (off, as ours) and bf16
(off: fp32 on CPU, as ours). Tokens/s counts non-pad tokens for both.

Then ours again with the constrained objective (its reference pass included), to
show its cost over plain SFT. Prints ``ratio=<ours / TRL tokens per second>`` last.

    HF_HUB_OFFLINE=1 python benchmarks/finetune.py [--steps 60] [--threads 1]

TRL lives in the ``bench`` extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--examples", type=int, default=160, help="training examples (the constrained run covers them "
                    "max_steps*batch/examples times; its reference pass costs one forward per distinct example)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids OpenMP spin on a shared box)")
    ap.add_argument("--repeats", type=int, default=2, help="alternate runs and keep each trainer's best")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from assurance.finetune.batches import encode
    from assurance.finetune.chat_data import load_chat_jsonl
    from assurance.finetune.mixing import mix
    from assurance.finetune.trainer import train
    from assurance.models.tiny import build_tokenizer, corpus, init_model, read_inputs
    from assurance.plan import FinetuneSpec

    tok = build_tokenizer(corpus(read_inputs()))
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in init_model(tok).state_dict().items()}

    def fresh():
        m = init_model(tok)
        m.load_state_dict(start)
        return m

    mixed = mix(load_chat_jsonl("builtin:safety"), load_chat_jsonl("builtin:utility"), 0.5, seed=0)
    mixed.examples = mixed.examples[: args.examples]
    spec = dict(method="full", max_steps=args.steps, lr=1e-4, batch_size=args.batch_size, warmup_steps=5,
                max_length=256, max_grad_norm=1.0, weight_decay=0.0)
    work = Path(tempfile.mkdtemp(prefix="assure-bench-"))

    def ours(recipe: str) -> tuple[float, float]:
        t = time.perf_counter()
        r = train(fresh(), tok, mixed, FinetuneSpec(recipe=recipe, **spec), seed=0, device=torch.device("cpu"),
                  dtype=torch.float32, output_dir=work / recipe)
        wall = time.perf_counter() - t
        return r.tokens_total / wall, wall

    # ---- TRL: the same tokens and labels, pre-tokenised
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = [encode(tok, conv, spec["max_length"]) for _, conv in mixed.examples]
    ds = Dataset.from_dict({"input_ids": [i for i, _ in rows], "labels": [y for _, y in rows]})

    class Counting(SFTTrainer):
        n_tokens = 0

        def compute_loss(self, model, inputs, *a, **kw):
            mask = inputs.get("attention_mask")
            real = mask if mask is not None else inputs["input_ids"] != tok.pad_token_id
            Counting.n_tokens += int(real.sum())
            return super().compute_loss(model, inputs, *a, **kw)

    def trl() -> tuple[float, float]:
        Counting.n_tokens = 0
        cfg = SFTConfig(output_dir=str(work / "trl"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                        learning_rate=spec["lr"], lr_scheduler_type="linear", warmup_steps=spec["warmup_steps"],
                        max_grad_norm=1.0, weight_decay=0.0, max_length=spec["max_length"], bf16=False,
                        gradient_checkpointing=False, use_cpu=True, save_strategy="no", report_to=[],
                        logging_steps=10, disable_tqdm=True, seed=0, dataloader_num_workers=0)
        trainer = Counting(model=fresh(), args=cfg, train_dataset=ds, processing_class=tok)
        t = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t
        return Counting.n_tokens / wall, wall

    best = {"ours": (0.0, 0.0), "trl": (0.0, 0.0), "constrained": (0.0, 0.0)}
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        for name, fn in (("trl", trl), ("ours", lambda: ours("sft")), ("constrained", lambda: ours("constrained"))):
            tps, wall = fn()
            print(f"  {name:12s} {tps:9.0f} tokens/s  {wall:6.2f} s", flush=True)
            if tps > best[name][0]:
                best[name] = (tps, wall)

    print(f"model: {sum(p.numel() for p in fresh().parameters()) / 1e6:.2f}M params; {len(rows)} examples, "
          f"{args.steps} steps x {args.batch_size}; torch threads {args.threads}")
    print(f"trl_tokens_per_s={best['trl'][0]:.0f}")
    print(f"ours_tokens_per_s={best['ours'][0]:.0f}")
    print(f"constrained_over_sft={best['constrained'][1] / best['ours'][1]:.3f}  (wall time, reference pass included)")
    print(f"ratio={best['ours'][0] / best['trl'][0]:.3f}")


if __name__ == "__main__":
    main()
