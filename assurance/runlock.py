"""One process at a time per run: an advisory lock on the run's folder.

Held for as long as a run (or a resume of it) works, released by the kernel
when the process ends, killed or not, so a crashed run never leaves a stale
lock behind. Two processes appending to one chain would fork it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .plan import PlanError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no locking there
    fcntl = None  # type: ignore[assignment]  # typeshed has fcntl on POSIX only; None marks its absence


class RunInProgress(PlanError):
    """Another live process holds this run."""


@contextlib.contextmanager
def run_lock(run_dir: Path, run_id: str) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = run_dir / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunInProgress(f"run {run_id} is still being worked on by another process (pid {holder}); "
                                "wait for it to finish, or stop it, before resuming") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
