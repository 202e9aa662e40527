"""The demo: its plan's shape, the seeds summary, the generated README table, and a tiny smoke of the experiment.

The full demo (``assure demo``) is not run here: it takes minutes. The smoke runs every arm for a couple of
steps on a one-item-per-category battery, so the plumbing (same budget per recipe, per-seed Wilson intervals,
a t-interval across seeds) is exercised for real."""

from __future__ import annotations

import json
import math

import pytest

from assurance import demo_report
from assurance.demo import demo_plan, write_results
from assurance.demo_seeds import Experiment, Settings, summarise


def test_demo_plan_is_a_downstream_fine_tune_of_the_aligned_model():
    plan = demo_plan()
    assert plan.model.path == "builtin:tiny-chat-aligned"
    assert plan.finetune.task_data == "builtin:benign_stress" and plan.finetune.recipe == "constrained"
    assert plan.battery.limit_per_category is not None  # reduced to fit the time budget, and recorded


def test_summary_is_across_seeds_with_a_t_interval():
    s = summarise([0.4, 0.5, 0.6])
    half = 4.303 * 0.1 / math.sqrt(3)
    assert s["mean"] == pytest.approx(0.5) and s["t_low"] == pytest.approx(0.5 - half)
    assert s["t_high"] == pytest.approx(0.5 + half) and (s["min"], s["max"], s["seeds"]) == (0.4, 0.6, 3)
    clipped = summarise([0.0, 0.0, 0.3])
    assert clipped["t_low"] == 0.0  # a rate's interval stays inside [0, 1]


def fake_results() -> dict:
    def fig(v):
        return {"value": v, "successes": round(v * 10), "n": 10, "ci_low": max(0.0, v - 0.2),
                "ci_high": min(1.0, v + 0.2)}

    def arm(recipe, vals):
        per = [{"seed": i, "harmful_refused": fig(v), "benign_refused": fig(0.1), "asr_k5": fig(1 - v)}
               for i, v in enumerate(vals)]
        return {"recipe": recipe, "per_seed": per,
                "summary": {k: summarise([r[k]["value"] for r in per]) for k in ("harmful_refused", "benign_refused",
                                                                                 "asr_k5")}}
    return {"settings": {"model": "builtin:tiny-chat-aligned", "seeds": [0, 1, 2], "limit_per_category": 6,
                         "max_new_tokens": 24, "safety_steps": 60, "safety_lr": 1e-3, "task_data": "builtin:x",
                         "task_steps": 30, "task_lr": 2e-4, "batch_size": 16},
            "judge": "refusal@2", "ks": [5], "wall_seconds": 12.0,
            "starting_model": {"harmful_refused": fig(0.5), "benign_refused": fig(0.1), "asr_k5": fig(0.5)},
            "comparisons": {"safety_tune": [arm("sft", [0.3, 0.32, 0.31]), arm("deep-alignment", [0.7, 0.71, 0.69])],
                            "downstream": [arm("sft", [0.2, 0.5, 0.3]), arm("constrained", [0.3, 0.4, 0.25])]}}


def test_table_says_what_the_seeds_show_and_not_more():
    md = demo_report.markdown(fake_results())
    assert "deep-alignment is better, and the seeds' intervals do not overlap" in md
    assert "Harmful refused after the downstream fine-tune: no difference the seeds can show" in md
    assert "constrained above sft in 1 of 3 seeds" in md
    assert "per seed: 30% (10%–50%)" in md and "vary across CPUs" in md


def test_readme_section_is_regenerated_from_the_results_file(tmp_path):
    js, md = write_results(fake_results(), tmp_path / "home")
    written = json.loads(js.read_text())
    assert written["comparisons"] and md.read_text() == demo_report.markdown(written)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{demo_report.START}\nold figures\n{demo_report.END}\ntail\n")
    demo_report.main([str(js), "--readme", str(readme)])
    text = readme.read_text()
    assert "old figures" not in text and md.read_text() in text and text.endswith(f"{demo_report.END}\ntail\n")
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        demo_report.main([str(js), "--readme", str(readme)])


def test_experiment_smoke_runs_every_arm_with_the_same_budget(tiny_model_dir, tmp_path):
    s = Settings(model=str(tiny_model_dir), seeds=(0, 1), limit_per_category=1, max_new_tokens=4,
                 safety_steps=2, task_steps=2, batch_size=4)
    lines = []
    res = Experiment(s, note=lines.append).run(tmp_path)
    assert len(lines) == 1 + 4 * 2
    for name, recipes in (("safety_tune", ["sft", "deep-alignment"]), ("downstream", ["sft", "constrained"])):
        arms = res["comparisons"][name]
        assert [a["recipe"] for a in arms] == recipes
        # same budget: steps and the examples in the pool are equal across the two recipes of a comparison
        assert len({(r["steps"], r["examples_in_pool"]) for a in arms for r in a["per_seed"]}) == 1
        for a in arms:
            assert [r["seed"] for r in a["per_seed"]] == [0, 1]
            h = a["per_seed"][0]["harmful_refused"]
            assert h["ci_low"] <= h["value"] <= h["ci_high"] and h["n"] == 11
    assert res["ks"] and all(f"asr_k{k}" in res["comparisons"]["safety_tune"][0]["summary"] for k in res["ks"])
    demo_report.markdown(res)  # the real results render


def test_story_lists_the_three_runs_with_their_profiles_and_packs(tmp_path):
    from rich.console import Console

    from assurance.demo import DEMO_RUNS, Finished, tell_runs
    from assurance.pipeline import RunResult

    finished = []
    for i, run in enumerate(DEMO_RUNS):
        packs = {r: tmp_path / f"{r}-{i}.pdf" for r in run.regimes}
        finished.append(Finished(run, RunResult(f"run-{i}", "FAIL", 1, "sqlite://", tmp_path, packs=packs), 20.0 + i))
    console = Console(record=True, width=400)
    tell_runs(finished, console)
    text = console.export_text()
    assert [line.split(":")[0] for line in text.splitlines() if line[:2] in ("1.", "2.", "3.")] == [
        "1. A fictional bank, its pack from its profile", "2. A fictional NHS trust, its pack from its profile",
        "3. No profile, so everything only an organisation can supply is a gap"]
    assert "profile northbank.yaml" in text and "profile riverside-trust.yaml" in text and "(no profile)" in text
    assert [line.split(" pack:")[0].strip() for line in text.splitlines() if " pack: " in line] == [
        "FCA", "NHS", "FCA", "NHS", "UK-AI"]
    assert "NOT PROVIDED" in text and "--profile" in text
    assert finished[2].as_json()["packs"] == {r: str(tmp_path / f"{r}-2.pdf") for r in ("fca", "nhs", "uk-ai")}


def test_demo_keys_sign_the_bank_runs_signoff_and_its_roster_accepts_it(tmp_path):
    from types import SimpleNamespace

    from _signed_run import RUN, sealed_run

    from assurance.demo import SIGNER, demo_keys, demo_signoff
    from assurance.evidence.roster import load_roster
    from assurance.evidence.verify import verify_run

    keys = demo_keys(tmp_path / "demo-keys")
    assert keys.run.exists() and keys.signer.exists() and demo_keys(tmp_path / "demo-keys") == keys  # made once
    store = sealed_run(tmp_path)
    line = demo_signoff(SimpleNamespace(status="PASS", store_url=store.url, run_id=RUN), keys)
    assert "approves" in line and str(keys.roster) in line
    (rec,) = store.records(RUN, kinds=["signoff"])
    assert (rec.name, rec.role, rec.decision) == (*SIGNER, "approve") and rec.signed_pack_path
    assert verify_run(store, RUN).ok
    assert verify_run(store, RUN, roster=load_roster(keys.roster)).ok
