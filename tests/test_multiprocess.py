"""Two processes under torchrun (gloo, CPU) run examples/quick.yaml as one run, equal to one process's.

Rank 0 alone writes the ledger and the packs; rank 1 trains its half of each batch (DDP, or FSDP
with ``parallel: fsdp``) and generates its share of the battery. Every process is a real
`assure run` process started by torch's own launcher, as a user would start them on a GPU machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assurance.evidence.records import FinetuneRecord, MetricRecord, SampleRecord
from assurance.evidence.store import Store

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "examples" / "quick.yaml"


def _env(home: Path) -> dict:
    # One torch thread per process: two processes share this machine's cores, as torchrun arranges too.
    return {**os.environ, "ASSURE_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _assure(*args: str) -> list[str]:
    return [sys.executable, "-m", "assurance.cli", *args]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(two-process store, one-process store, the launcher's finished process, run folder root)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    two, one = tmp / "two.db", tmp / "one.db"
    launcher = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "assurance.cli", "run", str(QUICK), "--db", str(two), "--quiet"],
        env=_env(tmp / "home-two"), capture_output=True, text=True, timeout=900)
    single = subprocess.run(_assure("run", str(QUICK), "--db", str(one), "--quiet"), env=_env(tmp / "home-one"),
                            capture_output=True, text=True, timeout=900)
    assert single.returncode in (0, 1), single.stderr[-2000:]
    return Store(str(two)), Store(str(one)), launcher, tmp / "home-two"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """(store, run folder root) of examples/quick.yaml under FSDP on two processes: the LoRA safety fine-tune
    sharded, and a full-weight stress fine-tune sharded too (its whole weights gathered to be saved)."""
    tmp = tmp_path_factory.mktemp("fsdp")
    plan = tmp / "fsdp.yaml"
    plan.write_text(QUICK.read_text(encoding="utf-8") + FSDP_TUNES, encoding="utf-8")
    return _launch_two(plan, tmp)


FSDP_TUNES = "  parallel: fsdp\nstress:\n  method: full\n  parallel: fsdp\nreport:\n  regimes: [fca]\n"
"""Appended to examples/quick.yaml (whose last section is ``finetune``): both fine-tunes sharded, one pack."""


def _launch_two(plan: Path, tmp: Path) -> tuple[Store, Path]:
    """(store, run folder root) of ``plan`` run by two processes under torch's launcher."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "assurance.cli", "run", str(plan), "--db", str(tmp / "fsdp.db"), "--quiet"],
        env=_env(tmp / "home"), capture_output=True, text=True, timeout=900)
    assert "ERROR" not in done.stdout, done.stdout + done.stderr[-3000:]
    return Store(str(tmp / "fsdp.db")), tmp / "home"


@pytest.fixture(scope="module")
def sharded_weights(tmp_path_factory):
    """(store, run folder root) of the ``sharded`` plan with ``model.parallel: fsdp``: the weights themselves
    loaded in shards on the two processes, for evaluation as well as for both fine-tunes."""
    tmp = tmp_path_factory.mktemp("fsdp-weights")
    plan = tmp / "fsdp-weights.yaml"
    quick = QUICK.read_text(encoding="utf-8")
    plan.write_text(quick.replace("  path: builtin:tiny-chat\n", "  path: builtin:tiny-chat\n  parallel: fsdp\n")
                    + FSDP_TUNES, encoding="utf-8")
    return _launch_two(plan, tmp)


def _only_run(store: Store) -> str:
    ids = store.run_ids()
    assert len(ids) == 1, ids
    return ids[0]


def test_one_run_in_the_ledger_written_by_rank_0(runs):
    two, _, launcher, home = runs
    run_id = _only_run(two)
    # rank 0 reports the verdict once; rank 1 prints nothing of its own
    verdict_lines = [line for line in launcher.stdout.splitlines() if line.endswith(run_id)]
    assert len(verdict_lines) == 1, launcher.stdout[-2000:] + launcher.stderr[-3000:]
    assert [p.name for p in home.iterdir()] == [run_id]  # one run folder, no follower's
    assert len(list((home / run_id / "packs").glob("*.pdf"))) == 3


def test_the_two_process_run_verifies(runs):
    two, _, _, _ = runs
    done = subprocess.run(_assure("verify", _only_run(two), "--db", two.url), env=_env(Path("/nonexistent")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INTACT" in done.stdout and "run complete" in done.stdout


def _results(store: Store):
    records = store.records(_only_run(store))
    metrics = {(r.stage, r.suite, r.name): r.value for r in records if isinstance(r, MetricRecord)}
    samples = [(r.stage, r.suite, r.item_id, r.variant, r.k, r.seed, r.output, r.refused)
               for r in records if isinstance(r, SampleRecord)]
    tunes = {r.purpose: r for r in records if isinstance(r, FinetuneRecord)}
    return metrics, samples, tunes


def test_scores_equal_a_single_process_run(runs):
    two, one, _, _ = runs
    metrics2, samples2, tunes2 = _results(two)
    metrics1, samples1, tunes1 = _results(one)
    assert metrics2 == metrics1 and len(metrics1) > 10
    assert samples2 == samples1 and len(samples1) > 1000  # every output, in item order
    for purpose in ("safety", "stress"):
        # the plan's batch is split across the ranks, so both runs trained on the same rows at every step
        assert tunes2[purpose].tokens_seen == tunes1[purpose].tokens_seen
        assert tunes2[purpose].hyperparameters["world_size"] == 2
        assert tunes1[purpose].hyperparameters["world_size"] == 1
        assert (tunes2[purpose].hyperparameters["effective_batch_size"]
                == tunes1[purpose].hyperparameters["effective_batch_size"])
        losses2 = [loss for _, loss in tunes2[purpose].loss_curve]
        losses1 = [loss for _, loss in tunes1[purpose].loss_curve]
        assert losses2 == pytest.approx(losses1, rel=1e-4)  # gradients summed in another order: not bit-equal


def test_fsdp_trains_the_same_and_saves_whole_weights(sharded, runs):
    store, home = sharded
    _, one, _, _ = runs
    metrics, samples, tunes = _results(store)
    metrics1, samples1, _ = _results(one)
    # base and tuned stages have the same plan as the single-process quick run (parallel is ignored by one process)
    assert {k: v for k, v in metrics.items() if k[0] != "stress"} == {k: v for k, v in metrics1.items()
                                                                       if k[0] != "stress"}
    assert [s for s in samples if s[0] != "stress"] == [s for s in samples1 if s[0] != "stress"]
    assert tunes["stress"].method == "full" and any(k[0] == "stress" for k in metrics)
    run_id = _only_run(store)
    weights = home / run_id / "stress" / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:  # whole tensors, not one rank's shards
        embed = f.get_tensor(next(k for k in f.keys() if "embed_tokens" in k))
    assert embed.shape[0] > 100
    done = subprocess.run(_assure("verify", run_id, "--db", store.url), env=_env(Path("/nonexistent")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "INTACT" in done.stdout, done.stdout + done.stderr


def test_sharded_weights_give_the_same_run(sharded_weights, sharded, runs):
    """Loading the weights in shards changes where they live, not what is computed: every sample of every
    stage equals the run that shards only its training state, and the base and tuned stages equal one
    process's (the LoRA adapter is merged into the weights before they are sharded for the tuned stage)."""
    store, home = sharded_weights
    metrics, samples, tunes = _results(store)
    metrics_t, samples_t, tunes_t = _results(sharded[0])
    _, samples1, _ = _results(runs[1])
    assert samples == samples_t and metrics == metrics_t and len(samples) > 1000
    assert [s for s in samples if s[0] != "stress"] == [s for s in samples1 if s[0] != "stress"]
    for purpose in ("safety", "stress"):
        assert [loss for _, loss in tunes[purpose].loss_curve] == pytest.approx(
            [loss for _, loss in tunes_t[purpose].loss_curve], rel=1e-4)
        assert tunes[purpose].tokens_seen == tunes_t[purpose].tokens_seen
    run_id = _only_run(store)
    assert [p.name for p in home.iterdir()] == [run_id]
    done = subprocess.run(_assure("verify", run_id, "--db", store.url), env=_env(Path("/nonexistent")),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "INTACT" in done.stdout, done.stdout + done.stderr


def test_vllm_is_not_started_once_per_rank(monkeypatch):
    """Under a launcher each rank would start its own vLLM engine: ``auto`` takes transformers, ``vllm`` is refused."""
    import torch

    from assurance.backends import resolve_backend
    from assurance.models import vllm_backend
    from assurance.plan import PlanError

    monkeypatch.setattr(vllm_backend, "available", lambda: True)  # as on a GPU machine with vllm installed
    cuda = torch.device("cuda")  # a device name only: nothing is allocated
    assert resolve_backend("auto", cuda) == "vllm"
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_backend("auto", cuda) == "transformers"
    with pytest.raises(PlanError, match="several processes"):
        resolve_backend("vllm", cuda)


@pytest.mark.parametrize("section", ["finetune", "stress"])
def test_fsdp_with_checkpoints_is_a_plan_error(section):
    from assurance.plan import PlanError, plan_from_dict

    with pytest.raises(PlanError, match=f"{section}.*checkpoint_every must be 0 with parallel: fsdp"):
        plan_from_dict({section: {"parallel": "fsdp", "checkpoint_every": 5}}, source="plan.yaml")
    assert getattr(plan_from_dict({section: {"parallel": "fsdp"}}, source="plan.yaml"), section).parallel == "fsdp"
