"""Optional vLLM generation backend (GPU only; ``pip install 'assurance[vllm]'``).

Nothing here imports vllm until an engine starts, so the package works without it.
``VLLMGenerator`` has the call signature of ``models.generate.generate`` and can be passed to
``battery.runner.evaluate(..., generator=...)``.

What to know before relying on it:
* vLLM loads the model again from its folder and a LoRA adapter from its own folder, so pass the paths
  the run hashed; the adapter is applied per request, with ``max_lora_rank`` read from the adapter's
  ``adapter_config.json`` (vLLM's default, 16, refuses larger adapters).
* Before the engine starts, the Hugging Face copy of the model it is handed is moved off the GPU
  (``gc`` and ``torch.cuda.empty_cache`` after it): vLLM reserves ``gpu_memory_utilization`` of the
  whole card at start and refuses to start when that much is not free. ``close()`` shuts the engine
  down and puts the Hugging Face copy back where it was (a later stage or the fine-tune needs it).
  The generator keeps no reference to that model.
* Greedy outputs are deterministic for a given vLLM version and GPU, but not identical to the
  transformers backend (other kernels, other batching): the backend and its version are recorded in
  ``settings()`` and scores from two backends are not compared as if they were one.
* Sampled decoding uses vLLM's per-request seed, so a prompt's sample does not depend on its batch; it
  is a different random stream from the transformers backend's Gumbel-max sampler.
* It cannot be tested in CI (no GPU); the engine arguments, the rank rounding and the release of the
  Hugging Face copy are (tests/test_vllm_settings.py).
"""

from __future__ import annotations

import gc
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .generate import render_prompts, stop_token_ids

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM accepts (vllm.config.LoRAConfig); an adapter's rank is rounded up to one."""


class VLLMUnavailable(RuntimeError):
    """vLLM was asked for but cannot run here."""


def available() -> bool:
    """True when vllm is importable and a CUDA device is present."""
    if importlib.util.find_spec("vllm") is None:
        return False
    return torch.cuda.is_available()


def require_vllm() -> None:
    """Raise ``VLLMUnavailable`` naming the extra to install when the vllm package is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise VLLMUnavailable("the vLLM backend needs the vllm package: pip install 'assurance[vllm]' "
                              "(a CUDA GPU too); or set battery.backend to 'transformers'")


def check_gpus(tensor_parallel_size: int, visible: int) -> None:
    """Refuse a tensor-parallel size larger than the GPUs this process sees, before vLLM tries."""
    if tensor_parallel_size > visible:
        raise VLLMUnavailable(f"battery.vllm.tensor_parallel_size is {tensor_parallel_size} but {visible} GPU(s) "
                              "are visible; lower it or make more GPUs visible (CUDA_VISIBLE_DEVICES)")


def round_lora_rank(r: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of rank ``r``."""
    if r < 1:
        raise ValueError(f"a LoRA rank must be >= 1, not {r}")
    for size in LORA_RANKS:
        if r <= size:
            return size
    raise ValueError(f"LoRA rank {r} is above {LORA_RANKS[-1]}, the largest rank vLLM serves; merge the "
                     "adapter into the model (finetune.method: full) or use battery.backend: transformers")


def adapter_rank(adapter_dir: str | Path) -> int:
    """The largest rank in a PEFT adapter folder: ``r``, or a larger per-module ``rank_pattern`` entry."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the adapter's rank: {err}") from None
    ranks = [config.get("r")] + list((config.get("rank_pattern") or {}).values())
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks):
        raise ValueError(f"{path}: 'r' and 'rank_pattern' must hold whole numbers, found {ranks}")
    return max(ranks)


def engine_kwargs(model_path: str | Path, *, dtype: str, seed: int, adapter_path: str | Path | None,
                  tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                  max_model_len: int | None = None) -> dict[str, Any]:
    """The arguments of ``vllm.LLM`` for one engine: the plan's settings, LoRA sized to the adapter."""
    kwargs: dict[str, Any] = {
        "model": str(model_path), "dtype": dtype, "seed": seed, "trust_remote_code": False,
        "tensor_parallel_size": tensor_parallel_size, "gpu_memory_utilization": gpu_memory_utilization,
        "max_model_len": max_model_len, "enable_lora": adapter_path is not None,
    }
    if adapter_path is not None:
        kwargs |= {"max_lora_rank": round_lora_rank(adapter_rank(adapter_path)), "max_loras": 1}
    return kwargs


def offload(model) -> Callable[[], None]:
    """Move ``model``'s weights off the GPU and return the memory to the device; returns how to undo it.

    The caller's references stay valid (the same module, now on the CPU), so nothing that holds the model
    (the prepared run, a PEFT wrapper around it) breaks, and no GPU memory is held by it meanwhile."""
    params = list(model.parameters()) if model is not None else []
    device = params[0].device if params else torch.device("cpu")
    if device.type != "cpu":
        model.to("cpu")
    del params
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

    def restore() -> None:
        if device.type != "cpu":
            model.to(device)
    return restore


class VLLMGenerator:
    """Batched generation through a vLLM engine, with the ``generate`` signature.

    The engine starts at the first call, after the Hugging Face model handed to that call is offloaded;
    ``close()`` shuts it down and restores that model."""

    def __init__(self, model_path: str | Path, *, dtype: str = "bfloat16", seed: int = 0,
                 adapter_path: str | Path | None = None, gpu_memory_utilization: float = 0.85,
                 tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 engine: Callable[..., Any] | None = None):
        if engine is None:
            require_vllm()
            check_gpus(tensor_parallel_size, torch.cuda.device_count())
        self.model_path, self.adapter_path, self.dtype = str(model_path), adapter_path, dtype
        self.kwargs = engine_kwargs(model_path, dtype=dtype, seed=seed, adapter_path=adapter_path,
                                    tensor_parallel_size=tensor_parallel_size,
                                    gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
        self._engine_factory = engine
        self.llm: Any = None
        self._restore: Callable[[], None] | None = None

    def start(self, model) -> None:
        """Offload ``model`` (the Hugging Face copy), then start the engine."""
        if self.llm is not None:
            return
        self._restore = offload(model)
        factory = self._engine_factory
        if factory is None:
            from vllm import LLM  # lazy: optional dependency

            factory = LLM
        self.llm = factory(**self.kwargs)

    def close(self) -> None:
        """Shut the engine down, free its GPU memory and put the Hugging Face copy back."""
        if self.llm is not None:
            self.llm = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if self._restore is not None:
            restore, self._restore = self._restore, None
            restore()

    def __call__(self, model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int, batch_size: int,
                 prefills: list[str] | None = None, progress=None, sampling=None) -> list[str]:
        stops = stop_token_ids(model, tokenizer) if model is not None else None
        self.start(model)
        del model  # the generator holds no reference to the Hugging Face copy
        prompts = render_prompts(tokenizer, conversations, prefills)
        # Token ids, not text: the template holds the special tokens already (no double BOS).
        requests = [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        params = self._sampling_params(max_tokens=max_new_tokens, stop_token_ids=stops,
                                       temperature=0.0 if sampling is None else sampling.temperature,
                                       top_p=1.0 if sampling is None else sampling.top_p,
                                       seed=None if sampling is None else sampling.seed, skip_special_tokens=True)
        lora = self._lora_request() if self.adapter_path is not None else None
        # vLLM schedules its own batches; batch_size is not used and not recorded as such.
        outs = self.llm.generate(requests, params, lora_request=lora, use_tqdm=False)
        if progress is not None:
            progress(len(outs))
        return [o.outputs[0].text.strip() for o in outs]

    def _sampling_params(self, **kw):
        if self._engine_factory is not None:  # an injected engine (tests) takes the settings as they are
            return kw
        from vllm import SamplingParams  # lazy: optional dependency

        return SamplingParams(**kw)

    def _lora_request(self):
        if self._engine_factory is not None:
            return ("adapter", 1, str(self.adapter_path))
        from vllm.lora.request import LoRARequest  # lazy: optional dependency

        return LoRARequest("adapter", 1, str(self.adapter_path))

    def settings(self) -> dict:
        import vllm  # lazy: optional dependency

        return {"backend": "vllm", "backend_version": vllm.__version__, "dtype": self.dtype,
                "model_path": self.model_path, "adapter_path": str(self.adapter_path) if self.adapter_path else None,
                "tensor_parallel_size": self.kwargs["tensor_parallel_size"],
                "gpu_memory_utilization": self.kwargs["gpu_memory_utilization"],
                "max_lora_rank": self.kwargs.get("max_lora_rank")}
