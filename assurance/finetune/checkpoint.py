"""Atomic, resumable training checkpoints.

A checkpoint is a folder ``output_dir/checkpoints/step-00000N/`` holding
``state.pt`` (trainable weights, optimizer, RNG states, loss curve, counters)
and ``meta.json`` (step, data position, for people). It is written into a
hidden temporary folder, fsynced, then renamed into place: a kill at any
moment leaves either the whole checkpoint or none of it, never a torn one.
The learning-rate schedule is a pure function of the step, and the data order a
pure function of (seed, epoch), so the step and data position are the scheduler
and sampler state.

``meta.json`` also holds ``state_sha256``, the digest of ``state.pt`` as written:
``load`` (and ``assure run --resume``, before it appends anything) refuses a
checkpoint whose bytes changed since, since resuming from altered weights or
optimizer state would change the results while the run still verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import torch

STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted to resume from; the message names it and says why."""


def state_digest(path: Path) -> str:
    """``sha256:<hex>`` of a checkpoint folder's ``state.pt``."""
    h = hashlib.sha256()
    with (path / "state.pt").open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def recorded_digest(path: Path) -> str | None:
    """The ``state_sha256`` that ``meta.json`` recorded when the checkpoint was written (None from older releases)."""
    try:
        return json.loads((path / "meta.json").read_text()).get("state_sha256")
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: meta.json is unreadable ({err})") from None


def check(path: Path) -> None:
    """Raise CheckpointError unless ``state.pt`` still has the digest ``meta.json`` recorded when it was written."""
    recorded = recorded_digest(path)
    if recorded is None:
        raise CheckpointError(f"checkpoint {path}: no state_sha256 in meta.json (written by an older release), so "
                              "it cannot be checked; delete the checkpoints folder to restart the fine-tune")
    now = state_digest(path)
    if now != recorded:
        raise CheckpointError(f"checkpoint {path}: state.pt has digest {now}, but {recorded} when it was written; "
                              "its weights or optimizer state changed, so resuming from it would not reproduce "
                              "the run (start a new run)")


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
    meta = {**meta, "state_sha256": state_digest(tmp)}
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
    check(path)
    # weights_only: a checkpoint is data (tensors, numbers, lists), never code to unpickle
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
