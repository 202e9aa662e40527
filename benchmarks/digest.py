"""Directory hashing: ours against OpenSSF model-signing's, same folder, one run.

Builds a folder of several large files (like a sharded model), hashes it with
both tools a few times in alternation (so the page cache treats them alike),
checks the digests agree, and prints the best times and, last,
``ratio=<theirs/ours>`` (above 1 means ours is faster).

    python benchmarks/digest.py [--files 6] [--mib 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from assurance.evidence.hashing import tree_digest


def build_folder(root: Path, files: int, mib: int) -> None:
    block = os.urandom(1 << 20)
    for i in range(files):
        with open(root / f"model-{i:05d}-of-{files:05d}.safetensors", "wb") as f:
            for j in range(mib):
                # Vary each MiB a little so no two blocks are identical.
                f.write(j.to_bytes(8, "little") + block[8:])
    (root / "config.json").write_text('{"model_type": "llama"}')


def theirs(root: Path) -> str:
    from model_signing import hashing

    manifest = hashing.Config().hash(root)
    outer = hashlib.sha256()
    for desc in manifest.resource_descriptors():
        outer.update(desc.digest.digest_value)
    return "sha256:" + outer.hexdigest()


def ours(root: Path) -> str:
    return tree_digest(root).digest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_folder(root, args.files, args.mib)
        size = args.files * args.mib
        best = {"model-signing": float("inf"), "assurance": float("inf")}
        digests = {}
        for _ in range(args.repeats):
            for name, fn in (("model-signing", theirs), ("assurance", ours)):
                t0 = time.perf_counter()
                digests[name] = fn(root)
                best[name] = min(best[name], time.perf_counter() - t0)
        assert digests["model-signing"] == digests["assurance"], digests
        print(f"folder: {args.files} files, {size} MiB; cpus={os.cpu_count()}; digests agree: {digests['assurance']}")
        for name, t in best.items():
            print(f"{name:14s} best {t:.3f}s  {size / t:,.0f} MiB/s")
        print(f"ratio={best['model-signing'] / best['assurance']:.3f}")


if __name__ == "__main__":
    main()
