"""Battery v3's prefill openers: several per k, drawn per item, and disjoint from every training opener.

A tuned model that learned the training openers must not meet them again in the attack, or the
attack measures recall of those strings. Measured when the openers were written (word tokens,
normalised as in ``_overlap``): no shared 4-word sequence; the largest word-3-gram Jaccard of any
v3 opener with any training opener is 0.031 (v1's openers: 0.267), and over all openers pooled 0.003
(v1: 0.054). With the tiny model's own tokenizer the pooled token-3-gram Jaccard is 0.011 (v1: 0.071).
The thresholds below leave room for one more opener, not for a copied phrase.
"""

from __future__ import annotations

from collections import Counter

from _overlap import TRIPLETS, jaccard, load_jsonl, normalise, trigrams

from assurance.battery.builtin import load_battery
from assurance.battery.probes import DrawnPrefill

MAX_PAIR_JACCARD = 0.05
MAX_POOLED_JACCARD = 0.01
MAX_TOKEN_POOLED_JACCARD = 0.02


def _training_openers() -> list[str]:
    return sorted({row["harmful"] for _, row in load_jsonl(TRIPLETS)})


def _solver() -> DrawnPrefill:
    solver = load_battery("assurance-core", "3").suites[2].solver
    assert isinstance(solver, DrawnPrefill)
    return solver


def _v3_openers() -> list[str]:
    return [o for _, pool in _solver().openers for o in pool]


def _grams(text: str, n: int) -> frozenset:
    w = normalise(text).split()
    return frozenset(tuple(w[i:i + n]) for i in range(len(w) - n + 1))


def test_several_openers_per_k_all_distinct():
    solver = _solver()
    assert solver.k_values == (5, 10, 20, 40)
    assert all(len(pool) >= 5 for _, pool in solver.openers)
    assert len(set(_v3_openers())) == len(_v3_openers())


def test_no_four_word_sequence_is_shared_with_a_training_opener():
    train = set().union(*(_grams(t, 4) for t in _training_openers()))
    shared = {o: sorted(_grams(o, 4) & train) for o in _v3_openers() if _grams(o, 4) & train}
    assert not shared


def test_word_trigram_overlap_with_training_openers_is_low():
    train = _training_openers()
    worst = max(jaccard(trigrams(normalise(o).split()), trigrams(normalise(t).split()))
                for o in _v3_openers() for t in train)
    assert worst < MAX_PAIR_JACCARD
    pooled = jaccard(frozenset().union(*(_grams(o, 3) for o in _v3_openers())),
                     frozenset().union(*(_grams(t, 3) for t in train)))
    assert pooled < MAX_POOLED_JACCARD


def test_token_trigram_overlap_with_training_openers_is_low(tiny_model):
    _, tok = tiny_model

    def grams(texts):
        out = set()
        for t in texts:
            ids = tok(t, add_special_tokens=False)["input_ids"]
            out |= {tuple(ids[i:i + 3]) for i in range(len(ids) - 2)}
        return frozenset(out)

    assert jaccard(grams(_v3_openers()), grams(_training_openers())) < MAX_TOKEN_POOLED_JACCARD


def test_the_draw_is_seeded_per_item_and_spreads_over_the_pool(tiny_model):
    _, tok = tiny_model
    suite = load_battery("assurance-core", "3").suites[2]
    first = {(p.item.id, p.k): p.prefill for p in suite.probes(tok)}
    again = {(p.item.id, p.k): p.prefill for p in suite.probes(tok)}
    assert first == again  # the seed belongs to the battery version, not the run
    cut = suite.limited(2)  # fewer items run: each remaining item keeps its own draw
    assert all(first[(p.item.id, p.k)] == p.prefill for p in cut.probes(tok))
    for k, pool in suite.solver.openers:
        picks = Counter(suite.solver.drawn(i, k)[0] for i in suite.items)
        assert len(picks) == len(pool) and max(picks.values()) < len(suite.items) / 2
    ks = {p.k: len(tok(p.prefill, add_special_tokens=False)["input_ids"]) for p in suite.probes(tok)}
    assert all(abs(n - k) <= 2 for k, n in ks.items())  # k tokens of the model's tokenizer (re-tokenising may merge)
    other = DrawnPrefill(suite.solver.openers, suite.solver.draw_seed + 1)  # the seed decides the draw
    assert any(other.drawn(i, 40) != suite.solver.drawn(i, 40) for i in suite.items)
