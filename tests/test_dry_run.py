"""``assure run --dry-run``: the plan checked, the stages sized and the peak memory estimated from
config.json alone, with nothing written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assurance.battery.builtin import battery_from_spec
from assurance.battery.runner import planned_probes
from assurance.cli import app
from assurance.dryrun import dry_run_report, model_config, shape_from_config
from assurance.memory_model import ModelShape, Training, activation_bytes, estimate_memory, kv_cache_bytes
from assurance.plan import Plan

GIB = 2**30
runner = CliRunner()

# The shape of Llama 3.2 1B (about 1.24e9 parameters, tied embeddings); no weights are written.
LLAMA_1B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "vocab_size": 128256, "max_position_embeddings": 131072, "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
}


def _stage(report: dict, name: str) -> dict:
    return next(s for s in report["stages"] if s["stage"] == name)


def test_tiny_plan_counts_match_the_built_model_and_peft(tiny_model):
    from assurance.finetune.trainer import wrap_lora

    model, _ = tiny_model
    plan = Plan(device="cpu")
    report = dry_run_report(plan, device_total=64 * GIB)
    assert report["model"]["parameters"] == sum(p.numel() for p in model.parameters())
    peft_model, _ = wrap_lora(copy.deepcopy(model), plan.finetune.lora)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    # the default plan tunes the tiny model's full weights (TINY_SAFETY_TUNE); stress still trains a LoRA
    assert _stage(report, "safety fine-tune")["trainable_parameters"] == report["model"]["parameters"]
    assert _stage(report, "persistence stress fine-tune")["trainable_parameters"] == trainable

    battery = battery_from_spec(plan.battery)
    base = _stage(report, "evaluate base")
    assert base["generations"] == planned_probes(battery, plan.battery.sampling) == base["probes"]
    assert base["items"] == len(battery.items)
    assert sum(s["probes"] for s in base["suites"]) == battery.n_probes()
    ft = _stage(report, "safety fine-tune")
    assert ft["max_tokens"] == plan.finetune.max_steps * plan.finetune.batch_size * plan.finetune.max_length
    assert [s["stage"] for s in report["stages"]] == [
        "evaluate base", "safety fine-tune", "evaluate tuned", "persistence stress fine-tune",
        "evaluate stressed", "verdict and evidence seal", "packs and packs seal"]
    mem = report["memory"]
    assert mem["weights"] == report["model"]["parameters"] * 4  # float32 on CPU
    assert mem["verdict"] == "FITS"


def test_sampled_seeds_multiply_the_generations():
    plan = Plan(device="cpu", battery={"sampling": {"enabled": True, "n_seeds": 2}, "suites": ["refusal"]},
                stress={"enabled": False})
    base = _stage(dry_run_report(plan, device_total=64 * GIB), "evaluate base")
    assert base["sampled_seeds"] == 2
    assert base["generations"] == 3 * base["probes"]  # the refusal suite has no multiple-choice items


def test_memory_verdict_follows_the_device_memory():
    plan = Plan(device="cpu", stress={"enabled": False})
    peak = dry_run_report(plan, device_total=64 * GIB)["memory"]["peak"]
    assert dry_run_report(plan, device_total=2**20)["memory"]["verdict"] == "WILL NOT FIT"
    tight = dry_run_report(plan, device_total=int(peak / 0.9))["memory"]
    assert tight["verdict"] == "TIGHT" and 0.8 <= tight["fraction"] <= 1.0


def test_estimate_arithmetic():
    shape = ModelShape(parameters=1000, hidden_size=4, num_layers=1, num_heads=1, num_kv_heads=1, head_dim=4,
                       vocab_size=10, linear_shapes={"q_proj": [(4, 4)], "down_proj": [(8, 4)]}, intermediate_size=8)
    ft = Training("ft", "full", 1, 2, 1000)
    # per token: norms 2*(4+2*2)*4 = 64, SDPA q,k,v,out 2*4*4 = 32, ungated MLP 2*8*2 = 32 -> one layer 128;
    # final norm + head input (4+3*2)*4 = 40, log-softmax 4*10 = 40; backward: max(8*10, 3*2*8) = 80
    assert activation_bytes(shape, ft, 2) == 2 * (128 + 40 + 40 + 80)
    eager = ModelShape(**{**shape.__dict__, "attention": "eager"})  # q,k,v,o_in 2*4*4 = 32; scores 1*2*(4+2) = 12
    assert activation_bytes(eager, ft, 2) == 2 * (64 + 32 + 12 + 32 + 40 + 40 + 80)
    assert kv_cache_bytes(shape, batch=3, tokens=5, nbytes=2) == 2 * 1 * 1 * 4 * 3 * 5 * 2
    assert shape.lora_parameters(2, ["q_proj", "down_proj", "absent"]) == 2 * 8 + 2 * 12
    assert shape.adapter_inputs(2, ["q_proj", "down_proj"]) == (4 + 2) + (8 + 2)
    full = estimate_memory(shape, dtype="bfloat16", device_total=10**9, trainings=[ft], gen_batch=1, gen_tokens=1)
    assert (full.weights, full.gradients, full.optimizer) == (2000, 2000, 4000)
    assert full.peak == 2000 + 2000 + 4000 + 576 and full.peak_phase == "ft" and full.attention == "sdpa"
    lora = estimate_memory(shape, dtype="float32", device_total=10**9,
                           trainings=[Training("ft", "lora", 1, 2, 40)], gen_batch=1, gen_tokens=1)
    assert (lora.weights, lora.gradients, lora.optimizer) == (4000, 40 * 8, 40 * 8)
    gen = estimate_memory(shape, dtype="float32", device_total=10**9, trainings=[], gen_batch=1000, gen_tokens=100)
    assert gen.peak_phase == "generation" and gen.peak == 4000 + gen.kv_cache


def test_a_1b_config_without_weights(tmp_path):
    folder = tmp_path / "llama-1b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_1B))
    config, source = model_config(str(folder))
    shape = shape_from_config(config)
    assert 1.0e9 <= shape.parameters <= 1.3e9
    assert source.endswith("config.json")
    # one decoder layer (FSDP's unit): q, k, v, o, the gated MLP and two norms; the rest is the embedding + norm
    assert shape.layer_parameters == 2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192 + 2 * 2048
    assert shape.root_unit == 128256 * 2048 + 2048  # tied: one embedding matrix
    lora = shape.lora_parameters(16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert lora == 16 * 16 * ((2048 + 2048) * 2 + (2048 + 512) * 2 + (2048 + 8192) * 3)

    def peak(method: str, trainable: int, gib: int):
        return estimate_memory(shape, dtype="bfloat16", device_total=gib * GIB, gen_batch=64, gen_tokens=200,
                               trainings=[Training("ft", method, 8, 256, trainable)])

    assert shape.attention == "sdpa"  # what transformers picks for a Llama config that names none

    assert peak("lora", lora, 16).verdict == "FITS"
    assert peak("full", shape.parameters, 12).verdict == "WILL NOT FIT"


def _invoke(tmp_path: Path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASSURE_DB", raising=False)
    monkeypatch.delenv("ASSURE_HOME", raising=False)
    return runner.invoke(app, list(args))


def _written(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".yaml")


def test_cli_dry_run_writes_nothing(tmp_path, monkeypatch, tiny_model_dir):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"device": "cpu", "stress": {"enabled": False}}))
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["memory"]["verdict"] in ("FITS", "TIGHT", "WILL NOT FIT")
    assert report["model"]["attention"] == report["memory"]["attention"] == "sdpa"
    assert "persistence stress fine-tune" not in [s["stage"] for s in report["stages"]]
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run")
    assert res.exit_code == 0 and "Dry run" in res.stdout and "sdpa attention (keeps no s×s" in res.stdout
    assert _written(tmp_path) == []  # no assure-runs folder, no evidence.db


def test_cli_dry_run_bad_input_exits_2(tmp_path, monkeypatch):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"model": {"path": str(tmp_path / "missing")}}))
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run")
    assert res.exit_code == 2 and "folder does not exist" in res.output
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump({"device": "cpu", "finetune": {"lora": {
        "target_modules": ["c_attn"]}}}))
    res = _invoke(tmp_path, monkeypatch, "run", "lora.yaml", "--dry-run")
    assert res.exit_code == 2 and "c_attn" in res.output
    assert _written(tmp_path) == []


def test_cli_evaluate_dry_run(tmp_path, monkeypatch, tiny_model_dir):
    plan = {"device": "cpu", "target": {"kind": "folder", "path": str(tiny_model_dir)}}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    res = _invoke(tmp_path, monkeypatch, "evaluate", "plan.yaml", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [s["stage"] for s in report["stages"]] == ["evaluate target", "verdict and evidence seal",
                                                      "packs and packs seal"]
    assert report["memory"]["peak_phase"] == "generation"
    assert report["model"]["source"] == str(tiny_model_dir / "config.json")
    assert _written(tmp_path) == []


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_dry_run_is_in_the_help(command):
    assert "--dry-run" in runner.invoke(app, [command, "--help"]).stdout


def test_device_memory_reads_the_gpu_or_the_ram(monkeypatch):
    import torch

    from assurance.dryrun import device_memory

    class Props:
        total_memory, name = 80 * GIB, "Fake GPU"

    seen = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: seen.append(i) or Props())
    assert device_memory(torch.device("cuda")) == (80 * GIB, "Fake GPU") and seen == [0]
    ram, name = device_memory(torch.device("cpu"))
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():  # the kernel's MemTotal, in kB
        total = next(int(line.split()[1]) for line in meminfo.read_text().splitlines() if line.startswith("MemTotal"))
        assert abs(ram - total * 1024) < 64 * 2**20
    assert name == "CPU RAM" and ram > 0


def test_estimate_per_process_under_a_launcher():
    """One process's share: rows split N ways always; weights, full gradients and AdamW states split too under
    FSDP, plus what it gathers whole (the root unit, two layers); DDP adds its gradient buckets."""
    shape = ModelShape(parameters=1000, hidden_size=4, num_layers=2, num_heads=1, num_kv_heads=1, head_dim=4,
                       vocab_size=10, linear_shapes={"q_proj": [(4, 4)]}, intermediate_size=8, layer_parameters=300)
    assert (shape.layer_unit, shape.root_unit) == (300, 400)
    ft = Training("ft", "full", 8, 2, 1000)
    one = estimate_memory(shape, dtype="bfloat16", device_total=10**9, trainings=[ft], gen_batch=1, gen_tokens=1)
    ddp = estimate_memory(shape, dtype="bfloat16", device_total=10**9, trainings=[ft], gen_batch=1, gen_tokens=1,
                          processes=4)
    assert ddp.processes == 4 and (ddp.weights, ddp.optimizer) == (one.weights, one.optimizer) == (2000, 4000)
    assert ddp.gradients == 2 * one.gradients  # DDP's buckets: a second copy
    assert ddp.activations == activation_bytes(shape, Training("ft", "full", 2, 2, 1000), 2)  # 8 rows / 4
    fsdp = estimate_memory(shape, dtype="bfloat16", device_total=10**9, processes=4, gen_batch=1, gen_tokens=1,
                           trainings=[Training("ft", "full", 8, 2, 1000, sharded=True)])
    gathered = (400 + 2 * 300) * 2
    assert fsdp.weights == 2000 // 4 + gathered
    assert (fsdp.gradients, fsdp.optimizer) == (2000 // 4 + 2 * 300 * 2, 4000 // 4)
    # model.parallel: fsdp shards generation's weights as well; replicated weights stay whole there
    gen = dict(dtype="bfloat16", device_total=10**9, trainings=[], gen_batch=1, gen_tokens=1, processes=4)
    assert estimate_memory(shape, **gen, sharded_weights=True).weights == 2000 // 4 + gathered
    assert estimate_memory(shape, **gen).weights == 2000


def test_dry_run_processes_for_sharded_weights(tmp_path, monkeypatch, tiny_model_dir):
    plan = {"device": "cpu", "model": {"parallel": "fsdp"}, "finetune": {"parallel": "fsdp"},
            "stress": {"parallel": "fsdp"}}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    one = json.loads(_invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run", "--json").stdout)["memory"]
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run", "--json", "--processes", "2")
    assert res.exit_code == 0, res.output
    model, two = json.loads(res.stdout)["model"], json.loads(res.stdout)["memory"]
    assert (one["processes"], two["processes"]) == (1, 2) and one["weights"] == model["parameters"] * 4
    layer = model["layer_parameters"]
    root = model["parameters"] - model["layers"] * layer
    assert 0 < layer and 0 < root  # the tiny model's embeddings are a third of it: sharding gains little there
    assert two["weights"] == model["parameters"] * 4 // 2 + (root + 2 * layer) * 4
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--dry-run", "--processes", "2")
    assert "per process (2 processes, one GPU each)" in res.stdout
    res = _invoke(tmp_path, monkeypatch, "run", "plan.yaml", "--processes", "2")
    assert res.exit_code == 2 and "--processes only goes with --dry-run" in res.output
    assert _written(tmp_path) == []
