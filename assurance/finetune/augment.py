"""Safety triplets and the deep-alignment augmentation (Qi et al., ICLR 2025).

A triplet is one JSONL row ``{"instruction", "harmful", "refusal"}``: a harmful
request, the start of a compliant (harmful) answer, and a refusal. Safety
alignment that is only "a few tokens deep" refuses at token 1 but complies once
a few harmful tokens are already in the assistant turn. The augmentation
teaches recovery: half the time the example is instruction -> refusal;
otherwise the first k tokens of the harmful answer are prefilled in the
assistant turn (k uniform in 1..min(100, len)) and the model learns to produce
the refusal that follows. The prefix is context, never a target: the loss falls
on the refusal tokens only.

Draws are a pure function of (seed, epoch, example index), so every epoch sees
fresh prefixes, two runs with one seed see the same ones, and a resumed run can
rebuild any epoch without saved generator state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeGuard

from pydantic import BaseModel, ConfigDict, StrictStr, field_validator

from assurance.finetune.chat_data import read_rows

IGNORE = -100


class Triplet(BaseModel):
    """One safety triplet. Extra keys (ids, categories) are tolerated and dropped."""

    model_config = ConfigDict(extra="ignore")

    instruction: StrictStr
    """The harmful request (the user turn)."""
    harmful: StrictStr
    """A compliant answer; only its first tokens are ever used, as a prefill."""
    refusal: StrictStr
    """The safe answer, the training target."""

    @field_validator("instruction", "harmful", "refusal")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a non-empty string")
        return v


def is_triplet(example: object) -> TypeGuard[dict]:
    return isinstance(example, dict) and "instruction" in example and "refusal" in example


def load_triplets(spec: str) -> list[dict]:
    """Read and validate a triplet JSONL file (a path or ``builtin:<name>``), in file order.

    Raises DataError naming the file and the 1-based line of the first bad row.
    """
    rows = read_rows(spec, Triplet, what="triplets", shape="'instruction', 'harmful' and 'refusal'")
    return [t.model_dump() for t in rows]


@dataclass
class TripletTokens:
    """A triplet tokenised once; each epoch only re-slices the harmful prefix."""

    prompt: list[int]
    """The user turn rendered with the generation prompt."""
    harmful: list[int]
    """The harmful answer's tokens (prefill source)."""
    answer: list[int]
    """The refusal as the template closes an assistant turn (refusal + end-of-turn)."""


def tokenize_triplet(tokenizer, t: dict) -> TripletTokens:
    conv = [{"role": "user", "content": t["instruction"]}, {"role": "assistant", "content": t["refusal"]}]
    full = tokenizer.apply_chat_template(conv, tokenize=False)
    prompt = tokenizer.apply_chat_template(conv[:1], add_generation_prompt=True, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template's generation prompt is not a prefix of the full conversation, "
                         "so the refusal tokens cannot be located for loss masking")
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    return TripletTokens(prompt=enc(prompt), harmful=enc(t["harmful"]), answer=enc(full[len(prompt):]))


def draw_prefix(seed: int, epoch: int, index: int, n_harmful: int, prefill_prob: float, max_prefix: int) -> int:
    """k, the harmful tokens to prefill for this example in this epoch (0: plain instruction -> refusal)."""
    # A string seed goes through SHA-512 in random.Random: stable across processes and Python runs.
    rng = random.Random(f"deep-alignment:{seed}:{epoch}:{index}")
    if n_harmful == 0 or rng.random() >= prefill_prob:
        return 0
    return rng.randint(1, min(max_prefix, n_harmful))


def assemble(tt: TripletTokens, k: int, max_length: int) -> tuple[list[int], list[int], int]:
    """(input_ids, labels, answer_start) with k harmful tokens prefilled; labels only on the refusal.

    answer_start is where the assistant turn begins (the prefill counts as part of
    the answer, so the constrained objective's positions are positions in the reply).
    """
    ids = tt.prompt + tt.harmful[:k] + tt.answer
    labels = [IGNORE] * (len(tt.prompt) + k) + tt.answer
    return ids[:max_length], labels[:max_length], len(tt.prompt)
