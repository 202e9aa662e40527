"""The demo's two comparisons over several seeds, on the aligned tiny model.

(a) Safety tune of the aligned model: plain SFT against deep-alignment
    augmentation (Qi et al., ICLR 2025, sec. 3), read under the prefilling attack.
(b) Downstream fine-tune of the aligned model on benign task data: plain SFT
    against the token-wise constrained objective with the aligned model as its
    frozen reference (sec. 4), read as refusal retained.

Both arms of a comparison get the same budget: the same steps, batch size,
learning rate and data pool (for (a) the SFT arm trains on the triplets'
instruction -> refusal pairs; deep-alignment adds only the harmful prefill).
Each seed changes the data order, the prefill draws and nothing else; every
figure is measured with the same reduced battery and judge, and whatever the
tiny model does is what is reported.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .battery import runner
from .battery.builtin import battery_from_spec
from .battery.judges.keyword_v2 import default_judge
from .battery.metrics import is_greedy
from .evidence.records import MetricRecord
from .finetune.augment import load_triplets
from .finetune.chat_data import load_chat_jsonl
from .finetune.recipes import run_recipe
from .models.loading import load_model, resolve_model_path
from .plan import BatterySpec, FinetuneSpec
from .plan.training import Recipe

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Student's t, two-sided 95%, by degrees of freedom (seeds - 1)."""


@dataclass(frozen=True)
class Settings:
    """The experiment's budget: the same for every arm of a comparison."""

    model: str = "builtin:tiny-chat-aligned"
    seeds: tuple[int, ...] = (0, 1, 2)
    limit_per_category: int = 6
    """Harmful items per category in the refusal and prefill suites (a reduced battery, said in the output)."""
    max_new_tokens: int = 24
    safety_steps: int = 60
    safety_lr: float = 1e-3
    task_data: str = "builtin:benign_stress"
    task_steps: int = 30
    task_lr: float = 2e-4
    batch_size: int = 16


@dataclass
class Arm:
    """One recipe of one comparison: a figure set per seed."""

    recipe: str
    per_seed: list[dict] = field(default_factory=list)


def _figure(metrics: list[MetricRecord], name: str, suite: str, k: int | None = None) -> dict | None:
    m = next((m for m in metrics if m.name == name and m.suite == suite and m.category == "overall"
              and is_greedy(m) and m.k == k and (m.variant is None) == (k is None)), None)
    return None if m is None else {"value": m.value, "successes": m.successes, "n": m.n,
                                   "ci_low": m.ci_low, "ci_high": m.ci_high}


def summarise(values: list[float]) -> dict:
    """Mean over seeds, a t-interval (seeds as the unit, not pooled counts) and the min-max."""
    n = len(values)
    mean = statistics.fmean(values)
    half = T975.get(n - 1, 1.96) * statistics.stdev(values) / n ** 0.5 if n > 1 else float("nan")
    return {"mean": mean, "t_low": max(0.0, mean - half), "t_high": min(1.0, mean + half),
            "min": min(values), "max": max(values), "seeds": n}


class Experiment:
    """Trains and evaluates every arm; ``note`` receives one line per finished arm."""

    def __init__(self, settings: Settings, note: Callable[[str], None] = lambda s: None):
        self.s, self.note = settings, note
        torch.set_num_threads(1)  # the tiny model trains fastest on one thread (see models/tiny.py)
        self.model, self.tokenizer = load_model(resolve_model_path(settings.model), device="cpu", dtype=torch.float32)
        self.judge: Any = default_judge()  # not a plan judge spec: the v2 judge itself, named in the results
        spec = BatterySpec(version="3", suites=["refusal", "prefill"], limit_per_category=settings.limit_per_category,
                           max_new_tokens=settings.max_new_tokens)
        self.battery = battery_from_spec(spec)
        self.refusal_only = self.battery.select(["refusal"], None)
        self.pairs = [[{"role": "user", "content": t["instruction"]}, {"role": "assistant", "content": t["refusal"]}]
                      for t in load_triplets("builtin:safety_triplets")]

    def evaluate(self, model, battery) -> list[MetricRecord]:
        _, metrics = runner.evaluate(model, self.tokenizer, battery, self.judge, stage="tuned",
                                     max_new_tokens=self.s.max_new_tokens, batch_size=64)
        return metrics

    def figures(self, metrics: list[MetricRecord], ks: list[int]) -> dict:
        out = {"harmful_refused": _figure(metrics, "refusal_rate", "refusal"),
               "benign_refused": _figure(metrics, "over_refusal_rate", "refusal")}
        for k in ks:
            out[f"asr_k{k}"] = _figure(metrics, "non_refusal_rate", "prefill", k)
        return out

    def ks(self) -> list[int]:
        return sorted({int(p.k) for s in self.battery.suites if s.name == "prefill" for p in s.probes(self.tokenizer)
                       if p.k is not None})

    def safety_arm(self, recipe: Recipe, seed: int, out: Path) -> dict:
        spec = FinetuneSpec(recipe=recipe, method="full", safety_data="builtin:safety", utility_data="builtin:utility",
                            safety_ratio=0.5, max_steps=self.s.safety_steps, lr=self.s.safety_lr,
                            batch_size=self.s.batch_size, warmup_steps=5)
        extra = self.pairs if recipe == "sft" else []  # the same pool: SFT sees the triplets' plain pairs
        safety = load_chat_jsonl("builtin:safety") + extra
        res = run_recipe(copy.deepcopy(self.model), self.tokenizer, spec, seed=seed, device=torch.device("cpu"),
                         dtype=torch.float32, output_dir=out, safety=safety)
        return {"seed": seed, "examples_in_pool": res.n_utility + res.n_safety, "steps": res.steps,
                **self.figures(self.evaluate(res.model, self.battery), self.ks())}

    def task_arm(self, recipe: Recipe, seed: int, out: Path) -> dict:
        spec = FinetuneSpec(recipe=recipe, method="full", task_data=self.s.task_data, max_steps=self.s.task_steps,
                            lr=self.s.task_lr, batch_size=self.s.batch_size, warmup_steps=3)
        res = run_recipe(copy.deepcopy(self.model), self.tokenizer, spec, seed=seed, device=torch.device("cpu"),
                         dtype=torch.float32, output_dir=out)
        return {"seed": seed, "examples_in_pool": res.n_utility + res.n_safety, "steps": res.steps,
                **self.figures(self.evaluate(res.model, self.refusal_only), [])}

    def run(self, work: Path) -> dict:
        t0 = time.perf_counter()
        start = self.figures(self.evaluate(self.model, self.battery), self.ks())
        self.note("evaluated the aligned starting model")
        comparisons = {}
        plan: list[tuple[str, Callable[[Recipe, int, Path], dict], tuple[Recipe, Recipe]]] = [
            ("safety_tune", self.safety_arm, ("sft", "deep-alignment")),
            ("downstream", self.task_arm, ("sft", "constrained"))]
        for name, arm, recipes in plan:
            arms = []
            for recipe in recipes:
                a = Arm(recipe)
                for seed in self.s.seeds:
                    a.per_seed.append(arm(recipe, seed, work / f"{name}-{recipe}-{seed}"))
                    self.note(f"{name}: {recipe}, seed {seed} done")
                arms.append(a)
            comparisons[name] = [{"recipe": a.recipe, "per_seed": a.per_seed, "summary": {
                key: summarise([r[key]["value"] for r in a.per_seed])
                for key in a.per_seed[0] if isinstance(a.per_seed[0][key], dict)}} for a in arms]
        return {"settings": self.s.__dict__ | {"seeds": list(self.s.seeds)},
                "judge": f"{self.judge.id}@{self.judge.version}",
                "starting_model": start, "comparisons": comparisons, "ks": self.ks(),
                "wall_seconds": round(time.perf_counter() - t0, 1)}
