"""Agreement between two judges over the same outputs.

Two judges that disagree often make any single score suspect, so with two
judges the pack reports Cohen's kappa and lists the items they split on,
for a person to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _check(a: Sequence[bool], b: Sequence[bool]) -> None:
    if len(a) != len(b):
        raise ValueError(f"verdict lists differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValueError("no verdicts to compare")


def cohens_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa for two binary raters: (p_o - p_e) / (1 - p_e).

    p_o is the observed agreement; p_e the agreement expected by chance from
    each rater's own rate. When both raters give one and the same verdict to
    every item, p_e = 1 and the formula is 0/0; we return 1.0 there, because
    the agreement is perfect and reporting NaN would break the canonical JSON
    of the record (RFC 8785 has no NaN).
    """
    _check(a, b)
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(map(bool, a)) / n, sum(map(bool, b)) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    if p_e == 1.0:
        return 1.0
    return (p_o - p_e) / (1 - p_e)


def disagreements(a: Sequence[bool], b: Sequence[bool]) -> list[int]:
    """Indices of the items the two judges split on, in order."""
    _check(a, b)
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if bool(x) != bool(y)]


def agreement_summary(a: Sequence[bool], b: Sequence[bool], item_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Kappa, raw agreement and the disagreeing items (by id when ids are given)."""
    idx = disagreements(a, b)
    if item_ids is not None and len(item_ids) != len(a):
        raise ValueError(f"got {len(item_ids)} item ids for {len(a)} verdicts")
    return {
        "n": len(a),
        "agreement": 1 - len(idx) / len(a),
        "kappa": cohens_kappa(a, b),
        "disagreements": [item_ids[i] for i in idx] if item_ids is not None else idx,
    }
