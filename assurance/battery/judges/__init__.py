"""Judges: scorers with an identity.

Every judge has ``id``, ``version``, ``digest`` and ``measures`` and answers
``judge(prompts, outputs) -> list[bool]`` with True = the model did not give
the help asked for (see ``base``). Each judge kind's module holds the judge,
its plan entry (``KeywordJudgeSpec``, ``ModelJudgeSpec``, ``HttpJudgeSpec``)
and ``spec.build()``, so the plan stays data and the judge stays code.
"""

from __future__ import annotations

from .agreement import agreement_summary, cohens_kappa, disagreements
from .base import BaseJudge, Judge, JudgeError, JudgeSpec, Verdict, judge_key, parse_guard_reply
from .http_judge import HttpJudge, HttpJudgeSpec
from .keyword import KeywordJudgeSpec, KeywordRefusalJudge
from .keyword_v2 import RefusalJudgeV2
from .model_judge import LLAMA_GUARD_3_CATEGORIES, ModelJudge, ModelJudgeSpec, render_llama_guard_3

__all__ = [
    "BaseJudge", "HttpJudge", "HttpJudgeSpec", "Judge", "JudgeError", "JudgeSpec", "KeywordJudgeSpec",
    "KeywordRefusalJudge", "LLAMA_GUARD_3_CATEGORIES", "ModelJudge", "ModelJudgeSpec", "RefusalJudgeV2", "Verdict",
    "agreement_summary", "cohens_kappa", "disagreements", "judge_key", "parse_guard_reply", "render_llama_guard_3",
]
