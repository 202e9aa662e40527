"""What the run executed on: software versions, hardware and source state."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import assurance

from .records import EnvironmentRecord

# Packages whose versions can move a safety score (numerics, templates, decoding).
TRACKED = ("torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "weasyprint", "pydantic")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the assurance source tree, if it is a git checkout."""
    root = Path(assurance.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
        )
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if commit.returncode != 0:
        return None, None
    return commit.stdout.strip(), bool(status.stdout.strip())


def capture_environment(device: str, dtype: str, accelerator: str) -> EnvironmentRecord:
    commit, dirty = git_state()
    return EnvironmentRecord(
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages={name: _version(name) for name in TRACKED},
        device=device,
        accelerator=accelerator,
        dtype=dtype,
        tool_version=assurance.__version__,
        git_commit=commit,
        git_dirty=dirty,
    )
