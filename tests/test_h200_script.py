"""benchmarks/h200.py, the script a lent H200 runs once, runs end to end on CPU with --tiny.

It must work the first time on the GPU machine (15 minutes of device time, no second chance), so every
path but the CUDA one is exercised here: the random-weight Llama, our runner against Hugging Face's
batched generate, both fine-tune methods through our trainer, the figures and the JSON file."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_h200_script_tiny_writes_every_figure(tmp_path):
    env = os.environ | {"OUT": str(tmp_path), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "h200.py"), "--tiny"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "h200.json").read_text())
    printed = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line and " " not in line)
    assert set(figures) - {"vllm"} <= set(printed)  # one line per figure
    assert figures["device"] == "cpu" and figures["peak_flops_used"] == 989e12
    # On CPU in float32 our runner must reproduce Hugging Face's batched greedy replies exactly.
    assert figures["gen_mismatches_ours_vs_hf"] == 0
    assert figures["gen_new_tokens"] > 0
    for name in ("ours", "hf"):
        assert figures[f"gen_{name}_prompts_per_s"] > 0 and figures[f"gen_{name}_tokens_per_s"] > 0
    for method in ("lora", "full"):
        assert figures[f"ft_{method}_tokens_per_s"] > 0 and 0 < figures[f"ft_{method}_mfu"] < 1
        assert figures[f"ft_{method}_seq_len"] == 64
    assert figures["ft_lora_trainable_params"] < figures["ft_full_trainable_params"]
    if importlib.util.find_spec("vllm") is None:
        assert "vllm: not installed" in proc.stdout


def test_fsdp_weights_script_tiny_agrees_with_the_whole_model(tmp_path):
    """benchmarks/fsdp_weights.py (run once on a lent GPU): the sharded loader in a process group of one, on CPU."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "MASTER_PORT": "29541"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fsdp_weights.py"), "--tiny"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = dict(part.split("=", 1) for line in proc.stdout.splitlines() for part in line.split()
                   if "=" in part and not part.startswith("lora_losses"))
    assert printed["mismatches_sharded_vs_whole"] == "0" and printed["processes"] == "1"
    assert printed["params_this_rank"] == printed["params_total"]  # one process holds every shard
    assert float(printed["ratio"]) > 0 and proc.stdout.strip().splitlines()[-1].startswith("ratio=")
