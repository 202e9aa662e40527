"""The vLLM backend's pure logic, without vLLM: plan fields, LoRA rank sizing, engine arguments, the import
guard, and that the Hugging Face copy leaves the GPU before the engine starts and comes back after."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from assurance.models import vllm_backend as vb
from assurance.plan import PlanError, plan_from_dict


@pytest.mark.parametrize(("r", "size"), [(1, 8), (8, 8), (9, 16), (16, 16), (17, 32), (64, 64), (65, 128),
                                         (256, 256), (257, 320), (512, 512)])
def test_rank_rounds_up_to_a_size_vllm_accepts(r, size):
    assert vb.round_lora_rank(r) == size


def test_rank_out_of_range_is_refused():
    with pytest.raises(ValueError, match="above 512"):
        vb.round_lora_rank(513)
    with pytest.raises(ValueError, match=">= 1"):
        vb.round_lora_rank(0)


def _adapter(tmp_path, **config):
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    return tmp_path


def test_adapter_rank_reads_r_and_the_largest_rank_pattern(tmp_path):
    assert vb.adapter_rank(_adapter(tmp_path, r=24)) == 24
    assert vb.adapter_rank(_adapter(tmp_path, r=8, rank_pattern={"q_proj": 48, "v_proj": 4})) == 48
    with pytest.raises(ValueError, match="whole numbers"):
        vb.adapter_rank(_adapter(tmp_path, r="big"))
    with pytest.raises(ValueError, match="cannot read"):
        vb.adapter_rank(tmp_path / "missing")


def test_engine_kwargs_from_the_plan_and_the_adapter(tmp_path):
    plan = plan_from_dict({"battery": {"vllm": {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.6,
                                                "max_model_len": 4096}}})
    spec = plan.battery.vllm
    kw = vb.engine_kwargs("/models/m", dtype="bfloat16", seed=3, adapter_path=_adapter(tmp_path, r=64),
                          tensor_parallel_size=spec.tensor_parallel_size,
                          gpu_memory_utilization=spec.gpu_memory_utilization, max_model_len=spec.max_model_len)
    assert kw == {"model": "/models/m", "dtype": "bfloat16", "seed": 3, "trust_remote_code": False,
                  "tensor_parallel_size": 2, "gpu_memory_utilization": 0.6, "max_model_len": 4096,
                  "enable_lora": True, "max_lora_rank": 64, "max_loras": 1}
    plain = vb.engine_kwargs("/models/m", dtype="bfloat16", seed=0, adapter_path=None)
    assert plain["enable_lora"] is False and "max_lora_rank" not in plain
    assert plain["tensor_parallel_size"] == 1 and plain["gpu_memory_utilization"] == 0.85


@pytest.mark.parametrize(("settings", "message"), [
    ({"tensor_parallel_size": 0}, "battery.vllm.tensor_parallel_size: must be >= 1"),
    ({"gpu_memory_utilization": 0}, "battery.vllm.gpu_memory_utilization: must be > 0"),
    ({"gpu_memory_utilization": 1.5}, "battery.vllm.gpu_memory_utilization: must be <= 1"),
    ({"tensor_parallel_size": "two"}, "battery.vllm.tensor_parallel_size"),
    ({"max_lora_rank": 16}, "battery.vllm.max_lora_rank: unknown field"),
])
def test_bad_vllm_settings_name_the_field(settings, message):
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        plan_from_dict({"battery": {"vllm": settings}})


def test_defaults():
    spec = plan_from_dict({}).battery.vllm
    assert (spec.tensor_parallel_size, spec.gpu_memory_utilization, spec.max_model_len) == (1, 0.85, None)


def test_too_many_gpus_is_refused_before_vllm_tries():
    vb.check_gpus(2, 2)
    with pytest.raises(vb.VLLMUnavailable, match="tensor_parallel_size is 4 but 1 GPU"):
        vb.check_gpus(4, 1)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_names_the_extra():
    with pytest.raises(vb.VLLMUnavailable, match=r"assurance\[vllm\]"):
        vb.VLLMGenerator("/models/m")
    assert vb.available() is False


class _Model(torch.nn.Module):
    """Stands in for a model on a GPU: records where it is moved (this machine has none)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, device="meta"))
        self.moves: list[str] = []

    def to(self, device):  # type: ignore[override]
        self.moves.append(str(device))
        return self


def test_hf_copy_leaves_the_gpu_before_the_engine_starts_and_returns_after(tiny_model, tmp_path):
    _, tok = tiny_model
    model = _Model()
    events: list[str] = []

    class Engine:
        def __init__(self, **kwargs):
            events.append(f"engine start, model moved to {model.moves}")
            self.kwargs = kwargs

        def generate(self, requests, params, lora_request, use_tqdm):
            events.append(f"generate {len(requests)} lora={lora_request is not None}")

            class Out:
                outputs = [type("C", (), {"text": " hello "})()]
            return [Out() for _ in requests]

    model.generation_config = type("G", (), {"eos_token_id": tok.eos_token_id})()
    gen = vb.VLLMGenerator("/models/m", adapter_path=_adapter(tmp_path, r=32), engine=Engine)
    outs = gen(model, tok, [[{"role": "user", "content": "hi"}]] * 3, max_new_tokens=4, batch_size=2)
    assert outs == ["hello"] * 3
    assert events == ["engine start, model moved to ['cpu']", "generate 3 lora=True"]
    assert gen.llm.kwargs["max_lora_rank"] == 32
    gen.close()
    assert gen.llm is None and model.moves == ["cpu", "meta"]  # back where it was
    gen.close()  # idempotent
    assert model.moves == ["cpu", "meta"]
