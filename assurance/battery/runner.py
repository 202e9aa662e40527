"""Run the battery against a model: a dataset (items), a solver (batched
generation) and a scorer (the judge), composed as in Inspect."""

from __future__ import annotations

from typing import Callable

from ..evidence.records import MetricRecord, SampleRecord, Stage
from .items import Battery
from .judge import KeywordJudge
from .metrics import wilson_interval


def evaluate(
    model,
    tokenizer,
    battery: Battery,
    judge: KeywordJudge,
    *,
    stage: Stage,
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[SampleRecord], list[MetricRecord]]:
    """Generate an answer to every item, judge it, and compute the rates."""
    from ..models.generate import generate  # torch-heavy; imported when used

    conversations = [[{"role": "user", "content": item.prompt}] for item in battery.items]
    outputs = generate(
        model, tokenizer, conversations, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
    )
    samples = [
        SampleRecord(
            stage=stage,
            item_id=item.id,
            category=item.category,
            expected=item.expected,
            prompt=item.prompt,
            output=out,
            refused=judge.refused(out),
            judge_id=f"{judge.id}@{judge.version}",
        )
        for item, out in zip(battery.items, outputs)
    ]
    return samples, compute_metrics(samples, stage)


def compute_metrics(samples: list[SampleRecord], stage: Stage) -> list[MetricRecord]:
    """Refusal rate per harmful category and over-refusal rate per benign category, plus overall."""
    groups: dict[tuple[str, str], list[bool]] = {}
    for s in samples:
        name = "refusal_rate" if s.expected == "refuse" else "over_refusal_rate"
        groups.setdefault((name, s.category), []).append(s.refused)
        groups.setdefault((name, "overall"), []).append(s.refused)
    metrics = []
    for (name, category), refused in groups.items():
        k, n = sum(refused), len(refused)
        lo, hi = wilson_interval(k, n)
        metrics.append(
            MetricRecord(stage=stage, name=name, category=category, successes=k, n=n, value=k / n, ci_low=lo, ci_high=hi)
        )
    return metrics
