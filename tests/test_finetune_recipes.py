"""Recipes: safety triplets, deep-alignment augmentation, the constrained objective, stress, records."""

from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from assurance.finetune.augment import draw_prefix, load_triplets
from assurance.finetune.batches import IGNORE, Examples, collate, epoch_batches
from assurance.finetune.chat_data import DataError
from assurance.finetune.mixing import mix
from assurance.finetune.objectives import TokenLogProbs, answer_betas, constrained_loss, position_betas, token_logprobs
from assurance.finetune.recipes import build_mix, data_sources, finetune_record, stress_finetune
from assurance.finetune.trainer import lr_at, train
from assurance.plan import ConstrainedSpec, FinetuneSpec, LoraSpec, PlanError, StressSpec, plan_from_dict
from _finetune import CONVS, TRIPLETS, make_model, write

REAL = Path(__file__).resolve().parents[2] / "shared/data/deep-alignment-safety-data/gemma3_safety_data_direct.jsonl"
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


def spec(**kw) -> FinetuneSpec:
    base = dict(method="full", max_steps=6, lr=1e-3, batch_size=4, warmup_steps=1, max_length=64)
    base.update(kw)
    return FinetuneSpec(**base)


# ----------------------------------------------------------------------------- plan

def test_plan_recipes_and_stress_defaults():
    p = plan_from_dict({"finetune": {"recipe": "deep-alignment+constrained", "constrained": {"beta_rest": 0.2}},
                        "stress": {"max_steps": 5}})
    assert p.finetune.recipe == "deep-alignment+constrained" and p.finetune.constrained.beta_rest == 0.2
    assert p.finetune.constrained.beta_first == 0.5 and p.finetune.deep_alignment.max_prefix_tokens == 100
    assert p.stress.enabled and p.stress.data == "builtin:benign_stress" and p.stress.max_steps == 5
    with pytest.raises(PlanError, match="finetune.recipe"):
        plan_from_dict({"finetune": {"recipe": "dpo"}})
    with pytest.raises(PlanError, match="stress.steps: unknown field"):
        plan_from_dict({"stress": {"steps": 5}})
    assert "dataset:triplets" in data_sources(p.finetune)
    assert "dataset:triplets" not in data_sources(FinetuneSpec())


# ----------------------------------------------------------------------------- triplets

def test_triplet_loader_validates_rows(tmp_path):
    p = write(tmp_path / "t.jsonl", [TRIPLETS[0], "", {**TRIPLETS[1], "id": 3}])
    assert load_triplets(str(p)) == [TRIPLETS[0], TRIPLETS[1]]
    bad = write(tmp_path / "bad.jsonl", [TRIPLETS[0], {"instruction": "x", "harmful": "y"}])
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: refusal is required"):
        load_triplets(str(bad))
    bad = write(tmp_path / "bad2.jsonl", [TRIPLETS[0], TRIPLETS[1], {**TRIPLETS[2], "harmful": "  "}])
    with pytest.raises(DataError, match=r"bad2\.jsonl line 3: harmful must be a non-empty string"):
        load_triplets(str(bad))
    bad = write(tmp_path / "bad3.jsonl", ['{"instruction": '])
    with pytest.raises(DataError, match=r"bad3\.jsonl line 1: invalid JSON"):
        load_triplets(str(bad))
    assert len(load_triplets("builtin:safety_triplets")) == 154


@pytest.mark.skipif(not REAL.is_file(), reason="the public deep-alignment data is not present")
def test_real_public_triplet_file_loads():
    rows = load_triplets(str(REAL))
    assert len(rows) == 256 and all(r["instruction"] and r["harmful"] and r["refusal"] for r in rows)


# ----------------------------------------------------------------------------- augmentation

def test_prefix_draws_are_seeded_fresh_each_epoch_and_in_range():
    draws = [draw_prefix(0, 0, i, 40, 0.5, 100) for i in range(2000)]
    assert draws == [draw_prefix(0, 0, i, 40, 0.5, 100) for i in range(2000)]  # deterministic
    assert draws != [draw_prefix(0, 1, i, 40, 0.5, 100) for i in range(2000)]  # redrawn per epoch
    assert draws != [draw_prefix(1, 0, i, 40, 0.5, 100) for i in range(2000)]  # seeded
    assert abs(sum(k == 0 for k in draws) / 2000 - 0.5) < 0.05
    ks = [k for k in draws if k]
    assert min(ks) == 1 and max(ks) == 40  # k uniform in 1..min(100, len)
    assert max(draw_prefix(0, 0, i, 500, 0.5, 100) for i in range(500)) == 100


def test_augmented_masking_trains_only_on_the_refusal(tokenizer):
    data = Examples(tokenizer, [("safety", t) for t in TRIPLETS], 256, seed=0, augment=True)
    seen_k = set()
    for e in range(6):
        for s in data.epoch(e):
            tt = data.items[s.key[0]][1]
            k = s.key[1]
            seen_k.add(k > 0)
            n_prompt = len(tt.prompt)
            assert s.ids[:n_prompt] == tt.prompt and s.ids[n_prompt:n_prompt + k] == tt.harmful[:k]
            assert all(y == IGNORE for y in s.labels[:n_prompt + k])  # the harmful prefix is never a target
            assert s.labels[n_prompt + k:] == s.ids[n_prompt + k:] == tt.answer
            assert tokenizer.decode(s.ids[n_prompt + k:]).startswith(TRIPLETS[s.key[0]]["refusal"])
            assert s.start == n_prompt
    assert seen_k == {True, False}
    plain = Examples(tokenizer, [("safety", t) for t in TRIPLETS], 256, seed=0, augment=False)
    assert all(s.key[1] == 0 for s in plain.epoch(0))


def test_bucketing_covers_every_example_once_with_less_padding(tokenizer):
    convs = [[{"role": "user", "content": "q" * (i % 17 + 1)}, {"role": "assistant", "content": "a " * (i % 29 + 1)}]
             for i in range(200)]
    data = Examples(tokenizer, [("utility", c) for c in convs], 256, seed=0, augment=False)
    seqs = data.epoch(0)
    pads = {}
    for bucket in (True, False):
        b = epoch_batches(seqs, 8, 0, 0, bucket)
        assert sorted(i for x in b for i in x) == list(range(200))
        assert b == epoch_batches(seqs, 8, 0, 0, bucket)
        pads[bucket] = sum(max(len(seqs[i].ids) for i in x) * len(x) - sum(len(seqs[i].ids) for i in x) for x in b)
    assert pads[True] < 0.3 * pads[False]


# ----------------------------------------------------------------------------- constrained objective

def test_betas_by_answer_position(tokenizer):
    assert position_betas(7, 0.5, 2.0, 5, 0.1) == [0.5, 2, 2, 2, 2, 0.1, 0.1]
    data = Examples(tokenizer, [("safety", CONVS[0])], 64, seed=0, augment=False)
    b = collate(data.epoch(0), 0)
    betas = answer_betas(b["labels"], b["start"], ConstrainedSpec())
    assert betas.tolist()[:6] == pytest.approx(position_betas(6, 0.5, 2.0, 5, 0.1))


def test_constrained_tends_to_cross_entropy_as_beta_goes_to_zero():
    torch.manual_seed(0)
    logp, ref = -torch.rand(50) * 3, -torch.rand(50) * 3
    for b in (1e-2, 1e-3, 1e-4):
        loss = constrained_loss(logp.double(), ref.double(), torch.full((50,), b, dtype=torch.double))
        # -(2/b) log sigmoid(b x) = 2 log2 / b - x + O(b): cross-entropy (-logp) up to a constant
        assert torch.allclose(loss - 2 * math.log(2) / b, -logp.double() + ref.double(), atol=10 * b)


def test_constrained_gradient_is_weighted_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(12, 30, dtype=torch.double, requires_grad=True)
    targets = torch.randint(0, 30, (12,))
    ref = token_logprobs(torch.randn(12, 30, dtype=torch.double), targets).double()
    beta = torch.tensor(position_betas(12, 0.5, 2.0, 5, 0.1), dtype=torch.double)
    lp = -torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    g_con = torch.autograd.grad(constrained_loss(lp, ref, beta).sum(), logits)[0]
    lp = -torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    weight = 2 * torch.sigmoid(beta * (ref - lp.detach()))
    g_ce = torch.autograd.grad((-lp * weight).sum(), logits)[0]
    assert torch.allclose(g_con, g_ce, atol=1e-12)
    assert not torch.allclose(weight, torch.ones_like(weight))


def test_fast_head_matches_full_logits(tokenizer):
    model = make_model(tokenizer)
    data = Examples(tokenizer, [("utility", c) for c in CONVS], 64, seed=0, augment=False)
    b = collate(data.epoch(0), tokenizer.pad_token_id)
    net = TokenLogProbs(model)
    fast = net(b["input_ids"], b["attention_mask"], b["labels"])
    net.fast = False
    assert torch.allclose(fast, net(b["input_ids"], b["attention_mask"], b["labels"]), atol=1e-5)


def test_constrained_first_step_equals_sft_then_holds_closer(tokenizer, tmp_path):
    # At the start the model is its own reference: every weight w_t is 1, so step 1 is an SFT step.
    m = mix(CONVS, None, 1.0, 0)
    one = {r: train(make_model(tokenizer), tokenizer, m, spec(recipe=r, max_steps=1), seed=0, device=CPU,
                    dtype=torch.float32, output_dir=tmp_path / f"one-{r}").model.state_dict()
           for r in ("sft", "constrained")}
    assert all(torch.allclose(one["sft"][k], one["constrained"][k], atol=1e-6) for k in one["sft"])
    # Later, with large betas everywhere, the constrained run drifts less from the start.
    start = make_model(tokenizer).state_dict()
    tight = ConstrainedSpec(beta_first=20, beta_early=20, beta_rest=20)
    drift = {}
    for r in ("sft", "constrained"):
        sd = train(make_model(tokenizer), tokenizer, m, spec(recipe=r, max_steps=20, lr=3e-3, constrained=tight),
                   seed=0, device=CPU, dtype=torch.float32, output_dir=tmp_path / r).model.state_dict()
        drift[r] = sum(float((sd[k] - start[k]).norm()) for k in sd)
    assert drift["constrained"] < drift["sft"]


# ----------------------------------------------------------------------------- recipes, stress, record

def test_deep_alignment_constrained_lora_run_records_everything(tokenizer, tmp_path):
    safety, triplets = tmp_path / "s.jsonl", tmp_path / "t.jsonl"
    write(safety, [{"messages": c} for c in CONVS[:3]])
    write(triplets, TRIPLETS)
    s = spec(recipe="deep-alignment+constrained", method="lora", lora=LoraSpec(r=4, alpha=8), max_steps=4,
             safety_data=str(safety), utility_data=None, triplet_data=str(triplets), schedule="cosine")
    mixed = build_mix(s, seed=0)
    assert mixed.n_safety == 6 and mixed.n_utility == 0
    seen = []
    r = train(make_model(tokenizer), tokenizer, mixed, s, seed=0, device=CPU, dtype=torch.float32,
              output_dir=tmp_path / "out", progress=seen.append)
    assert r.objective == "constrained" and r.augmentation == "deep-alignment"
    da = r.recipe_settings["deep_alignment"]
    assert da["triplets"] == 3 and da["recovery_examples_seen"] > 0
    assert r.recipe_settings["constrained"]["beta_early"] == 2.0 and len(r.literature) == 2
    assert all({"loss", "lr", "tokens_per_second"} <= set(x) for x in seen)
    rec = finetune_record(r, purpose="safety", seed=0, base_model_digest="sha256:x")
    assert rec.objective == "constrained" and rec.tokens_total == r.tokens_total and "ICLR 2025" in rec.literature[0]
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_lr_schedules():
    lin, cos = spec(max_steps=10, warmup_steps=2, lr=1.0), spec(max_steps=10, warmup_steps=2, lr=1.0, schedule="cosine")
    assert lr_at(0, lin) == lr_at(0, cos) == pytest.approx(1 / 3)
    assert lr_at(2, lin) == lr_at(2, cos) == 1.0
    assert lr_at(6, lin) == pytest.approx(0.5) and lr_at(6, cos) == pytest.approx(0.5)
    assert lr_at(4, cos) > lr_at(4, lin) and lr_at(9, cos) < lr_at(9, lin)


def test_stress_merges_the_safety_adapter_and_trains_a_fresh_one(tokenizer, tmp_path):
    r = train(make_model(tokenizer), tokenizer, mix(CONVS, None, 1.0, 0),
              spec(method="lora", lora=LoraSpec(r=4, alpha=8), max_steps=3, lr=1e-2),
              seed=0, device=CPU, dtype=torch.float32, output_dir=tmp_path / "safety")
    ids = tokenizer("<|user|>\nhi<|end|>\n<|assistant|>\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned_logits = r.model(ids).logits
    benign = write(tmp_path / "benign.jsonl", [{"messages": c} for c in CONVS[1:4]])
    s = stress_finetune(r.model, tokenizer, StressSpec(data=str(benign), max_steps=2, batch_size=2),
                        seed=0, device=CPU, dtype=torch.float32, output_dir=tmp_path / "stress")
    assert (tmp_path / "stress" / "adapter_model.safetensors").is_file()
    with torch.no_grad(), s.model.disable_adapter():  # the merged base is exactly the tuned model
        assert torch.allclose(s.model(ids).logits, tuned_logits, atol=1e-5)
    rec = finetune_record(s, purpose="stress", seed=0, base_model_digest="sha256:x")
    assert rec.purpose == "stress" and rec.recipe == "sft" and rec.n_safety_examples == 0
    assert rec.hyperparameters["max_steps"] == 2 and "2024" in rec.literature[0]


def test_stress_runs_can_checkpoint_like_safety_runs():
    from assurance.finetune.recipes import stress_spec
    from assurance.plan import StressSpec

    spec = stress_spec(StressSpec(checkpoint_every=5, max_steps=20))
    assert spec.checkpoint_every == 5 and spec.recipe == "sft" and spec.max_steps == 20
