"""Optional vLLM generation backend (GPU only).

Used when the ``vllm`` package is installed and CUDA is present; nothing here
imports vllm until a generator is built, so the package works without it.
``VLLMGenerator`` has the call signature of ``models.generate.generate`` and
can be passed to ``battery.runner.evaluate(..., generator=...)``.

What to know before relying on it:
* vLLM loads the model again from its folder (the ``model`` object passed in
  is ignored) and a LoRA adapter from its own folder, so pass the paths the
  run hashed; the adapter is applied per request.
* Greedy outputs are deterministic for a given vLLM version and GPU, but not
  identical to the transformers backend (other kernels, other batching): the
  backend and its version are recorded in ``settings()`` and scores from two
  backends are not compared as if they were one.
* Sampled decoding uses vLLM's per-request seed, so a prompt's sample does not
  depend on its batch; it is a different random stream from the transformers
  backend's Gumbel-max sampler.
* It cannot be tested in CI (no GPU); ``available()`` is False there.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from .generate import render_prompts, stop_token_ids


def available() -> bool:
    """True when vllm is importable and a CUDA device is present."""
    if importlib.util.find_spec("vllm") is None:
        return False
    return torch.cuda.is_available()


class VLLMGenerator:
    """Batched generation through a vLLM engine, with the ``generate`` signature."""

    def __init__(self, model_path: str | Path, *, dtype: str = "bfloat16", seed: int = 0,
                 adapter_path: str | Path | None = None, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None):
        from vllm import LLM  # lazy: optional dependency

        self.model_path, self.adapter_path, self.dtype = str(model_path), adapter_path, dtype
        self.llm = LLM(model=self.model_path, dtype=dtype, seed=seed, trust_remote_code=False,
                       enable_lora=adapter_path is not None, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len)

    def __call__(self, model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int, batch_size: int,
                 prefills: list[str] | None = None, progress=None, sampling=None) -> list[str]:
        from vllm import SamplingParams  # lazy: optional dependency

        prompts = render_prompts(tokenizer, conversations, prefills)
        # Token ids, not text: the template holds the special tokens already (no double BOS).
        requests = [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        params = SamplingParams(
            max_tokens=max_new_tokens, stop_token_ids=stop_token_ids(model, tokenizer) if model is not None else None,
            temperature=0.0 if sampling is None else sampling.temperature,
            top_p=1.0 if sampling is None else sampling.top_p,
            seed=None if sampling is None else sampling.seed, skip_special_tokens=True,
        )
        lora = None
        if self.adapter_path is not None:
            from vllm.lora.request import LoRARequest  # lazy: optional dependency

            lora = LoRARequest("adapter", 1, str(self.adapter_path))
        # vLLM schedules its own batches; batch_size is not used and not recorded as such.
        outs = self.llm.generate(requests, params, lora_request=lora, use_tqdm=False)
        if progress is not None:
            progress(len(outs))
        return [o.outputs[0].text.strip() for o in outs]

    def settings(self) -> dict:
        import vllm  # lazy: optional dependency

        return {"backend": "vllm", "backend_version": vllm.__version__, "dtype": self.dtype,
                "model_path": self.model_path, "adapter_path": str(self.adapter_path) if self.adapter_path else None}
