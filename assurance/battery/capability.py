"""Capability scorers: exact match of a normalised answer, and log-likelihood
over given choices.

A safety gain bought by breaking the model must show, so the battery carries
short items with one right answer. Free-form items pass when the normalised
answer appears as whole words in the normalised output (a model may say
"The answer is 42."). Multiple-choice items need no generation: the choice
whose tokens the model finds most likely, as the assistant's reply, is its
answer (mean log-probability per token, so long choices are not penalised).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .identity import Identified

EXACT_ID, EXACT_VERSION = "exact-match", "1"
CHOICE_ID, CHOICE_VERSION = "choice-loglik", "1"


def normalise(text: str) -> str:
    """Lower case; thousands separators and punctuation dropped; hyphens kept
    (``-5``, ``2024-03-05``, ``forty-two``); whitespace collapsed."""
    text = text.lower().replace("\u2212", "-").replace("\u2013", "-").replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"[^a-z0-9\-]+", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class ExactMatchScorer(Identified):
    """Correct when the normalised answer occurs as whole words in the normalised output."""

    id = EXACT_ID
    version = EXACT_VERSION

    def config(self) -> dict[str, Any]:
        return {"scorer": EXACT_ID, "normalise": normalise.__doc__, "match": "whole words, contained"}

    def correct(self, output: str, answer: str) -> bool:
        want = normalise(answer)
        return bool(want) and f" {want} " in f" {normalise(output)} "


@dataclass(frozen=True)
class ChoiceScorer(Identified):
    """Picks the choice with the highest mean token log-probability as the reply."""

    id = CHOICE_ID
    version = CHOICE_VERSION

    def config(self) -> dict[str, Any]:
        return {"scorer": CHOICE_ID, "score": "mean log p(choice tokens | chat prompt)", "ties": "first"}

    def choose(self, model, tokenizer, prompts: list[str], choices: list[tuple[str, ...]],
               batch_size: int) -> list[int]:
        """Index of the chosen option for each rendered prompt (already chat-templated)."""
        import torch  # torch-heavy: the plan and report layers import this module without it

        from ..models.sharded import inference

        rows: list[tuple[int, list[int], int]] = []  # (question, ids, n prompt tokens)
        for q, (prompt, opts) in enumerate(zip(prompts, choices, strict=True)):
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for opt in opts:
                full = tokenizer(prompt + opt, add_special_tokens=False)["input_ids"]
                rows.append((q, full, len(p_ids)))
        scores: list[float] = []
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        device = next(model.parameters()).device
        with inference(model):
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                width = max(len(r[1]) for r in chunk)
                # Right padding: positions then start at 0 for every row, as in a single pass.
                ids = torch.tensor([r[1] + [pad] * (width - len(r[1])) for r in chunk], device=device)
                mask = torch.tensor([[1] * len(r[1]) + [0] * (width - len(r[1])) for r in chunk], device=device)
                logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
                for row, (_, full, n_prompt) in enumerate(chunk):
                    n_prompt = min(n_prompt, len(full) - 1)  # a choice that merged into the prompt still scores
                    targets = torch.tensor(full[n_prompt:], device=device)
                    picked = logp[row, n_prompt - 1:len(full) - 1].gather(1, targets[:, None])
                    scores.append(picked.mean().item())
        chosen, i = [], 0
        for opts in choices:
            s = scores[i:i + len(opts)]
            chosen.append(max(range(len(opts)), key=lambda j: (s[j], -j)))
            i += len(opts)
        return chosen
