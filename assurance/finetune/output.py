"""The finished fine-tune on disk: the adapter or the model, written so that its digest can be reproduced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def save_output(model, tokenizer, method: str, output_dir: Path, state_dict: dict | None = None) -> None:
    """Write the finished model (LoRA: adapter_model.safetensors + adapter_config.json; full: model.safetensors
    and the tokenizer) and drop the checkpoints: they exist for crash recovery only, and the finished output is
    the artifact whose digest is recorded. ``state_dict``: the whole weights of a sharded model."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if state_dict is None:
        model.save_pretrained(output_dir)
    else:
        model.save_pretrained(output_dir, state_dict=state_dict)
    if method == "full":
        tokenizer.save_pretrained(output_dir)
    else:
        deterministic_adapter_config(output_dir / "adapter_config.json")
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)


def deterministic_adapter_config(path: Path) -> None:
    """Rewrite peft's adapter_config.json with its set-valued fields sorted.

    peft keeps ``target_modules`` as a Python set, so the saved list follows string hashing, which
    changes with every process: the same weights then get a different folder digest on every run and
    nobody can reproduce a recorded adapter digest. Sorting the lists makes the bytes a function of the
    configuration alone (peft reads either order back as the same set)."""
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
