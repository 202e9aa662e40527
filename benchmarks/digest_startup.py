"""Whole-process digest of a model folder: `assure digest FOLDER` against OpenSSF model-signing.

benchmarks/digest.py times the hashing functions inside one process; a CI job or an auditor runs a
whole process, so here each tool starts cold-ish as its own subprocess and pays its own imports:

* ours: the ``assure`` command (``assure digest FOLDER``);
* theirs: model-signing 1.x has no digest command, so a ``python -c`` process that imports its
  hashing API and prints the same directory digest (the one its manifests are built from).

The folder is generated: ``--gib`` of random safetensors-like shards plus a config.json, in a temp
folder (or give ``--folder`` to time an existing model). Each tool runs once to warm the page cache,
then they alternate ``--repeats`` times; the digests must agree. Prints the best wall and CPU times,
``cpu_ratio=`` (steadier on a shared machine) and, last, ``ratio=<theirs/ours>`` in wall time (at
least 1 means ``assure digest`` is as fast or faster).

    python benchmarks/digest_startup.py [--gib 2] [--files 4] [--repeats 3] [--folder PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from digest import build_folder

# model-signing's own directory digest: SHA-256 over its files' digests in its manifest order.
THEIRS = """
import hashlib, sys
from model_signing import hashing
manifest = hashing.Config().hash(sys.argv[1])
outer = hashlib.sha256()
for desc in manifest.resource_descriptors():
    outer.update(desc.digest.digest_value)
print("sha256:" + outer.hexdigest())
"""


def ours_command(folder: Path) -> list[str]:
    script = shutil.which("assure", path=str(Path(sys.executable).parent))
    return [script, "digest", str(folder)] if script else [sys.executable, "-m", "assurance.cli", "digest", str(folder)]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, all threads) and the digest printed."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0, done.stdout.split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=2.0, help="Size of the generated folder (GiB).")
    ap.add_argument("--files", type=int, default=4, help="Shards in the generated folder.")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--folder", type=Path, help="Time this folder instead of generating one.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp)
            build_folder(folder, args.files, max(1, round(args.gib * 1024 / args.files)))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        commands = {"model-signing": [sys.executable, "-c", THEIRS, str(folder)], "assure": ours_command(folder)}
        best = dict.fromkeys(commands, float("inf"))
        best_cpu = dict.fromkeys(commands, float("inf"))
        digests = {name: timed(cmd)[2] for name, cmd in commands.items()}  # warm the page cache for both
        assert digests["model-signing"] == digests["assure"], digests
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                seconds, cpu, _digest = timed(cmd)
                best[name], best_cpu[name] = min(best[name], seconds), min(best_cpu[name], cpu)
        print(f"folder: {size / 2**30:.2f} GiB in {sum(1 for p in folder.rglob('*') if p.is_file())} files; "
              f"cpus={os.cpu_count()}; digests agree: {digests['assure']}")
        for name, cmd in commands.items():
            rate = size / 2**20 / best[name]
            print(f"{name:14s} best {best[name]:.3f}s wall, {best_cpu[name]:.3f}s CPU  {rate:,.0f} MiB/s  "
                  f"({' '.join(cmd[:2])} ...)")
        # CPU time is the steadier figure on a shared machine; the goal is stated in wall time.
        print(f"cpu_ratio={best_cpu['model-signing'] / best_cpu['assure']:.3f}")
        print(f"ratio={best['model-signing'] / best['assure']:.3f}")


if __name__ == "__main__":
    main()
