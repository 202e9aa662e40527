"""Rates with Wilson score intervals, per suite, variant and category.

Wilson's interval keeps sensible bounds at 0% and 100% and with the small
per-category counts a battery has, where the normal approximation does not.
Paired base-vs-tuned statistics (bootstrap, McNemar) live in ``stats.py``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from ..evidence.records import MetricRecord, SampleRecord, Stage
from .scorers import SCORERS
from .suites import Scoring

Z95 = 1.959963984540054


def is_greedy(m: MetricRecord) -> bool:
    """A figure of the greedy pass (not one seed's sampled pass, nor a mean over seeds)."""
    return m.decoding == "greedy" and m.seed is None


def is_main(m: MetricRecord, suite: str = "refusal") -> bool:
    """A headline figure of ``suite``: greedy, no attack variant. The gate and the main tables read
    only these, so attack variants, sampled passes and extra benchmark suites (which reuse the same
    metric names) never mix into them. Records written before suites existed default to exactly
    this (suite ``refusal``, greedy, no variant), so old runs keep their tables."""
    return m.suite == suite and is_greedy(m) and m.variant is None


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 and n the bounds are exactly 0 and 1; the formula gives them only up
    # to rounding (1e-17, 0.9999999999999999), which would put the rate itself
    # outside its own interval.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


# --- rates from judged samples ------------------------------------------------

_Key = tuple  # (suite, name, variant, k, category)


def _counts(samples: list[SampleRecord], scoring: Mapping[str, Scoring]) -> dict[_Key, list[bool]]:
    groups: dict[_Key, list[bool]] = {}
    for s in samples:
        if s.suite not in scoring:
            raise ValueError(f"sample of suite {s.suite!r}, which is not among the suites scored: {sorted(scoring)}")
        for name, event in SCORERS[scoring[s.suite]].events(s):
            keys = [(s.suite, name, s.variant, s.k, s.category), (s.suite, name, s.variant, s.k, "overall")]
            if s.variant is not None:  # every variant of an attack suite together
                keys.append((s.suite, name, None, None, "overall"))
            for key in keys:
                groups.setdefault(key, []).append(event)
    return groups


def _record(stage: Stage, key: _Key, k_: int, n: int, **extra) -> MetricRecord:
    suite, name, variant, k, category = key
    lo, hi = wilson_interval(k_, n)
    return MetricRecord(stage=stage, name=name, category=category, successes=k_, n=n, value=k_ / n,
                        ci_low=lo, ci_high=hi, suite=suite, variant=variant, k=k, **extra)


def compute_metrics(samples: list[SampleRecord], stage: Stage, scoring: Mapping[str, Scoring]) -> list[MetricRecord]:
    """Every rate with its Wilson interval: per suite, variant (prefill k, jailbreak
    template) and category, plus ``overall``.

    ``scoring`` maps each suite name to the suite's ``Scoring``; that suite's
    scorer says which rates a sample counts towards. The map is passed rather
    than read from the samples because the scoring belongs to the suite (its
    digest covers it, the BatteryRecord pins it) and a SampleRecord names only
    its suite: a field on every sample would repeat the suite's declaration
    in each record and change the shape of the records the ledger stores.

    Greedy samples (``seed`` None) give the metrics the gate reads. Sampled
    samples give one metric per seed and, per key, an across-seed summary:
    ``value`` is the mean of the per-seed values, with their sd, min and max.
    """
    by_seed: dict[int | None, list[SampleRecord]] = {}
    for s in samples:
        by_seed.setdefault(s.seed, []).append(s)
    metrics = [_record(stage, key, sum(ev), len(ev)) for key, ev in _counts(by_seed.pop(None, []), scoring).items()]
    per_seed: dict[_Key, list[tuple[int, int, int]]] = {}
    for seed in sorted(by_seed):
        for key, ev in _counts(by_seed[seed], scoring).items():
            metrics.append(_record(stage, key, sum(ev), len(ev), decoding="sampled", seed=seed))
            per_seed.setdefault(key, []).append((seed, sum(ev), len(ev)))
    for key, rows in per_seed.items():
        values = [k_ / n for _, k_, n in rows]
        summary = _record(stage, key, sum(r[1] for r in rows), sum(r[2] for r in rows), decoding="sampled",
                          seeds=[r[0] for r in rows], seed_sd=statistics.stdev(values) if len(values) > 1 else 0.0,
                          seed_min=min(values), seed_max=max(values))
        metrics.append(summary.model_copy(update={"value": statistics.fmean(values)}))
    return metrics
