"""Resuming a killed run: a real SIGKILL of `assure run` mid fine-tune, then `assure run --resume`.

The resumed run continues the same chain under the same run id, skips what the
ledger already holds, restarts the fine-tune from its checkpoint, and ends with
the same tuned weights (bit-identical on CPU) as an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _killed import SLOW_CLI, write_plan
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.store import Store

runner = CliRunner()

def cli(*args: str, env: dict, slow: bool = False, timeout: float = 240) -> subprocess.CompletedProcess:
    code = ["-c", SLOW_CLI] if slow else ["-m", "assurance.cli"]
    return subprocess.run([sys.executable, *code, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_changed_base_model_refuses_the_resume(killed):
    """Re-hashing finds the base model changed since the run recorded it: exit 2, nothing appended."""
    db, run_id = killed["db"], killed["run_id"]
    store = Store(db)
    n = store.count(run_id)
    weights = killed["model"] / "model.safetensors"
    original = weights.read_bytes()
    try:
        data = bytearray(original)
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        res = runner.invoke(app, ["run", "--resume", run_id, "--db", db], env={"ASSURE_HOME": str(killed["tmp"] / "runs")})
        assert res.exit_code == 2, res.output
        assert "base_model" in res.output and "cannot resume" in res.output
        assert store.count(run_id) == n
    finally:
        weights.write_bytes(original)


def test_a_run_held_by_a_live_process_is_not_resumed(killed):
    """Two processes appending to one chain would fork it: the run folder's lock refuses the second."""
    from assurance.runlock import RunInProgress, run_lock

    db, run_id = killed["db"], killed["run_id"]
    n = Store(db).count(run_id)
    with run_lock(killed["run_dir"], run_id):
        with pytest.raises(RunInProgress):
            with run_lock(killed["run_dir"], run_id):
                pass
        res = runner.invoke(app, ["run", "--resume", run_id, "--db", db], env={"ASSURE_HOME": str(killed["tmp"] / "runs")})
        assert res.exit_code == 2, res.output
        assert "still being worked on" in res.output
    assert Store(db).count(run_id) == n


def test_killed_run_resumes_to_the_uninterrupted_result(killed):
    db, env, run_id = killed["db"], killed["env"], killed["run_id"]
    store = Store(db)
    before = store.records(run_id)
    assert [r.kind for r in before if r.kind in ("manifest", "finetune", "verdict")] == []
    assert {r.stage for r in before if r.kind == "sample"} == {"base"}  # base evaluated, then killed mid-tune

    never = runner.invoke(app, ["verify", run_id, "--db", db])
    assert never.exit_code == 1 and "never finished and was never sealed" in never.output
    # the checkpoint the fine-tune will continue from, as its meta.json recorded it when written
    (ckpts,) = killed["run_dir"].glob("*/checkpoints")
    latest = json.loads(sorted(ckpts.glob("step-*/meta.json"))[-1].read_text())

    # --resume with no plan file: the recorded plan is used
    done = cli("run", "--resume", run_id[:13], "--db", db, "--json", env=env)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["run_id"] == run_id and out["resumed"] is True and out["error"] is None

    records = store.records(run_id)
    assert records[: len(before)] == before  # the same chain, continued
    ok = runner.invoke(app, ["verify", run_id, "--db", db])
    assert ok.exit_code == 0, ok.output
    assert "complete" in ok.output and "INCOMPLETE" not in ok.output
    kinds = [r.kind for r in records]
    assert kinds.count("run_started") == 1 and kinds.count("environment") == 2
    assert kinds.count("manifest") == 2 and kinds.count("verdict") == 1 and kinds.count("pack") == 1
    assert kinds.count("battery") == 1
    # the base stage was not evaluated twice
    assert [r for r in records if r.kind == "sample" and r.stage == "base"] == \
        [r for r in before if r.kind == "sample" and r.stage == "base"]
    (ft,) = [r for r in records if r.kind == "finetune"]
    assert ft.resumed_from_step == latest["step"] and ft.resumed_from_step > 0 and ft.resumed_from_step % 5 == 0
    assert ft.resumed_from_checkpoint_digest == latest["state_sha256"]
    assert ft.resumed_from_checkpoint_digest.startswith("sha256:")
    assert ft.steps == 40
    manifest = next(r for r in records if r.kind == "manifest")
    assert manifest.complete and manifest.artifacts["tuned_model"] == ft.output_digest
    assert Path(ft.output_path).parent == killed["run_dir"]  # same run folder
    assert not (killed["run_dir"] / "model" / "checkpoints").exists()

    # an uninterrupted run of the same plan: the same tuned weights, bit for bit, and the same scores
    straight = cli("run", str(killed["plan"]), "--db", db, "--json", env=env)
    assert straight.returncode in (0, 1), straight.stdout + straight.stderr
    other = json.loads(straight.stdout)
    recs2 = store.records(other["run_id"])
    ft2 = next(r for r in recs2 if r.kind == "finetune")
    assert ft2.resumed_from_step is None and ft2.resumed_from_checkpoint_digest is None
    assert ft.output_digest == ft2.output_digest
    assert ft.loss_curve == ft2.loss_curve and ft.tokens_seen == ft2.tokens_seen

    def scores(recs):
        return [(m.stage, m.name, m.category, m.value) for m in recs if m.kind == "metric"]

    assert scores(records) == scores(recs2)
    assert out["status"] == other["status"]

    # a sealed run is final
    again = runner.invoke(app, ["run", "--resume", run_id, "--db", db])
    assert again.exit_code == 2 and "already sealed" in again.output
    assert store.count(run_id) == len(records)


def test_resume_refusals_append_nothing(tmp_path, tiny_model_dir):
    """A changed plan file or a changed input refuses the resume; no record is appended."""
    from assurance.evidence.hashing import json_digest
    from assurance.evidence.records import RunStarted
    from assurance.plan import load_plan

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    plan_path = write_plan(tmp_path / "plan.yaml", model, max_steps=2)
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    env = {"ASSURE_HOME": str(tmp_path / "runs")}
    # A run killed right after it started: only its RunStarted record is in the ledger.
    plan = load_plan(plan_path)
    plan_dict = plan.model_dump(mode="json")
    store = Store(db)
    run_id = "01900000-0000-7000-8000-000000000001"
    store.append(run_id, [RunStarted(run_id=run_id, plan=plan_dict, plan_digest=json_digest(plan_dict),
                                     plan_path=str(plan_path), tool_version="test", started_at="2025-01-01T00:00:00Z")])

    changed = write_plan(tmp_path / "changed.yaml", model, max_steps=2, lr=5e-4)
    res = runner.invoke(app, ["run", str(changed), "--resume", run_id, "--db", db], env=env)
    assert res.exit_code == 2 and "differs from the plan recorded" in res.output, res.output
    assert store.count(run_id) == 1

    res = runner.invoke(app, ["run", "--resume", "nosuchrun", "--db", db], env=env)
    assert res.exit_code == 2 and "not found" in res.output

    res = runner.invoke(app, ["run", "--db", db], env=env)
    assert res.exit_code == 2 and "--resume" in res.output

    # The same plan file is accepted; the resume then records provenance itself and finishes.
    res = runner.invoke(app, ["run", str(plan_path), "--resume", run_id, "--db", db, "--json"], env=env)
    assert res.exit_code in (0, 1), res.output
    records = store.records(run_id)
    kinds = [r.kind for r in records]
    assert kinds[:2] == ["run_started", "environment"] and kinds.count("environment") == 1
    assert [(r.scope, r.complete) for r in records if r.kind == "manifest"] == [("evidence", True), ("packs", True)]


# ----------------------------------------------------------------------------- generation backend

def test_backend_resolution(monkeypatch):
    import torch

    from assurance.backends import resolve_backend, stage_backends
    from assurance.models import vllm_backend
    from assurance.plan import PlanError, plan_from_dict

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", cpu) == "transformers"
    assert resolve_backend("transformers", cpu) == "transformers"
    with pytest.raises(PlanError, match="battery.backend: 'vllm' was requested"):
        resolve_backend("vllm", cpu)
    monkeypatch.setattr(vllm_backend, "available", lambda: True)  # as on a GPU machine with vllm installed
    assert resolve_backend("auto", cpu) == "transformers"  # a CPU run never uses vLLM
    assert resolve_backend("auto", cuda) == "vllm" and resolve_backend("vllm", cuda) == "vllm"
    assert resolve_backend("transformers", cuda) == "transformers"
    lora_stress = plan_from_dict({"stress": {"method": "lora"}})
    full_stress = plan_from_dict({"stress": {"method": "full"}})
    no_stress = plan_from_dict({"stress": {"enabled": False}})
    assert stage_backends(lora_stress, "vllm") == {"base": "vllm", "tuned": "vllm", "stress": "transformers"}
    assert stage_backends(full_stress, "vllm") == {"base": "vllm", "tuned": "vllm", "stress": "vllm"}
    assert stage_backends(no_stress, "transformers") == {"base": "transformers", "tuned": "transformers"}


def test_vllm_requested_without_vllm_exits_2_and_writes_nothing(tmp_path, tiny_model_dir):
    plan = yaml.safe_load(write_plan(tmp_path / "plan.yaml", tiny_model_dir).read_text())
    plan["battery"]["backend"] = "vllm"
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(plan))
    res = runner.invoke(app, ["run", str(path), "--db", f"sqlite:///{tmp_path / 'evidence.db'}"],
                        env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert res.exit_code == 2, res.output
    assert "battery.backend: 'vllm' was requested but cannot be used" in res.output
    assert not (tmp_path / "evidence.db").exists() and not (tmp_path / "runs").exists()


def test_auto_backend_is_recorded_as_transformers_on_cpu(killed):
    """The run above (auto on CPU) records the backend it used for every stage."""
    records = Store(killed["db"]).records(killed["run_id"])
    gen = next(r for r in records if r.kind == "battery").generation
    assert gen["backend"] == "transformers" and gen["backend_requested"] == "auto"
    assert gen["backend_by_stage"] == {"base": "transformers", "tuned": "transformers"}


@pytest.mark.parametrize("cut_after", ["safety", "stress"])
def test_resume_after_a_finished_lora_fine_tune_reloads_it(tmp_path, tiny_model_dir, cut_after):
    """A run cut right after a fine-tune's records (LoRA safety adapter, LoRA stress adapter) resumes by
    reloading the saved adapters from disk, and scores as the run that never stopped did."""
    from assurance.evidence.records import FinetuneRecord

    plan = {"name": "lora-resume", "model": {"path": str(tiny_model_dir)}, "device": "cpu", "cpu_threads": 1,
            "battery": {"suites": ["refusal"], "limit_per_category": 1, "max_new_tokens": 6},
            "finetune": {"method": "lora", "max_steps": 3, "batch_size": 4, "warmup_steps": 0, "lr": 1e-2},
            "stress": {"method": "lora", "max_steps": 2, "batch_size": 4, "lr": 1e-2},
            "report": {"regimes": []}}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    env = {"ASSURE_HOME": str(tmp_path / "runs")}
    first = runner.invoke(app, ["run", str(path), "--db", db, "--json"], env=env)
    assert first.exit_code in (0, 1), first.output
    store = Store(db)
    full = store.records(json.loads(first.stdout)["run_id"])
    cut = next(i for i, r in enumerate(full) if isinstance(r, FinetuneRecord) and r.purpose == cut_after) + 2
    # The same records under a new run id, as if the process had been killed right after that fine-tune.
    run_id = "01900000-0000-7000-8000-00000000000" + ("1" if cut_after == "safety" else "2")
    store.append(run_id, [full[0].model_copy(update={"run_id": run_id}), *full[1:cut]])
    res = runner.invoke(app, ["run", "--resume", run_id, "--db", db, "--json"], env=env)
    assert res.exit_code == first.exit_code, res.output
    resumed = store.records(run_id)
    assert runner.invoke(app, ["verify", run_id, "--db", db]).exit_code == 0

    def scores(recs):
        return [(m.stage, m.name, m.category, m.value) for m in recs if m.kind == "metric"]

    def outputs(recs):
        return [(s.stage, s.item_id, s.output) for s in recs if s.kind == "sample"]

    assert scores(resumed) == scores(full) and outputs(resumed) == outputs(full)
    assert [r.kind for r in resumed].count("finetune") == 2  # nothing trained again
    # The paired comparisons after the cut pair samples read back from the ledger (``stages.paired_samples``,
    # the filter a fresh evaluation uses), so they equal the uninterrupted run's, figure for figure.
    comparisons = [r.model_dump() for r in full if r.kind == "comparison"]
    assert comparisons and [r.model_dump() for r in resumed if r.kind == "comparison"] == comparisons
