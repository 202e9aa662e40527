"""From training examples to padded micro-batches, deterministically.

Examples are tokenised once. Each epoch, triplets are re-drawn (deep-alignment
prefixes), the examples are shuffled with a generator seeded by (seed, epoch),
and with length bucketing, examples are sorted by length inside windows of a few
dozen batches so each micro-batch holds similar lengths (little padding, no
packing, so no attention between examples); the batch order is then shuffled
again. Because an epoch is a pure function of (seed, epoch), the data position
in a checkpoint is just a count of micro-batches consumed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch

from assurance.finetune.augment import TripletTokens, assemble, draw_prefix, is_triplet, tokenize_triplet

IGNORE = -100
BUCKET_WINDOW = 32  # micro-batches per sorting window: enough to group lengths, small enough to stay random


@dataclass
class Seq:
    """One training sequence as the model sees it in one epoch."""

    ids: list[int]
    labels: list[int]
    start: int
    """Index of the first assistant-turn token (answer position 1)."""
    key: tuple[int, int]
    """(example index, prefilled tokens): identifies the exact token sequence, for reference log-probs."""
    safety: bool


def encode(tokenizer, conv: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one conversation; labels are -100 on the prompt.

    Prompt and answer are tokenised separately and joined, so the boundary never
    falls inside a merged BPE token, and the prompt tokens match what the model
    sees at generation time (the prompt rendered with add_generation_prompt).
    """
    full = tokenizer.apply_chat_template(conv, tokenize=False)
    prompt = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template's generation prompt is not a prefix of the full conversation, "
            "so the answer tokens cannot be located for loss masking.\n"
            f"  prompt ends: {prompt[-80:]!r}\n  full text:   {full[len(prompt) - 80:len(prompt) + 20]!r}"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
    return ids, labels


def supervised(labels: list[int]) -> int:
    # labels[0] is never predicted (nothing precedes it), matching the shifted loss
    return sum(1 for y in labels[1:] if y != IGNORE)


class Batch(TypedDict):
    """One padded micro-batch, as ``collate`` builds it."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None
    start: torch.Tensor
    n_tokens: int


def collate(rows: list[Seq], pad_id: int) -> Batch:
    """Right-pad a micro-batch; padding gets label -100 and attention mask 0.

    ``attention_mask`` is None when nothing is padded (bucketing makes that common),
    which lets attention take its plain causal path.
    """
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    start = torch.tensor([r.start for r in rows], dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = torch.tensor(r.ids)
        labels[i, : len(r.labels)] = torch.tensor(r.labels)
        mask[i, : len(r.ids)] = 1
    n_real = int(mask.sum())
    return {"input_ids": ids, "labels": labels, "attention_mask": None if n_real == mask.numel() else mask,
            "start": start, "n_tokens": n_real}


class Examples:
    """The training set, tokenised once; ``epoch(e)`` gives that epoch's sequences."""

    def __init__(self, tokenizer, examples: Sequence[tuple[str, object]], max_length: int, *, seed: int,
                 augment: bool, prefill_prob: float = 0.5, max_prefix: int = 100):
        self.seed, self.augment = seed, augment
        self.prefill_prob, self.max_prefix, self.max_length = prefill_prob, max_prefix, max_length
        self.items: list[tuple[bool, TripletTokens | tuple[list[int], list[int], int]]] = []
        self.dropped = 0
        for source, ex in examples:
            if is_triplet(ex):
                tt = tokenize_triplet(tokenizer, ex)
                if len(tt.prompt) + 1 >= max_length:  # no refusal token would survive truncation
                    self.dropped += 1
                    continue
                self.items.append((source == "safety", tt))
            else:
                assert isinstance(ex, list), "an example is a safety triplet or a chat conversation"
                ids, labels = encode(tokenizer, ex, max_length)
                if supervised(labels) == 0:  # the answer was truncated away: no signal
                    self.dropped += 1
                    continue
                start = next(i for i, y in enumerate(labels) if y != IGNORE)
                self.items.append((source == "safety", (ids, labels, start)))
        self.n_triplets = sum(isinstance(x, TripletTokens) for _, x in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def epoch(self, e: int) -> list[Seq]:
        out = []
        for i, (safety, x) in enumerate(self.items):
            if isinstance(x, TripletTokens):
                k = draw_prefix(self.seed, e, i, len(x.harmful), self.prefill_prob, self.max_prefix) \
                    if self.augment else 0
                ids, labels, start = assemble(x, k, self.max_length)
                if supervised(labels) == 0:  # a long prefix pushed the refusal past max_length
                    k = 0
                    ids, labels, start = assemble(x, 0, self.max_length)
                out.append(Seq(ids, labels, start, (i, k), safety))
            else:
                ids, labels, start = x
                out.append(Seq(ids, labels, start, (i, 0), safety))
        return out


def _generator(seed: int, epoch: int) -> torch.Generator:
    digest = hashlib.sha256(f"batches:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def epoch_batches(seqs: list[Seq], batch_size: int, seed: int, epoch: int, bucket: bool) -> list[list[int]]:
    """Micro-batches (lists of indices into ``seqs``) for one epoch."""
    g = _generator(seed, epoch)
    order = torch.randperm(len(seqs), generator=g).tolist()
    if not bucket:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    window = batch_size * BUCKET_WINDOW
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: len(seqs[i].ids))  # stable: ties keep random order
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]


def stream(data: Examples, batch_size: int, seed: int, bucket: bool) -> Iterator[tuple[int, int, list[Seq]]]:
    """Endless (epoch, micro-batch index, sequences), epoch after epoch."""
    for e in itertools.count():
        seqs = data.epoch(e)
        for j, b in enumerate(epoch_batches(seqs, batch_size, seed, e, bucket)):
            yield e, j, [seqs[i] for i in b]
