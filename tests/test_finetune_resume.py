"""Checkpoint and resume: a real SIGKILL mid-run, then a restart, ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file

from assurance.finetune import checkpoint as ckpt
from assurance.finetune.mixing import mix
from assurance.finetune.recipes import finetune_record
from assurance.finetune.trainer import train
from assurance.plan import FinetuneSpec, LoraSpec
from _finetune import CONVS, TRIPLETS, make_model

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")
SPEC = dict(recipe="deep-alignment+constrained", method="full", max_steps=10, lr=2e-3, batch_size=3,
            warmup_steps=2, max_length=64, checkpoint_every=3, keep_checkpoints=2)

# The child trains from the saved start model; SLOW makes each step take long enough to be killed mid-run.
CHILD = r"""
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(1)
from transformers import AutoTokenizer, LlamaForCausalLM
from assurance.finetune.mixing import mix
from assurance.finetune.trainer import train
from assurance.plan import FinetuneSpec
work = sys.argv[1]
args = json.load(open(os.path.join(work, "args.json")))
tok = AutoTokenizer.from_pretrained(os.path.join(work, "tok"))
model = LlamaForCausalLM.from_pretrained(os.path.join(work, "init"))
slow = os.environ.get("SLOW") == "1"
def progress(info):
    print("step", info["step"], flush=True)
    if slow:
        time.sleep(0.4)
r = train(model, tok, mix(args["examples"], None, 1.0, 0), FinetuneSpec(**args["spec"]), seed=0,
          device=torch.device("cpu"), dtype=torch.float32, output_dir=os.path.join(work, "out"),
          progress=progress, resume=True)
print("RESULT", json.dumps({"resumed_from_step": r.resumed_from_step, "curve": r.loss_curve}), flush=True)
"""


def _examples():
    return [c for c in CONVS] + TRIPLETS


def _load_start(work: Path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    return AutoTokenizer.from_pretrained(work / "tok"), LlamaForCausalLM.from_pretrained(work / "init")


def test_sigkill_then_resume_matches_uninterrupted_run(tokenizer, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    tokenizer.save_pretrained(work / "tok")
    make_model(tokenizer).save_pretrained(work / "init")
    (work / "args.json").write_text(json.dumps({"examples": _examples(), "spec": SPEC}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "SLOW": "1"}

    # 1. train in a child process and kill -9 it once the step-6 checkpoint is on disk
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(work)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    target = work / "out" / "checkpoints" / "step-00000006"
    deadline = time.time() + 120
    while not (target / "meta.json").is_file():
        assert child.poll() is None, child.stdout.read()
        assert time.time() < deadline, "the child never reached its second checkpoint"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (work / "out" / "model.safetensors").exists(), "killed too late: training had finished"
    assert [p.name for p in ckpt.complete(work / "out" / "checkpoints")][-1] == "step-00000006"

    # 2. start it again: it resumes from step 6 and finishes
    env["SLOW"] = "0"
    done = subprocess.run([sys.executable, "-c", CHILD, str(work)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["resumed_from_step"] == 6
    assert not (work / "out" / "checkpoints").exists()  # removed once the run finished

    # 3. an uninterrupted run from the same start gives bit-identical weights and the same loss curve
    tok, model = _load_start(work)
    ref = train(model, tok, mix(_examples(), None, 1.0, 0), FinetuneSpec(**SPEC), seed=0, device=CPU,
                dtype=torch.float32, output_dir=tmp_path / "straight")
    a, b = load_file(work / "out" / "model.safetensors"), load_file(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [tuple(x) for x in result["curve"]] == ref.loss_curve


def test_lora_with_dropout_resumes_identically_after_a_crash(tokenizer, tmp_path):
    s = FinetuneSpec(method="lora", lora=LoraSpec(r=4, alpha=8, dropout=0.1), max_steps=7, lr=1e-2,
                     batch_size=3, warmup_steps=1, max_length=64, checkpoint_every=2, recipe="deep-alignment")
    m = mix(_examples(), None, 1.0, 0)

    def crash(info):
        if info["step"] == 5:
            raise KeyboardInterrupt  # an interruption between checkpoints (step 4 is the latest)

    with pytest.raises(KeyboardInterrupt):
        train(make_model(tokenizer), tokenizer, m, s, seed=0, device=CPU, dtype=torch.float32,
              output_dir=tmp_path / "crashed", progress=crash)
    torch.manual_seed(123)  # disturb the global RNG: the checkpoint must restore it
    state = ckpt.state_digest(tmp_path / "crashed" / "checkpoints" / "step-00000004")
    resumed = train(make_model(tokenizer), tokenizer, m, s, seed=0, device=CPU, dtype=torch.float32,
                    output_dir=tmp_path / "crashed", resume=True)
    straight = train(make_model(tokenizer), tokenizer, m, s, seed=0, device=CPU, dtype=torch.float32,
                     output_dir=tmp_path / "straight")
    assert resumed.resumed_from_step == 4 and straight.resumed_from_step is None
    # the ledger names the exact checkpoint state the fine-tune continued from
    assert resumed.resumed_from_checkpoint_digest == state and straight.resumed_from_checkpoint_digest is None
    record = finetune_record(resumed, purpose="safety", seed=0, base_model_digest="sha256:" + "0" * 64)
    assert (record.resumed_from_step, record.resumed_from_checkpoint_digest) == (4, state)
    a = load_file(tmp_path / "crashed" / "adapter_model.safetensors")
    b = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.loss_curve == straight.loss_curve and resumed.tokens_seen == straight.tokens_seen


def test_torn_checkpoints_are_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    ckpt.save(root, 2, {"step": 2}, {"step": 2}, keep=2)
    (root / ".tmp-step-00000004-999").mkdir()  # a write killed before its rename
    (root / "step-00000006").mkdir()  # no files: not a complete checkpoint
    assert ckpt.latest(root).name == "step-00000002"
    for step in (4, 8, 10):
        ckpt.save(root, step, {"step": step}, {"step": step}, keep=2)
    assert [p.name for p in ckpt.complete(root)] == ["step-00000008", "step-00000010"]
    assert ckpt.load(ckpt.latest(root))["step"] == 10
    assert not any(p.name.startswith(".tmp-step-00000010") for p in root.iterdir())
