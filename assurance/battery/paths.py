"""Where a path named in a plan points."""

from __future__ import annotations

from pathlib import Path


def resolve_path(path: str | Path, base: Path | None) -> Path:
    """A plan path made absolute against the plan's folder (``base``), else against the working directory."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p.resolve()
