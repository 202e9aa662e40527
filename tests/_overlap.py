"""Shared test helper: reading the built-in JSONL data and measuring word-trigram overlap.

Imported by the tests that check the battery stays disjoint from the training data
(``test_builtin_data.py``, ``test_battery_content.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import assurance

FT = Path(assurance.__file__).parent / "finetune/data"
SAFETY = FT / "safety.jsonl"
UTILITY = FT / "utility.jsonl"
STRESS = FT / "benign_stress.jsonl"
TRIPLETS = FT / "safety_triplets.jsonl"


def load_jsonl(path: Path) -> list[tuple[int, dict]]:
    """Return (line number, object) pairs; fail naming the file and line on bad JSON."""
    assert path.is_file(), f"missing data file: {path}"
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            pytest.fail(f"{path.name}:{n}: blank line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:  # pragma: no cover - only on broken data
            pytest.fail(f"{path.name}:{n}: invalid JSON: {exc}")
        assert isinstance(obj, dict), f"{path.name}:{n}: not a JSON object"
        rows.append((n, obj))
    return rows


def normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("'", "")
    text = re.sub(r"[^a-z0-9£%]+", " ", text)
    return " ".join(text.split())


def trigrams(words: list[str]) -> frozenset:
    return frozenset(zip(words, words[1:], words[2:]))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def training_prompts():
    """(file name, line, prompt) for every training user turn and triplet instruction."""
    out = []
    for path in (SAFETY, UTILITY, STRESS):
        for n, row in load_jsonl(path):
            out.append((path.name, n, row["messages"][0]["content"]))
    for n, row in load_jsonl(TRIPLETS):
        out.append((TRIPLETS.name, n, row["instruction"]))
    return out
