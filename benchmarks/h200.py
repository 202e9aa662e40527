"""Battery throughput and fine-tune speed of a ~1B Llama on one GPU, sized for a 15-minute lent H200.

Builds a Llama-3.2-1B-shaped model (16 layers, hidden 2048, MLP 8192, 32 heads, 8 KV heads) from a config
with random weights, in bf16 on CUDA, with the demo model's tokenizer (its vocabulary is small, so the model
has ~1.0B parameters rather than Llama 3.2's 1.24B: almost all of the difference is the 128k embedding).
Then measures:

* battery throughput: 512 battery prompts, batch 64, greedy, 128 new tokens each, with our batched
  runner (``assurance.models.generate.generate``) and with Hugging Face's ``model.generate`` batched at the
  same batch size and grouping; the outputs are compared (random weights make near-ties common, so bf16
  rounding at other batch shapes can flip a token: the count is reported, not asserted). vLLM too when it
  is importable (``vllm: not installed`` otherwise).
* fine-tune tokens/s and MFU with our trainer (``assurance.finetune.trainer.train``), LoRA and full, every
  sequence exactly ``--seq`` tokens. MFU = 6 * N * tokens/s / peak, N the parameters doing matrix work
  (all but the input embedding), peak = 989e12 FLOP/s (H100/H200 SXM dense bf16, the datasheet figure);
  for LoRA 6N overstates the work done (frozen weights get no weight gradient), as is conventional.
  Steady state: the first ``--warmup`` steps are timed apart.

Prints one ``name=value`` line per figure and writes all of them as JSON to ``$OUT/h200.json`` when ``OUT``
is set (or to ``--json``). ``--tiny`` runs a tiny config on CPU in seconds (what the test runs).

Needs torch, transformers, tokenizers and peft, plus what the trainer's imports reach: pydantic (with
pydantic-core, annotated-types, typing-inspection, typing-extensions>=4.16) and rfc8785. The lent H200's
image lacks those six: carry them as wheels (see the device notes).
    python benchmarks/h200.py            # on the GPU machine, about 3-5 minutes
    python benchmarks/h200.py --tiny     # anywhere
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import torch  # noqa: E402  (after the path above)
from _hf_batched import battery_prompts, hf_batched, mismatches  # noqa: E402

PEAK_BF16 = 989e12
"""H100/H200 SXM dense bf16 FLOP/s (datasheet; about 790e12 was measured on a lent H200 on random data)."""

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)

FIGURES: dict[str, object] = {}


def report(name: str, value: object) -> None:
    """One figure: a printed line and an entry of the JSON."""
    FIGURES[name] = value
    print(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(tokenizer, shape: dict, device: torch.device, dtype: torch.dtype):
    """A Llama with random weights, built directly on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **shape)
    torch.manual_seed(0)
    with device:
        model = LlamaForCausalLM(config)
    return model.to(dtype).eval()


def matmul_params(model) -> int:
    """Parameters that do matrix work per token: all but the input embedding (a lookup), the tied head counted."""
    total = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return total if tied else total - emb


def release() -> None:
    """Return freed GPU memory to the device, once the caller has dropped its references."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_generation(model, tokenizer, device, args) -> None:
    from assurance.models.generate import generate

    convs = battery_prompts(args.prompts)
    kw = dict(batch_size=args.batch, max_new_tokens=args.new_tokens)
    generate(model, tokenizer, convs[:args.batch], **kw)  # warm-up: kernels, allocator
    hf_batched(model, tokenizer, convs[:args.batch], **kw)
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    outs: dict[str, list[str]] = {}
    counts: list[int] = []
    for _ in range(args.repeats):  # interleaved, best of each
        for name, fn in (("hf", partial(hf_batched, counts=counts)), ("ours", generate)):
            sync(device)
            t = time.perf_counter()
            outs[name] = fn(model, tokenizer, convs, **kw)
            sync(device)
            times[name].append(time.perf_counter() - t)
    # Tokens generated, counted on Hugging Face's replies (ours are the same work when the replies match).
    new_tokens = sum(counts)
    report("gen_prompts", len(convs))
    report("gen_batch_size", args.batch)
    report("gen_max_new_tokens", args.new_tokens)
    report("gen_new_tokens", new_tokens)
    for name in ("ours", "hf"):
        best = min(times[name])
        report(f"gen_{name}_s", best)
        report(f"gen_{name}_prompts_per_s", len(convs) / best)
        report(f"gen_{name}_tokens_per_s", new_tokens / best)
    report("gen_mismatches_ours_vs_hf", len(mismatches(outs["ours"], outs["hf"])))
    report("gen_ratio_ours_over_hf", min(times["hf"]) / min(times["ours"]))
    bench_vllm(model, tokenizer, convs, args)


def bench_vllm(model, tokenizer, convs, args) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
        print("vllm: not installed" if importlib.util.find_spec("vllm") is None else "vllm: no CUDA device",
              flush=True)
        FIGURES["vllm"] = "not installed"
        return
    from assurance.models.vllm_backend import VLLMGenerator

    folder = Path(tempfile.mkdtemp(prefix="h200-vllm-"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gen = VLLMGenerator(folder, dtype="bfloat16", gpu_memory_utilization=0.5)
    kw = dict(batch_size=args.batch, max_new_tokens=args.new_tokens)
    gen(model, tokenizer, convs[:args.batch], **kw)  # warm-up
    t = time.perf_counter()
    outs = gen(model, tokenizer, convs, **kw)
    wall = time.perf_counter() - t
    # vLLM returns text: its tokens are counted by re-tokenising, an estimate (a BPE round trip can merge)
    tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outs)
    report("gen_vllm_s", wall)
    report("gen_vllm_prompts_per_s", len(convs) / wall)
    report("gen_vllm_tokens_per_s", tokens / wall)
    gen.close()  # the engine goes; the Hugging Face copy it moved off the GPU comes back
    del gen
    release()


def long_conversations(n: int, seq: int, seed: int = 0) -> list[list[dict]]:
    """Chat examples long enough that every one is truncated to exactly ``seq`` tokens (a prompt of about
    a tenth of that, the rest answer)."""
    import random

    from assurance.models.tiny import corpus, read_inputs

    words = " ".join(corpus(read_inputs())).split()
    rng = random.Random(seed)
    return [[{"role": "user", "content": " ".join(rng.choices(words, k=seq // 16))},
             {"role": "assistant", "content": " ".join(rng.choices(words, k=2 * seq))}] for _ in range(n)]


def bench_finetune(tokenizer, shape, device, dtype, method: str, args) -> None:
    from assurance.finetune.mixing import MixResult
    from assurance.finetune.trainer import train
    from assurance.plan.training import FinetuneSpec

    model = build_model(tokenizer, shape, device, dtype)
    n_matmul = matmul_params(model)
    steps = args.warmup + args.steps
    mix = MixResult(examples=[("utility", c) for c in long_conversations(args.train_batch * steps, args.seq)],
                    n_safety=0, n_utility=args.train_batch * steps, achieved_ratio=0.0)
    spec = FinetuneSpec(method=method, max_steps=steps, batch_size=args.train_batch, max_length=args.seq,
                        lr=1e-4 if method == "lora" else 1e-5, warmup_steps=1, utility_data=None)
    stamps: list[float] = []

    def progress(info: dict) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix=f"h200-{method}-") as out:
        result = train(model, tokenizer, mix, spec, seed=0, device=device, dtype=dtype, output_dir=Path(out),
                       progress=progress)
    tokens_per_step = args.train_batch * args.seq  # every sequence is exactly --seq tokens long
    if result.tokens_total != tokens_per_step * steps:
        raise SystemExit(f"expected {tokens_per_step * steps} tokens, trained on {result.tokens_total}")
    steady = tokens_per_step * args.steps / (stamps[-1] - stamps[args.warmup - 1])
    report(f"ft_{method}_params", sum(p.numel() for p in result.model.parameters()))
    report(f"ft_{method}_trainable_params", sum(p.numel() for p in result.model.parameters() if p.requires_grad))
    report(f"ft_{method}_seq_len", args.seq)
    report(f"ft_{method}_batch", args.train_batch)
    report(f"ft_{method}_steps_timed", args.steps)
    report(f"ft_{method}_tokens_per_s", steady)
    report(f"ft_{method}_tokens_per_s_with_warmup", result.tokens_per_second)
    report(f"ft_{method}_mfu", 6 * n_matmul * steady / PEAK_BF16)
    report(f"ft_{method}_peak_memory_gib", result.peak_memory_bytes / 2**30)
    del result, model
    release()


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny config on CPU, a few steps (for tests)")
    ap.add_argument("--json", help="write the figures here too (default: $OUT/h200.json when OUT is set)")
    ap.add_argument("--skip", choices=["generation", "finetune"], action="append", default=[])
    args = ap.parse_args(argv)
    tiny = dict(prompts=8, batch=4, new_tokens=8, repeats=1, seq=64, train_batch=2, warmup=1, steps=2)
    full = dict(prompts=512, batch=64, new_tokens=128, repeats=2, seq=1024, train_batch=16, warmup=3, steps=20)
    for k, v in (tiny if args.tiny else full).items():
        setattr(args, k, v)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    t0 = time.perf_counter()
    if args.tiny:
        torch.set_num_threads(1)
        device, dtype, shape = torch.device("cpu"), torch.float32, TINY
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --tiny on CPU")
        device, dtype, shape = torch.device("cuda"), torch.bfloat16, LLAMA_1B
    from assurance.models.tiny import build_tokenizer, corpus, read_inputs

    tokenizer = build_tokenizer(corpus(read_inputs()))
    tokenizer.model_max_length = 1 << 20  # the training texts are cut to --seq by the trainer, not here
    report("device", torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu")
    report("torch", torch.__version__)
    report("dtype", str(dtype).removeprefix("torch."))
    report("peak_flops_used", PEAK_BF16)
    if "generation" not in args.skip:
        t = time.perf_counter()
        model = build_model(tokenizer, shape, device, dtype)
        sync(device)
        report("model_build_s", time.perf_counter() - t)
        report("model_params", sum(p.numel() for p in model.parameters()))
        bench_generation(model, tokenizer, device, args)
        del model
        release()
    if "finetune" not in args.skip:
        for method in ("lora", "full"):
            bench_finetune(tokenizer, shape, device, dtype, method, args)
    report("total_s", time.perf_counter() - t0)
    target = args.json or (str(Path(os.environ["OUT"]) / "h200.json") if os.environ.get("OUT") else None)
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True), encoding="utf-8")
        print(f"figures written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
