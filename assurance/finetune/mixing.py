"""Mix safety and utility conversations into one seeded training set.

Every safety example is used. Utility examples are drawn to bring the safety
share (by examples) as close as possible to the requested ratio: without
replacement first, then cycling through fresh shuffles when more are needed
than exist. Utility data is there so the safety tune does not cost the model
its usefulness; the ratio is a recorded setting, so what was achieved is
reported alongside it rather than assumed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

SAFETY = "safety"
UTILITY = "utility"


@dataclass
class MixResult:
    """The training mix: (source, conversation) pairs and what ratio they achieve."""

    examples: list[tuple[str, list[dict]]] = field(default_factory=list)
    """Shuffled (source, conversation) pairs; source is ``safety`` or ``utility``."""
    n_safety: int = 0
    """Safety examples in the mix."""
    n_utility: int = 0
    """Utility examples in the mix (repeats counted)."""
    achieved_ratio: float = 1.0
    """n_safety / (n_safety + n_utility)."""


def utility_count(n_safety: int, ratio: float) -> int:
    """Utility examples that bring n_safety / (n_safety + u) closest to ``ratio``."""
    if ratio >= 1.0:
        return 0
    ideal = n_safety * (1.0 - ratio) / ratio
    lo, hi = math.floor(ideal), math.ceil(ideal)
    # The ratio is not linear in u, so compare the ratios themselves, not u to ideal.
    def err(u: int) -> float:
        return abs(n_safety / (n_safety + u) - ratio)
    return lo if err(lo) <= err(hi) else hi


def mix(safety: list, utility: list | None, ratio: float, seed: int) -> MixResult:
    """All of ``safety`` plus enough of ``utility`` to approach ``ratio``, shuffled with ``seed``."""
    if not safety:
        raise ValueError("the safety data set is empty; there is nothing to train on")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"safety ratio must be in (0, 1], got {ratio}")
    rng = random.Random(seed)

    n_util = utility_count(len(safety), ratio) if utility else 0
    drawn: list = []
    while utility and len(drawn) < n_util:
        # One fresh shuffle per pass: no example repeats until all have been used.
        pool = list(utility)
        rng.shuffle(pool)
        drawn.extend(pool[: n_util - len(drawn)])

    examples = [(SAFETY, c) for c in safety] + [(UTILITY, c) for c in drawn]
    rng.shuffle(examples)
    n_s = len(safety)
    return MixResult(examples=examples, n_safety=n_s, n_utility=n_util, achieved_ratio=n_s / (n_s + n_util))


def task_mix(task: list, safety: list | None, share: float, seed: int) -> MixResult:
    """A downstream fine-tune's mix: every task example, plus safety examples drawn (seeded, without
    replacement first) to approach ``share`` of the mix; ``share`` 0 trains on the task data alone."""
    if not task:
        raise ValueError("the task data set is empty; there is nothing to train on")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"safety share must be in [0, 1), got {share}")
    rng = random.Random(seed)
    n_safe = round(len(task) * share / (1.0 - share)) if safety else 0
    drawn: list = []
    while len(drawn) < n_safe:
        pool = list(safety or [])
        rng.shuffle(pool)
        drawn.extend(pool[: n_safe - len(drawn)])
    examples = [(UTILITY, c) for c in task] + [(SAFETY, c) for c in drawn]
    rng.shuffle(examples)
    return MixResult(examples=examples, n_safety=len(drawn), n_utility=len(task),
                     achieved_ratio=len(drawn) / len(examples))
