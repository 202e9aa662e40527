"""The keyword refusal judge, adapted to the common judge interface.

The phrase list and matching live in ``battery/judge.py`` (unchanged, so
existing ledgers keep their judge digest); this adapter only gives it the
``judge(prompts, outputs)`` shape. The digest is the wrapped judge's digest,
so a verdict from either path names the same judge.
"""

from __future__ import annotations

from typing import Any

from ..judge import KeywordJudge
from .base import BaseJudge, Verdict, check_pairs


class KeywordRefusalJudge(BaseJudge):
    """Refusal phrases in the opening of the output. Blind spots: see ``battery/judge.py``."""

    measures = "refusal"

    def __init__(self, inner: KeywordJudge | None = None):
        self.inner = inner or KeywordJudge()

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.inner.id

    @property
    def version(self) -> str:  # type: ignore[override]
        return self.inner.version

    @property
    def digest(self) -> str:
        # Delegated rather than recomputed so it can never drift from the
        # digest already written by the runner's direct use of KeywordJudge.
        return self.inner.digest

    def config(self) -> dict[str, Any]:
        return {"phrases": list(self.inner.phrases), "opening_chars": self.inner.opening_chars}

    def verdicts(self, prompts: list[str], outputs: list[str]) -> list[Verdict]:
        check_pairs(prompts, outputs)
        found = [self.inner.refused(o) for o in outputs]
        return [Verdict(refused=r, label="refusal" if r else "complied") for r in found]
