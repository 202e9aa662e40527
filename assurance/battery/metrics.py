"""Rates with Wilson score intervals, per suite, variant and category.

Wilson's interval keeps sensible bounds at 0% and 100% and with the small
per-category counts a battery has, where the normal approximation does not.
It assumes independent trials, which holds where every item is counted once.
It does not hold for a suite's total over its variants (one item at four
prefill k, or under twelve jailbreak templates) nor for sampled decoding
summarised over seeds (one item once per seed): an item's probes tend to go
the same way. Those rates get ``clustered_interval``: Wilson's interval at the
effective sample size, from the spread of per-item counts.
Paired base-vs-tuned statistics (bootstrap, McNemar) live in ``stats.py``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import NamedTuple

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
    return wilson_bounds(successes / n, n, z)


def wilson_bounds(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's interval for a proportion ``p`` observed over ``n`` trials, where ``n`` may be an
    effective (not whole) number of trials."""
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 and n the bounds are exactly 0 and 1; the formula gives them only up
    # to rounding (1e-17, 0.9999999999999999), which would put the rate itself
    # outside its own interval.
    lo = 0.0 if p == 0 else max(0.0, centre - half)
    hi = 1.0 if p == 1 else min(1.0, centre + half)
    return lo, hi


class ClusteredInterval(NamedTuple):
    lo: float
    hi: float
    n_clusters: int
    """Items behind the probes."""
    n_effective: float
    """Independent trials the probes are worth: n / design effect."""


def clustered_interval(clusters: Sequence[tuple[int, int]], z: float = Z95) -> ClusteredInterval:
    """Wilson's interval for a rate whose probes come in clusters, one per item: ``(successes, n)`` each.

    The rate is p = sum(successes) / sum(n) = Y / N. Its variance allowing any correlation inside an
    item is the cluster-robust (ratio-estimator) variance
    ``V = m / (m - 1) * sum_i (y_i - p * n_i)^2 / N^2`` over the m items; as independent trials it
    would be ``V0 = p (1 - p) / N``. The design effect ``V / V0`` (Kish) is held at 1 or more, so
    clustering never narrows an interval, and Wilson's interval is taken at ``n_effective = N /
    design effect``: about N when an item's probes are independent, about m when they all go the same
    way. When every probe went the same way (p is 0 or 1) the spread says nothing about the
    correlation, so the items are counted as the trials (``n_effective = m``), the cautious choice.
    """
    m = len(clusters)
    total = sum(n for _, n in clusters)
    if m == 0 or total == 0:
        return ClusteredInterval(0.0, 1.0, m, 0.0)
    hits = sum(y for y, _ in clusters)
    p = hits / total
    if m == 1 or hits in (0, total):
        n_eff = float(m)
    else:
        v = m / (m - 1) * math.fsum((y - p * n) ** 2 for y, n in clusters) / total ** 2
        v0 = p * (1 - p) / total
        n_eff = total if v <= v0 else total * v0 / v
    lo, hi = wilson_bounds(p, n_eff, z)
    return ClusteredInterval(lo, hi, m, n_eff)


# --- rates from judged samples ------------------------------------------------

_Key = tuple  # (suite, name, variant, k, category)
_Events = list[tuple[str, bool]]  # (item id, event) per probe


def _counts(samples: list[SampleRecord], scoring: Mapping[str, Scoring]) -> dict[_Key, _Events]:
    groups: dict[_Key, _Events] = {}
    for s in samples:
        if s.suite not in scoring:
            raise ValueError(f"sample of suite {s.suite!r}, which is not among the suites scored: {sorted(scoring)}")
        for name, event in SCORERS[scoring[s.suite]].events(s):
            keys = [(s.suite, name, s.variant, s.k, s.category), (s.suite, name, s.variant, s.k, "overall")]
            if s.variant is not None:  # every variant of an attack suite together
                keys.append((s.suite, name, None, None, "overall"))
            for key in keys:
                groups.setdefault(key, []).append((s.item_id, event))
    return groups


def _record(stage: Stage, key: _Key, events: _Events, **extra) -> MetricRecord:
    """The rate of ``events`` with Wilson's interval, clustered by item where an item has several probes."""
    suite, name, variant, k, category = key
    hits, n = sum(e for _, e in events), len(events)
    by_item: dict[str, list[int]] = {}
    for item, event in events:
        by_item.setdefault(item, []).append(int(event))
    if len(by_item) == n:
        lo, hi = wilson_interval(hits, n)
    else:
        ci = clustered_interval([(sum(v), len(v)) for v in by_item.values()])
        lo, hi = ci.lo, ci.hi
        extra |= {"interval_method": "cluster-wilson", "n_clusters": ci.n_clusters, "n_effective": ci.n_effective}
    return MetricRecord(stage=stage, name=name, category=category, successes=hits, n=n, value=hits / n,
                        ci_low=lo, ci_high=hi, suite=suite, variant=variant, k=k, **extra)


def compute_metrics(samples: list[SampleRecord], stage: Stage, scoring: Mapping[str, Scoring]) -> list[MetricRecord]:
    """Every rate with its interval: per suite, variant (prefill k, jailbreak template) and category,
    plus ``overall``.

    ``scoring`` maps each suite name to the suite's ``Scoring``; that suite's
    scorer says which rates a sample counts towards. The map is passed rather
    than read from the samples because the scoring belongs to the suite (its
    digest covers it, the BatteryRecord pins it) and a SampleRecord names only
    its suite: a field on every sample would repeat the suite's declaration
    in each record and change the shape of the records the ledger stores.

    Where every item is counted once the interval is Wilson's; a suite's total
    over its variants counts an item once per variant, and gets the interval
    clustered by item (``clustered_interval``).

    Greedy samples (``seed`` None) give the metrics the gate reads. Sampled
    samples give one metric per seed and, per key, an across-seed summary:
    ``value`` is the mean of the per-seed values, with their sd, min and max.
    Seeds are not pooled as if independent: the summary's interval is
    clustered by item across seeds (an item's answers under different seeds
    are one cluster), so it reflects both the battery's finite items and the
    spread between seeds, and ``successes``/``n`` are only totals. A Student t
    interval on the per-seed means was not chosen: every seed answers the same
    items, so their spread leaves out the items' own sampling error (and with
    one or two seeds it is undefined or absurdly wide).
    """
    by_seed: dict[int | None, list[SampleRecord]] = {}
    for s in samples:
        by_seed.setdefault(s.seed, []).append(s)
    metrics = [_record(stage, key, ev) for key, ev in _counts(by_seed.pop(None, []), scoring).items()]
    sampled = {seed: rows for seed, rows in by_seed.items() if seed is not None}
    per_seed: dict[_Key, list[tuple[int, _Events]]] = {}
    for seed in sorted(sampled):
        for key, ev in _counts(sampled[seed], scoring).items():
            metrics.append(_record(stage, key, ev, decoding="sampled", seed=seed))
            per_seed.setdefault(key, []).append((seed, ev))
    for key, rows in per_seed.items():
        values = [sum(e for _, e in ev) / len(ev) for _, ev in rows]
        summary = _record(stage, key, [e for _, ev in rows for e in ev], decoding="sampled",
                          seeds=[seed for seed, _ in rows],
                          seed_sd=statistics.stdev(values) if len(values) > 1 else 0.0,
                          seed_min=min(values), seed_max=max(values))
        metrics.append(summary.model_copy(update={"value": statistics.fmean(values)}))
    return metrics
