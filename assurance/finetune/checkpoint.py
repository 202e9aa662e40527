"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``output_dir/checkpoints/step-00000N/`` holding
``state.pt`` (trainable weights, optimizer, RNG states, loss curve, counters)
and ``meta.json`` (step, data position, for people). It is written into a
hidden temporary folder, fsynced, then renamed into place: a kill at any
moment leaves either the whole checkpoint or none of it, never a torn one.
The learning-rate schedule is a pure function of the step, and the data order a
pure function of (seed, epoch), so the step and data position are the scheduler
and sampler state.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import torch

STEP_DIR = re.compile(r"^step-(\d+)$")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(root: Path, step: int, state: dict, meta: dict, keep: int) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, then delete all but the newest ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    for f in ("state.pt", "meta.json"):
        _fsync(tmp / f)
    _fsync(tmp)
    if final.exists():  # a rerun reached the same step: replace the older copy
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync(root)
    for old in complete(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := STEP_DIR.match(p.name)) and (p / "meta.json").is_file() and (p / "state.pt").is_file()]
    return [p for _, p in sorted(found)]


def latest(root: Path) -> Path | None:
    done = complete(root)
    return done[-1] if done else None


def load(path: Path) -> dict:
    # weights_only: a checkpoint is data (tensors, numbers, lists), never code to unpickle
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
