"""Statistics beyond a single rate: seeds, paired deltas and McNemar's test.

Safety scores move with seeds and judges, so a bare number is not evidence.
Here are the three tools the packs and the gate need on top of the Wilson
interval (``metrics.wilson_interval``, re-exported):

* ``seed_summary`` – spread of a score over sampled-decoding seeds;
* ``paired_bootstrap_delta`` – tuned minus base on the same items, with a
  percentile bootstrap 95% interval (items resampled in pairs, so the
  interval reflects the per-item correlation between the two models);
* ``mcnemar`` – whether refusals changed, from the discordant pairs only.

No scipy: the chi-square(1) tail is ``erfc(sqrt(x / 2))`` and the exact test
sums binomial terms with integer arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .metrics import Z95, wilson_interval

__all__ = ["BootstrapDelta", "Z95", "chi2_sf_1df", "mcnemar", "paired_bootstrap_delta", "seed_summary",
           "wilson_interval"]

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
) -> BootstrapDelta:
    """Tuned minus base with a paired percentile bootstrap interval.

    Items are resampled with replacement, each keeping its (base, tuned)
    pair. The same seed gives the same interval: the resampling uses NumPy's
    PCG64 generator, whose stream NumPy keeps stable; record the NumPy
    version with the result all the same. Work is done in chunks of
    resamples so 10k resamples of thousands of items stay within a few MB.
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired lists differ in length: {len(base)} vs {len(tuned)}")
    if not base:
        raise ValueError("paired_bootstrap_delta needs at least one pair")
    if n_resamples < 1 or not 0 < confidence < 1:
        raise ValueError("n_resamples must be >= 1 and confidence in (0, 1)")
    diffs = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    n = diffs.size
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, 1_000_000 // n)  # about 8 MB of indices per chunk
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha], method="linear")
    return BootstrapDelta(float(diffs.mean()), float(lo), float(hi))


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


def mcnemar(base: Sequence[bool], tuned: Sequence[bool]) -> dict[str, float | int | str]:
    """McNemar's test for a change in a paired binary outcome (e.g. refused).

    ``b`` counts items True for base and False for tuned; ``c`` the reverse.
    Only these discordant pairs carry information about a change. When
    b + c < 25 the two-sided exact binomial test is used (the chi-square
    approximation is poor for few discordant pairs); otherwise the
    chi-square statistic with Edwards' continuity correction,
    (|b - c| - 1)^2 / (b + c), on 1 degree of freedom.
    For the exact test ``statistic`` is min(b, c), as statsmodels reports it.
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired lists differ in length: {len(base)} vs {len(tuned)}")
    b = sum(1 for x, y in zip(base, tuned) if x and not y)
    c = sum(1 for x, y in zip(base, tuned) if y and not x)
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
