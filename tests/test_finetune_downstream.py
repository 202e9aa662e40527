"""The downstream fine-tune (task data, where the paper puts the constrained objective) and the stress recipe."""

from __future__ import annotations

import pytest
import torch
from _finetune import CONVS, TRIPLETS, make_model, write

from assurance.finetune.mixing import SAFETY, UTILITY, task_mix
from assurance.finetune.recipes import build_mix, data_sources, run_recipe, stress_spec
from assurance.plan import FinetuneSpec, StressSpec, plan_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")


def test_old_plans_validate_with_the_new_fields_defaulted():
    p = plan_from_dict({"finetune": {"recipe": "deep-alignment"}, "stress": {"max_steps": 5}})
    assert p.finetune.task_data is None and p.finetune.safety_mix == 0.0 and p.stress.recipe == "sft"


def test_stress_recipe_is_selectable_and_nothing_else():
    assert stress_spec(StressSpec(recipe="constrained")).recipe == "constrained"
    assert stress_spec(StressSpec()).recipe == "sft"
    with pytest.raises(ValueError):
        StressSpec(recipe="deep-alignment")


def test_task_mix_keeps_every_task_example_and_draws_the_safety_share():
    task, safety = [[{"i": i}] for i in range(30)], [[{"s": i}] for i in range(7)]
    alone = task_mix(task, safety, 0.0, seed=1)
    assert alone.n_safety == 0 and sorted(c[0]["i"] for _, c in alone.examples) == list(range(30))
    mixed = task_mix(task, safety, 0.25, seed=1)
    assert mixed.n_utility == 30 and mixed.n_safety == 10  # 10 / 40: safety repeats once it runs out
    assert abs(mixed.achieved_ratio - 0.25) < 1e-9
    assert [k for k, _ in mixed.examples].count(SAFETY) == 10 and [k for k, _ in mixed.examples].count(UTILITY) == 30
    assert task_mix(task, safety, 0.25, seed=1).examples == mixed.examples


def test_downstream_plan_reads_task_data_not_utility(tmp_path):
    task = write(tmp_path / "task.jsonl", [{"messages": c} for c in CONVS])
    spec = FinetuneSpec(recipe="deep-alignment", task_data=str(task), triplet_data=str(
        write(tmp_path / "t.jsonl", TRIPLETS)))
    assert set(data_sources(spec)) == {"dataset:task", "dataset:triplets"}
    res = build_mix(spec, seed=0)
    assert res.n_utility == len(CONVS) and res.n_safety == len(TRIPLETS)  # recovery examples on the safety side
    with_safety = FinetuneSpec(task_data=str(task), safety_mix=0.5, safety_data=str(task))
    assert "dataset:safety" in data_sources(with_safety)


def test_constrained_downstream_run_records_its_reference_and_data(tokenizer, tmp_path):
    task = write(tmp_path / "task.jsonl", [{"messages": c} for c in CONVS])
    spec = FinetuneSpec(recipe="constrained", method="full", task_data=str(task), max_steps=3, lr=1e-3, batch_size=4,
                        warmup_steps=1, max_length=64)
    res = run_recipe(make_model(tokenizer), tokenizer, spec, seed=0, device=torch.device("cpu"),
                     dtype=torch.float32, output_dir=tmp_path / "out")
    assert res.objective == "constrained" and res.n_utility == len(CONVS) and res.n_safety == 0
    assert res.hyperparameters["training_data"].startswith("downstream: task data")
    assert "starting model" in res.recipe_settings["constrained"]["reference"]
