"""The same LoRA weights give the same adapter folder digest in every process (issue 10's campaign: peft
saved ``target_modules`` in hash order, so a recorded adapter digest could not be reproduced)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAVE = r"""
import sys, torch
from peft import LoraConfig, get_peft_model
from assurance.finetune.output import save_output
from assurance.models.loading import load_model
from assurance.evidence.hashing import tree_digest
torch.manual_seed(0)
model, tok = load_model(sys.argv[1], device="cpu", dtype=torch.float32)
cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
                 task_type="CAUSAL_LM", init_lora_weights=False)
torch.manual_seed(0)
model = get_peft_model(model, cfg)
save_output(model, tok, "lora", __import__("pathlib").Path(sys.argv[2]))
print(tree_digest(__import__("pathlib").Path(sys.argv[2])).digest)
"""


def _save(model_dir: Path, out: Path, hash_seed: str) -> tuple[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", SAVE, str(model_dir), str(out)], env=env, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return res.stdout.strip().splitlines()[-1], (out / "adapter_config.json").read_text(encoding="utf-8")


def test_adapter_digest_does_not_depend_on_string_hashing(tiny_model_dir, tmp_path):
    runs = [_save(tiny_model_dir, tmp_path / f"a{seed}", seed) for seed in ("1", "2")]
    digests = {d for d, _ in runs}
    assert len(digests) == 1, [d for d, _ in runs]
    assert '"target_modules": [\n    "down_proj",' in runs[0][1]  # sorted, whatever the hash order
