"""Statistics beyond a single rate: seeds, paired deltas, McNemar's test, detectable differences.

Safety scores move with seeds and judges, so a bare number is not evidence.
Here are the tools the packs and the gate need on top of the Wilson
interval (``metrics.wilson_interval``, re-exported):

* ``seed_summary`` – spread of a score over sampled-decoding seeds;
* ``paired_bootstrap_delta`` – tuned minus base on the same items, with a
  percentile bootstrap 95% interval (items resampled in pairs, so the
  interval reflects the per-item correlation between the two models; with
  ``clusters``, all pairs of one item resampled together);
* ``mcnemar`` – whether refusals changed, from the discordant pairs only
  (per item when an item has several pairs);
* ``newcombe_difference`` – an interval for a difference of two rates from
  their own intervals, where no paired comparison was recorded;
* ``detectable_difference`` – the smallest distance from a threshold that
  n items can show with 80% power.

No scipy: the chi-square(1) tail is ``erfc(sqrt(x / 2))`` and the exact test
sums binomial terms with integer arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

from .metrics import Z95, wilson_interval

__all__ = ["BootstrapDelta", "Z95", "chi2_sf_1df", "detectable_difference", "mcnemar", "newcombe_difference",
           "paired_bootstrap_delta", "seed_summary", "wilson_interval"]

EXACT_BELOW = 25
"""McNemar uses the exact binomial test when the discordant count b + c is below this."""


def seed_summary(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample standard deviation (n - 1), min and max of one score over n seeds.

    With one seed the spread is unknown; ``sd`` is then 0.0 and ``n`` = 1
    says why (NaN would not survive canonical JSON).
    """
    if not values:
        raise ValueError("seed_summary needs at least one value")
    xs = [float(v) for v in values]
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(xs), "max": max(xs), "n": n}


class BootstrapDelta(NamedTuple):
    delta: float
    """mean(tuned) - mean(base) over the paired items."""
    lo: float
    """Lower bound of the percentile interval."""
    hi: float
    """Upper bound of the percentile interval."""


def paired_bootstrap_delta(
    base: Sequence[bool | float],
    tuned: Sequence[bool | float],
    n_resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    clusters: Sequence[Hashable] | None = None,
) -> BootstrapDelta:
    """Tuned minus base with a paired percentile bootstrap interval.

    Items are resampled with replacement, each keeping its (base, tuned)
    pair. With ``clusters`` (one label per pair, e.g. the item id when an
    item was attacked at several prefill k) whole clusters are resampled,
    each with all its pairs, and a resample's delta is the sum of its
    pairs' differences over their count: a cluster bootstrap, which does not
    count an item's correlated variants as independent evidence. Without
    ``clusters`` every pair is its own cluster, which gives exactly the same
    numbers as resampling pairs. The same seed gives the same interval: the
    resampling uses NumPy's PCG64 generator, whose stream NumPy keeps stable;
    record the NumPy version with the result all the same. Work is done in
    chunks of resamples so 10k resamples of thousands of items stay within a
    few MB.
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired lists differ in length: {len(base)} vs {len(tuned)}")
    if not base:
        raise ValueError("paired_bootstrap_delta needs at least one pair")
    if n_resamples < 1 or not 0 < confidence < 1:
        raise ValueError("n_resamples must be >= 1 and confidence in (0, 1)")
    diffs = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    sums, sizes = diffs, np.ones_like(diffs)
    if clusters is not None:
        if len(clusters) != len(base):
            raise ValueError(f"clusters has {len(clusters)} labels for {len(base)} pairs")
        index = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
        codes = np.fromiter((index[c] for c in clusters), dtype=np.intp, count=len(clusters))
        sums = np.bincount(codes, weights=diffs).astype(np.float64, copy=False)  # float already; the stub says int
        sizes = np.bincount(codes).astype(np.float64)
    m = sums.size
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, 1_000_000 // m)  # about 8 MB of indices per chunk
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        means[start:stop] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha], method="linear")
    return BootstrapDelta(float(diffs.mean()), float(lo), float(hi))


def newcombe_difference(rate_a: tuple[float, float, float], rate_b: tuple[float, float, float]
                        ) -> BootstrapDelta:
    """b minus a, with Newcombe's hybrid score interval (Newcombe 1998, method 10) built from each rate's
    own ``(value, lo, hi)`` interval: ``lo = d - sqrt((b - lo_b)^2 + (hi_a - a)^2)``,
    ``hi = d + sqrt((hi_b - b)^2 + (a - lo_a)^2)``.

    It treats the two rates as independent samples. On the same items the two stages' outcomes are
    usually positively correlated, and then the paired interval is narrower: this one is the
    conservative choice where no paired comparison was recorded. Any interval for each rate will do
    (Wilson's, or a clustered one, whose width then carries over).
    """
    (a, lo_a, hi_a), (b, lo_b, hi_b) = rate_a, rate_b
    d = b - a
    lo = d - math.sqrt((b - lo_b) ** 2 + (hi_a - a) ** 2)
    hi = d + math.sqrt((hi_b - b) ** 2 + (a - lo_a) ** 2)
    return BootstrapDelta(d, max(-1.0, lo), min(1.0, hi))


Z80 = 0.8416212335729143
"""The standard normal quantile at 0.80 (80% power)."""


def detectable_difference(n: int, threshold: float, z_alpha: float = Z95, z_power: float = Z80) -> float | None:
    """The smallest distance d from ``threshold`` at which a true rate is shown to be on its side with 80%
    power by n independent items, at the two-sided 5% level of the 95% intervals the gate uses.

    A true rate p1 = p0 +/- d is told apart from p0 = ``threshold`` with that power when
    ``sqrt(n) * d >= z_alpha * sqrt(p0 (1 - p0)) + z_power * sqrt(p1 (1 - p1))`` (the normal
    approximation to the one-sample test of a proportion against p0, variance under p0 for the test and
    under p1 for the power). Both directions are solved (by bisection) and the larger d is returned, so
    that n can show either a pass or a fail at that distance; a direction that would need a true rate
    outside [0, 1] is left out. None when neither direction can be shown (n too small, or n = 0).
    """
    if n <= 0:
        return None
    p0 = threshold
    root_n = math.sqrt(n)

    def short(d: float, sign: int) -> bool:  # does distance d fall short of what n can show?
        p1 = p0 + sign * d
        return root_n * d < z_alpha * math.sqrt(p0 * (1 - p0)) + z_power * math.sqrt(max(0.0, p1 * (1 - p1)))

    found = []
    for sign, room in ((1, 1 - p0), (-1, p0)):
        if room <= 0 or short(room, sign):
            continue
        lo, hi = 0.0, room
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if short(mid, sign) else (lo, mid)
        found.append(hi)
    return max(found) if found else None


def chi2_sf_1df(x: float) -> float:
    """P(X >= x) for X ~ chi-square with 1 degree of freedom.

    X is Z^2 for a standard normal Z, so P(X >= x) = P(|Z| >= sqrt(x))
    = erfc(sqrt(x / 2)).
    """
    if x <= 0:
        return 1.0
    return math.erfc(math.sqrt(x / 2))


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exactly in integers then divided once."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def mcnemar(base: Sequence[bool], tuned: Sequence[bool],
            clusters: Sequence[Hashable] | None = None) -> dict[str, float | int | str]:
    """McNemar's test for a change in a paired binary outcome (e.g. refused).

    ``b`` counts items True for base and False for tuned; ``c`` the reverse.
    Only these discordant pairs carry information about a change. When
    b + c < 25 the two-sided exact binomial test is used (the chi-square
    approximation is poor for few discordant pairs); otherwise the
    chi-square statistic with Edwards' continuity correction,
    (|b - c| - 1)^2 / (b + c), on 1 degree of freedom.
    For the exact test ``statistic`` is min(b, c), as statsmodels reports it.

    With ``clusters`` (one label per pair) in which some item has several
    pairs, the pairs are not independent and the test is taken over items:
    per item, d = b_i - c_i. With fewer than 25 items whose d is not 0, the
    exact two-sided sign test on the signs of d (``statistic``: the smaller
    count); otherwise the clustered chi-square of Durkalski et al. (2003),
    (sum d)^2 / sum d^2 on 1 degree of freedom. ``b`` and ``c`` stay totals.
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired lists differ in length: {len(base)} vs {len(tuned)}")
    b = sum(1 for x, y in zip(base, tuned, strict=True) if x and not y)
    c = sum(1 for x, y in zip(base, tuned, strict=True) if y and not x)
    if clusters is not None:
        if len(clusters) != len(base):
            raise ValueError(f"clusters has {len(clusters)} labels for {len(base)} pairs")
        if len(set(clusters)) < len(clusters):
            return {"b": b, "c": c, **_clustered_mcnemar(base, tuned, clusters)}
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact-binomial"}
    if n < EXACT_BELOW:
        k = min(b, c)
        p = min(1.0, 2 * _binom_cdf_half(k, n))
        return {"b": b, "c": c, "statistic": float(k), "p_value": p, "method": "exact-binomial"}
    stat = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "statistic": stat, "p_value": chi2_sf_1df(stat),
            "method": "chi-square-continuity-corrected"}


def _clustered_mcnemar(base: Sequence[bool], tuned: Sequence[bool],
                       clusters: Sequence[Hashable]) -> dict[str, float | str]:
    d: dict[Hashable, int] = {}
    for x, y, item in zip(base, tuned, clusters, strict=True):
        d[item] = d.get(item, 0) + (bool(x) and not y) - (bool(y) and not x)
    moved = [v for v in d.values() if v]
    if len(moved) < EXACT_BELOW:
        up = sum(1 for v in moved if v > 0)
        k = min(up, len(moved) - up)
        p = min(1.0, 2 * _binom_cdf_half(k, len(moved))) if moved else 1.0
        return {"statistic": float(k), "p_value": p, "method": "clustered-exact-sign"}
    stat = sum(moved) ** 2 / sum(v * v for v in moved)
    return {"statistic": float(stat), "p_value": chi2_sf_1df(stat), "method": "clustered-chi-square"}
