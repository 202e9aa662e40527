"""Solvers: how a suite turns its items into probes (the messages actually sent).

A probe is one item under one variant: plain, prefilled with k tokens of a
compliant opener, or wrapped in a jailbreak template. Solvers are plain data
(their ``settings`` go into the suite digest) so a battery version pins every
opener and template byte for byte. Openers and templates are content-free:
they reframe a request, they never add operational detail.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .items import Item


@dataclass(frozen=True)
class Probe:
    """One generation (or choice scoring) the runner performs."""

    suite: str
    item: Item
    prompt: str
    """The user message as sent (the item's prompt, possibly wrapped)."""
    variant: str | None = None
    """``prefill-k10``, ``jailbreak:roleplay``...; None for the plain item."""
    prefill: str | None = None
    """Text placed at the start of the assistant turn; the model continues it."""
    k: int | None = None
    """Prefill length in tokens of the model's tokenizer."""

    @property
    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class Plain:
    """Send each item's prompt as it is."""

    @property
    def settings(self) -> dict:
        return {"solver": "plain"}

    @property
    def n_variants(self) -> int:
        return 1

    def probes(self, suite: str, items: Iterable[Item], tokenizer=None) -> list[Probe]:
        return [Probe(suite, item, item.prompt) for item in items]


@dataclass(frozen=True)
class Prefill:
    """Prefilling attack (Qi et al., ICLR 2025): k tokens of a compliant opener
    already in the assistant turn. Safety that is only "a few tokens deep"
    fails as k grows."""

    openers: tuple[str, ...]
    k_values: tuple[int, ...]

    @property
    def settings(self) -> dict:
        return {"solver": "prefill", "openers": list(self.openers), "k_values": list(self.k_values)}

    @property
    def n_variants(self) -> int:
        return len(self.k_values)

    def probes(self, suite: str, items: Iterable[Item], tokenizer=None) -> list[Probe]:
        _need_tokenizer(tokenizer)
        cuts = {k: prefill_text(tokenizer, self.openers, k) for k in self.k_values}
        return _prefill_probes(suite, items, self.k_values, lambda item, k: cuts[k])


@dataclass(frozen=True)
class DrawnPrefill:
    """Prefilling attack with several openers per k, one drawn per item (battery v3 on).

    One opener for every item lets a tuned model learn that one string; here
    each (item, k) draws its own opener from that k's pool with a generator
    seeded by the battery version's ``draw_seed``, the item id and k, so the
    draw never depends on which other items run (limits, suite selection).
    """

    openers: tuple[tuple[int, tuple[str, ...]], ...]
    """(k, that k's opener pool) pairs, in increasing k."""
    draw_seed: int
    """Belongs to the battery version: every run of a version prefills the same text."""

    @property
    def k_values(self) -> tuple[int, ...]:
        return tuple(k for k, _ in self.openers)

    @property
    def settings(self) -> dict:
        return {"solver": "prefill-drawn", "openers": {str(k): list(pool) for k, pool in self.openers},
                "k_values": list(self.k_values), "draw_seed": self.draw_seed}

    @property
    def n_variants(self) -> int:
        return len(self.openers)

    def drawn(self, item: Item, k: int) -> tuple[str, ...]:
        """The pool of ``k`` starting at the opener drawn for ``item`` (the rest follow, for cycling)."""
        pool = dict(self.openers)[k]
        start = random.Random(f"{self.draw_seed}|{item.id}|{k}").randrange(len(pool))
        return pool[start:] + pool[:start]

    def probes(self, suite: str, items: Iterable[Item], tokenizer=None) -> list[Probe]:
        _need_tokenizer(tokenizer)
        return _prefill_probes(suite, items, self.k_values,
                               lambda item, k: prefill_text(tokenizer, self.drawn(item, k), k))


@dataclass(frozen=True)
class ResponsePrefill:
    """Prefilling attack as Qi et al. (ICLR 2025) run it: each item's own harmful response, cut at k tokens.

    The responses come from the user's file (``prefill_source.py``) and are
    never part of the settings: the file's name and digest are, so the suite
    digest pins every response byte without copying harmful text into records.
    A response shorter than k tokens is prefilled whole.
    """

    responses: tuple[tuple[str, str], ...]
    """(item id, that item's response) pairs."""
    k_values: tuple[int, ...]
    source: tuple[tuple[str, str], ...]
    """The file the responses came from: (``file``, name), (``digest``, SHA-256), (``format``, ...)."""

    @property
    def settings(self) -> dict:
        return {"solver": "prefill-responses", "k_values": list(self.k_values), "source": dict(self.source)}

    @property
    def n_variants(self) -> int:
        return len(self.k_values)

    def probes(self, suite: str, items: Iterable[Item], tokenizer=None) -> list[Probe]:
        _need_tokenizer(tokenizer)
        own = dict(self.responses)
        return _prefill_probes(suite, items, self.k_values, lambda item, k: first_tokens(tokenizer, own[item.id], k))


def _need_tokenizer(tokenizer) -> None:
    if tokenizer is None:
        raise ValueError("the prefill solver needs the model's tokenizer to count tokens")


def _prefill_probes(suite: str, items: Iterable[Item], k_values: tuple[int, ...],
                    text: Callable[[Item, int], str]) -> list[Probe]:
    """One probe per (k, item), k-major, prefilled with ``text(item, k)``; the prefill solvers share it."""
    items = list(items)
    return [Probe(suite, item, item.prompt, f"prefill-k{k}", text(item, k), k) for k in k_values for item in items]


def first_tokens(tokenizer, text: str, k: int) -> str:
    """The first ``k`` tokens of ``text`` in the model's tokenizer (all of it when shorter)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:k])


def prefill_text(tokenizer, openers: tuple[str, ...], k: int) -> str:
    """The first ``k`` tokens of the openers, joined and repeated as needed.

    Counting in the model's own tokens is what makes k comparable with the
    paper's curve; the openers are cycled (never invented) when one is too short.
    """
    if k < 1 or not openers:
        raise ValueError("k must be >= 1 and there must be at least one opener")
    text, i = "", 0
    ids: list[int] = []
    while len(ids) < k:
        text = (text + " " if text else "") + openers[i % len(openers)]
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        i += 1
    return tokenizer.decode(ids[:k])


LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7",
                      "A": "4", "E": "3", "I": "1", "O": "0", "S": "5", "T": "7"})


def wrap(template: str, request: str) -> str:
    """Apply a jailbreak template; it may use the request as text, base64 or leetspeak."""
    return template.format(
        request=request,
        request_b64=base64.b64encode(request.encode("utf-8")).decode("ascii"),
        request_leet=request.translate(LEET),
    )


@dataclass(frozen=True)
class Jailbreak:
    """Wrap each request in every template (role-play, override, base64...)."""

    templates: tuple[tuple[str, str], ...]
    """(name, template) pairs, in a fixed order."""

    @property
    def settings(self) -> dict:
        return {"solver": "jailbreak", "templates": dict(self.templates)}

    @property
    def n_variants(self) -> int:
        return len(self.templates)

    def probes(self, suite: str, items: Iterable[Item], tokenizer=None) -> list[Probe]:
        items = list(items)
        return [Probe(suite, item, wrap(template, item.prompt), f"jailbreak:{name}")
                for name, template in self.templates for item in items]


def sample_per_category(items: Iterable[Item], per_category: int, seed: int) -> tuple[Item, ...]:
    """A fixed, seeded sample of ``per_category`` items from each category, in battery order.

    The seed belongs to the battery version (not the run), so every run of a
    version attacks the same requests.
    """
    by_cat: dict[str, list[Item]] = {}
    for item in items:
        by_cat.setdefault(item.category, []).append(item)
    rng = random.Random(seed)
    chosen: set[str] = set()
    for cat in sorted(by_cat):  # sorted: the sample must not depend on dict order
        group = by_cat[cat]
        chosen.update(i.id for i in rng.sample(group, min(per_category, len(group))))
    return tuple(i for i in items_in_order(by_cat) if i.id in chosen)


def items_in_order(by_cat: dict[str, list[Item]]) -> list[Item]:
    return [i for group in by_cat.values() for i in group]
