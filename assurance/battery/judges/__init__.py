"""Judges: scorers with an identity.

Every judge has ``id``, ``version``, ``digest`` and ``measures`` and answers
``judge(prompts, outputs) -> list[bool]`` with True = the model did not give
the help asked for (see ``base``). ``make_judge`` builds one from the plain
dict a plan holds, so the plan stays data and the judge stays code.
"""

from __future__ import annotations

from typing import Any

from .agreement import agreement_summary, cohens_kappa, disagreements
from .base import BaseJudge, Judge, JudgeError, Verdict, judge_key, parse_guard_reply
from .http_judge import HttpJudge
from .keyword import KeywordRefusalJudge
from .model_judge import LLAMA_GUARD_3_CATEGORIES, ModelJudge, render_llama_guard_3

__all__ = [
    "BaseJudge", "HttpJudge", "Judge", "JudgeError", "KeywordRefusalJudge", "LLAMA_GUARD_3_CATEGORIES",
    "ModelJudge", "Verdict", "agreement_summary", "cohens_kappa", "disagreements", "judge_key", "make_judge",
    "parse_guard_reply", "render_llama_guard_3",
]

JUDGE_KINDS = {"keyword": KeywordRefusalJudge, "model": ModelJudge, "http": HttpJudge}


def make_judge(spec: dict[str, Any]) -> BaseJudge:
    """A judge from a plan entry, e.g. ``{"kind": "model", "path": "...", "model_kind": "guard"}``.

    ``kind`` picks the adapter (keyword, model, http); for ``model`` the
    model's own ``kind`` (guard or classifier) is given as ``model_kind``.
    Every other key is passed to the adapter unchanged, so a typo fails loudly.
    """
    spec = dict(spec)
    kind = spec.pop("kind", "keyword")
    if kind not in JUDGE_KINDS:
        raise JudgeError(f"judge.kind: unknown judge {kind!r} (known: {', '.join(JUDGE_KINDS)})")
    if kind == "model" and "model_kind" in spec:
        spec["kind"] = spec.pop("model_kind")
    try:
        return JUDGE_KINDS[kind](**spec)
    except TypeError as exc:
        raise JudgeError(f"judge ({kind}): {exc}") from None
