"""Shared by the resume tests: a plan small enough to run in seconds, and a real `assure run` killed with
SIGKILL mid fine-tune (``killed``, a module fixture: each module that imports it gets its own run)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# `assure run` in a child process, each training step slowed (the weights are untouched) so the
# kill lands mid fine-tune, between checkpoints, however fast the machine is.
SLOW_CLI = r"""
import sys, time
import assurance.stages as stages
plain = stages.train_progress
def slow(advance, progress):
    report = plain(advance, progress)
    def step(info):
        report(info)
        time.sleep(0.15)
    return step
stages.train_progress = slow
from assurance.cli import app
sys.argv = ["assure", *sys.argv[1:]]
app()
"""


def write_plan(path: Path, model_dir: Path, **finetune) -> Path:
    plan = {
        "name": "resume",
        "model": {"path": str(model_dir)},
        "device": "cpu",
        "cpu_threads": 1,
        "battery": {"suites": ["refusal"], "limit_per_category": 1, "max_new_tokens": 6},
        "finetune": {"method": "full", "max_steps": 40, "batch_size": 4, "warmup_steps": 0, "lr": 1e-3,
                     "checkpoint_every": 5, **finetune},
        "stress": {"enabled": False},
        "report": {"regimes": ["fca"]},
    }
    path.write_text(yaml.safe_dump(plan))
    return path



@pytest.fixture(scope="module")
def killed(tmp_path_factory, tiny_model_dir):
    """A run of the plan killed with SIGKILL once its fine-tune has written a checkpoint."""
    tmp = tmp_path_factory.mktemp("resume")
    model = tmp / "model"
    shutil.copytree(tiny_model_dir, model)  # a private copy: a test changes one of its bytes
    plan = write_plan(tmp / "plan.yaml", model)
    db = f"sqlite:///{tmp / 'evidence.db'}"
    env = {**os.environ, "ASSURE_HOME": str(tmp / "runs"), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", SLOW_CLI, "run", str(plan), "--db", db, "--json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list((tmp / "runs").glob("*/model/checkpoints/step-*/meta.json")):
        assert child.poll() is None, child.stdout.read()
        assert time.time() < deadline, "the run never wrote a fine-tuning checkpoint"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    (run_dir,) = (tmp / "runs").iterdir()
    assert not (run_dir / "model" / "model.safetensors").exists(), "killed too late: the fine-tune had finished"
    return dict(tmp=tmp, model=model, plan=plan, db=db, env=env, run_id=run_dir.name, run_dir=run_dir)
