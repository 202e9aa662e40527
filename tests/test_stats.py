"""Statistics: seed spread, paired bootstrap, McNemar, against hand-computed values."""

from __future__ import annotations

import math
import time

import pytest

from assurance.battery.stats import (
    BootstrapDelta,
    chi2_sf_1df,
    mcnemar,
    newcombe_difference,
    paired_bootstrap_delta,
    seed_summary,
    wilson_interval,
)


def test_seed_summary_hand_computed():
    s = seed_summary([0.5, 0.7, 0.6])
    assert s["n"] == 3 and s["min"] == 0.5 and s["max"] == 0.7
    assert s["mean"] == pytest.approx(0.6)
    assert s["sd"] == pytest.approx(0.1)  # sample sd: sqrt((0.01 + 0.01 + 0) / 2)
    assert seed_summary([0.42]) == {"mean": 0.42, "sd": 0.0, "min": 0.42, "max": 0.42, "n": 1}
    with pytest.raises(ValueError):
        seed_summary([])


def test_wilson_is_reexported():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)


def test_chi2_sf_matches_textbook_critical_values():
    assert chi2_sf_1df(3.841458820694124) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf_1df(6.634896601021214) == pytest.approx(0.01, rel=1e-9)
    assert chi2_sf_1df(10.827566170662733) == pytest.approx(0.001, rel=1e-8)
    assert chi2_sf_1df(0.0) == 1.0


def _pairs(b: int, c: int, both: int = 3, neither: int = 2) -> tuple[list[bool], list[bool]]:
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    tuned = [False] * b + [True] * c + [True] * both + [False] * neither
    return base, tuned


def test_mcnemar_exact_hand_computed():
    # b + c = 20 < 25: two-sided exact binomial, 2 * P(X <= 5), X ~ Bin(20, 1/2)
    # = 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2^20 = 43400 / 1048576.
    r = mcnemar(*_pairs(5, 15))
    assert (r["b"], r["c"], r["method"], r["statistic"]) == (5, 15, "exact-binomial", 5.0)
    assert r["p_value"] == pytest.approx(43400 / 1048576, rel=1e-12)
    # b=1, c=9: 2 * (1 + 10) / 1024.
    assert mcnemar(*_pairs(1, 9))["p_value"] == pytest.approx(22 / 1024, rel=1e-12)
    # Symmetric discordance: p is capped at 1.
    assert mcnemar(*_pairs(4, 4))["p_value"] == 1.0
    assert mcnemar(*_pairs(0, 0)) == {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact-binomial"}


def _normal_two_sided_tail(z: float) -> float:
    """2 * P(Z >= z) by Simpson's rule on the normal density: independent of erfc."""
    upper, steps = z + 12.0, 20000
    h = (upper - z) / steps
    f = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    total = f(z) + f(upper) + sum((4 if k % 2 else 2) * f(z + k * h) for k in range(1, steps))
    return 2 * total * h / 3


def test_mcnemar_chi_square_textbook():
    # Agresti (Categorical Data Analysis), presidential approval: b = 150, c = 86.
    r = mcnemar(*_pairs(150, 86))
    assert r["method"] == "chi-square-continuity-corrected"
    assert r["statistic"] == pytest.approx((64 - 1) ** 2 / 236)  # 16.818
    assert r["p_value"] == pytest.approx(_normal_two_sided_tail(math.sqrt(r["statistic"])), rel=1e-6)
    assert 4.0e-5 < r["p_value"] < 4.2e-5


def test_mcnemar_switches_method_at_25():
    assert mcnemar(*_pairs(12, 12))["method"] == "exact-binomial"  # b + c = 24
    r = mcnemar(*_pairs(5, 20))  # b + c = 25
    assert r["method"] == "chi-square-continuity-corrected"
    assert r["statistic"] == pytest.approx(14 ** 2 / 25)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_bootstrap_constant_difference_has_zero_width():
    base = [False] * 10 + [True] * 10
    tuned = [True] * 20
    r = paired_bootstrap_delta(base, tuned, n_resamples=200)
    assert isinstance(r, BootstrapDelta)
    # Every base/tuned pair differs by 1 or 0; the delta is their mean.
    assert r.delta == pytest.approx(0.5)
    assert paired_bootstrap_delta([0.2] * 7, [0.5] * 7, n_resamples=50) == pytest.approx((0.3, 0.3, 0.3))


def test_bootstrap_is_deterministic_fast_and_sensible():
    import random

    rng = random.Random(7)
    base = [rng.random() < 0.3 for _ in range(500)]
    tuned = [b or rng.random() < 0.4 for b in base]
    start = time.perf_counter()
    r1 = paired_bootstrap_delta(base, tuned, n_resamples=10_000, seed=0)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"10k resamples of 500 items took {elapsed:.2f}s"
    assert paired_bootstrap_delta(base, tuned, n_resamples=10_000, seed=0) == r1
    assert paired_bootstrap_delta(base, tuned, n_resamples=10_000, seed=1) != r1
    delta = sum(tuned) / 500 - sum(base) / 500
    assert r1.delta == pytest.approx(delta)
    assert r1.lo < delta < r1.hi
    # Against the normal approximation of the paired difference: delta +- 1.96 sd / sqrt(n).
    d = [int(t) - int(b) for b, t in zip(base, tuned, strict=True)]
    sd = math.sqrt(sum((x - delta) ** 2 for x in d) / (len(d) - 1))
    half = 1.959964 * sd / math.sqrt(len(d))
    assert r1.lo == pytest.approx(delta - half, abs=0.01)
    assert r1.hi == pytest.approx(delta + half, abs=0.01)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        paired_bootstrap_delta([True], [True, False])
    with pytest.raises(ValueError):
        paired_bootstrap_delta([], [])


def test_clusters_of_one_pair_change_nothing():
    import random

    rng = random.Random(3)
    base = [rng.random() < 0.3 for _ in range(200)]
    tuned = [rng.random() < 0.5 for _ in range(200)]
    ids = [f"item-{i}" for i in range(200)]
    assert paired_bootstrap_delta(base, tuned, n_resamples=500, clusters=ids) == \
        paired_bootstrap_delta(base, tuned, n_resamples=500)
    assert mcnemar(base, tuned, clusters=ids) == mcnemar(base, tuned)
    with pytest.raises(ValueError):
        paired_bootstrap_delta(base, tuned, clusters=ids[:-1])


def test_clustered_mcnemar_hand_computed():
    # 30 items of two pairs each; 20 items moved both pairs to the event, 10 moved one pair away from it.
    base = [False, False] * 20 + [True, False] * 10
    tuned = [True, True] * 20 + [False, False] * 10
    items = [i // 2 for i in range(60)]
    t = mcnemar(base, tuned, clusters=items)
    # Per item d = b_i - c_i: -2 for twenty items, +1 for ten. Durkalski: (sum d)^2 / sum d^2 = 900 / 90.
    assert (t["b"], t["c"], t["method"]) == (10, 40, "clustered-chi-square")
    assert t["statistic"] == pytest.approx(10.0) and t["p_value"] == pytest.approx(chi2_sf_1df(10.0))


def test_newcombe_difference_hand_computed():
    # Newcombe (1998), example (a) of the unpaired table: 56/70 against 48/80, method 10: [0.0524, 0.3339].
    a, b = wilson_interval(48, 80), wilson_interval(56, 70)
    d = newcombe_difference((48 / 80, *a), (56 / 70, *b))
    assert d.delta == pytest.approx(0.2) and d.lo == pytest.approx(0.0524, abs=1e-4)
    assert d.hi == pytest.approx(0.3339, abs=1e-4)
