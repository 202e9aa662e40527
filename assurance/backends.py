"""Which generation backend each stage uses: transformers, or vLLM on a GPU when installed."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import torch

from .distributed import launched
from .models import vllm_backend
from .models.generate import generation_settings
from .plan import Plan, PlanError
from .prepared import Prepared


def resolve_backend(requested: str, device) -> str:
    """``transformers`` or ``vllm`` for the plan's ``battery.backend`` on ``device``; a PlanError when vLLM is
    required but cannot be used (raised in ``prepare``, so nothing is written)."""
    if requested == "transformers":
        return "transformers"
    several = launched().world > 1  # vLLM's engine starts its own workers; one per torchrun rank is not built
    usable = device.type == "cuda" and not several and vllm_backend.available()
    if requested == "vllm" and not usable:
        why = ("the run's device is CPU" if device.type != "cuda"
               else "the run is launched as several processes (torchrun / accelerate launch): run vLLM in one "
                    "process, with battery.vllm.tensor_parallel_size for several GPUs" if several
               else "the vllm package is not installed" if importlib.util.find_spec("vllm") is None
               else "no CUDA device is available")
        raise PlanError(f"battery.backend: 'vllm' was requested but cannot be used ({why}); vLLM needs the vllm "
                        "package and a CUDA GPU. Use backend 'auto' (vLLM when possible) or 'transformers'")
    return "vllm" if usable else "transformers"


def stage_backends(plan: Plan, backend: str) -> dict[str, str]:
    """Evaluated stage -> its generation backend. vLLM loads weights from disk, so a LoRA stress model (merged
    in memory, never saved whole) falls back to transformers."""
    stages = ["base", "tuned"] + (["stress"] if plan.stress.enabled else [])
    out = {s: backend for s in stages}
    if backend == "vllm" and plan.stress.enabled and plan.stress.method != "full":
        out["stress"] = "transformers"
    return out


def recorded_generation_settings(prep: Prepared) -> dict:
    """The decoding settings recorded in the battery record, with the backend each stage uses."""
    plan = prep.plan
    gen = generation_settings(prep.model, prep.tokenizer, max_new_tokens=plan.battery.max_new_tokens,
                              batch_size=plan.battery.batch_size)
    gen |= {"backend_requested": plan.battery.backend, "backend_by_stage": dict(prep.backends)}
    if "vllm" in prep.backends.values():
        import vllm  # optional dependency: only present (and only reached) on a vLLM run

        used = set(prep.backends.values())
        gen |= {"backend": "vllm" if used == {"vllm"} else "vllm+transformers", "vllm_version": vllm.__version__,
                "batch_size_note": "vLLM schedules its own batches; batch_size applies to transformers stages only"}
    if prep.ranks.world > 1:  # items split across processes; the weights whole on each, or in shards
        gen |= {"processes": prep.ranks.world,
                "weights": "fsdp shards (LoRA adapters merged in before sharding)" if prep.shards else "whole on each"}
    return gen | {"limit_per_category": plan.battery.limit_per_category}


def vllm_generator(prep: Prepared, stage: str, weights: tuple[Path | str, Path | str | None] | None):
    """A vLLM generator for ``stage`` when it uses vLLM, from ``weights`` = (model folder, adapter folder or
    None) on disk; None means the transformers backend."""
    if prep.backends.get(stage) != "vllm" or weights is None:
        return None
    model_path, adapter = weights
    engine = prep.plan.battery.vllm
    return vllm_backend.VLLMGenerator(model_path, dtype=str(prep.dtype).removeprefix("torch."), seed=prep.plan.seed,
                                      adapter_path=adapter, tensor_parallel_size=engine.tensor_parallel_size,
                                      gpu_memory_utilization=engine.gpu_memory_utilization,
                                      max_model_len=engine.max_model_len)


def free_generator(generator) -> None:
    """Release a vLLM engine's GPU memory before the next stage needs it."""
    if generator is None:
        return
    generator.close()  # the engine goes, the Hugging Face copy comes back to the GPU
    del generator
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
