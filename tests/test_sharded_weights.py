"""``model.parallel: fsdp``: weights loaded straight into shards, and generation that keeps the ranks in step.

Two real processes under torch's launcher (gloo, CPU) load the built-in model in shards: each holds half
of every weight, and their sharded generation of an uneven share of prompts equals one process's whole
model. The whole pipeline under ``model.parallel: fsdp`` is in tests/test_multiprocess.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from assurance.models.generate import generate
from assurance.models.loading import load_model, resolve_model_path
from assurance.plan import PlanError, plan_from_dict

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_sharded_worker.py"


@pytest.fixture(scope="module")
def ranks_seen(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "rank"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return [json.loads(Path(f"{out}.{r}.json").read_text(encoding="utf-8")) for r in (0, 1)]


def test_each_rank_holds_half_of_every_weight(ranks_seen):
    whole, _ = load_model(resolve_model_path("builtin:tiny-chat"), device="cpu", dtype=torch.float32)
    total = sum(p.numel() for p in whole.parameters())
    for seen in ranks_seen:
        assert seen["world"] == 2 and seen["total"] == total
        # dim-0 shards: half of each tensor, rounded per tensor
        assert total / 2 - 1000 <= seen["local"] <= total / 2 + 1000, (seen["local"], total)


def test_sharded_generation_equals_the_whole_model(ranks_seen):
    from _sharded_worker import PROMPTS

    model, tokenizer = load_model(resolve_model_path("builtin:tiny-chat"), device="cpu", dtype=torch.float32)
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    expected = generate(model, tokenizer, convs, max_new_tokens=12, batch_size=1)
    assert ranks_seen[0]["outputs"] == expected
    assert ranks_seen[1]["outputs"] == expected  # gathered in item order on every rank


def test_sharded_weights_need_sharded_fine_tunes_and_no_vllm():
    with pytest.raises(PlanError, match="finetune.parallel must be fsdp when model.parallel is fsdp"):
        plan_from_dict({"model": {"parallel": "fsdp"}}, source="plan.yaml")
    with pytest.raises(PlanError, match="stress.parallel must be fsdp"):
        plan_from_dict({"model": {"parallel": "fsdp"}, "finetune": {"parallel": "fsdp"}}, source="plan.yaml")
    with pytest.raises(PlanError, match="battery.backend: vllm cannot evaluate"):
        plan_from_dict({"model": {"parallel": "fsdp"}, "finetune": {"parallel": "fsdp"},
                        "stress": {"parallel": "fsdp"}, "battery": {"backend": "vllm"}}, source="plan.yaml")
    ok = plan_from_dict({"model": {"parallel": "fsdp"}, "finetune": {"parallel": "fsdp"},
                         "stress": {"parallel": "fsdp"}}, source="plan.yaml")
    assert ok.model.parallel == "fsdp"
    # an evaluate-only run has no fine-tune to shard
    assert plan_from_dict({"model": {"parallel": "fsdp"}, "finetune": {"enabled": False}},
                          source="plan.yaml").model.parallel == "fsdp"
