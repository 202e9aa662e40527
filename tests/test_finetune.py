"""Tests for assurance.finetune: chat data, mixing and the trainer, on a tiny local model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from assurance.finetune.chat_data import DataError, describe_source, load_chat_jsonl
from assurance.finetune.mixing import mix
from assurance.finetune.batches import IGNORE, encode
from assurance.finetune.trainer import TrainingDiverged, train
from assurance.plan import FinetuneSpec, LoraSpec
from _finetune import CONVS, conv, make_model, write

pytestmark = pytest.mark.usefixtures("one_thread")


def spec(**kw) -> FinetuneSpec:
    base = dict(method="full", max_steps=30, lr=1e-3, batch_size=4, warmup_steps=2, max_length=64)
    base.update(kw)
    return FinetuneSpec(**base)


def run(tokenizer, tmp_path, name="out", seed=0, model=None, **kw):
    m = model if model is not None else make_model(tokenizer)
    return train(m, tokenizer, mix(CONVS, None, 1.0, seed), spec(**kw), seed=seed,
                 device=torch.device("cpu"), dtype=torch.float32, output_dir=tmp_path / name)


# ----------------------------------------------------------------------------- chat data

def test_load_valid_skips_blank_lines(tmp_path):
    p = write(tmp_path / "ok.jsonl", [{"messages": CONVS[0]}, "", "   ", {"messages": CONVS[6], "id": 7}])
    assert load_chat_jsonl(str(p)) == [CONVS[0], CONVS[6]]
    assert describe_source(str(p)) == str(p.resolve())
    assert describe_source("builtin:safety") == "builtin:safety"


def test_malformed_json_names_file_and_line(tmp_path):
    p = write(tmp_path / "safety.jsonl", [{"messages": CONVS[0]}, "", '{"messages": [}'])
    with pytest.raises(DataError, match=r"safety\.jsonl line 3: invalid JSON"):
        load_chat_jsonl(str(p))


@pytest.mark.parametrize("row, expected", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]},
     "line 2: messages[1].role must be one of system, user, assistant"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
     "line 2: messages[1].content must be a non-empty string"),
    ({"messages": [{"role": "user", "content": "hi", "name": "x"}, {"role": "assistant", "content": "a"}]},
     "line 2: messages[0].name unknown field"),
    ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
     "line 2: the last message must be from the assistant"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]},
     "line 2: messages must include at least one user message"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
     "line 2: messages[0].content must be a string"),
])
def test_bad_rows_name_the_field(tmp_path, row, expected):
    p = write(tmp_path / "d.jsonl", [{"messages": CONVS[1]}, row])
    with pytest.raises(DataError) as err:
        load_chat_jsonl(str(p))
    assert str(err.value) == f"{p} {expected}"


def test_missing_empty_and_unknown_builtin(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: data file not found"):
        load_chat_jsonl(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="empty"):
        load_chat_jsonl(str(write(tmp_path / "e.jsonl", ["", ""])))
    with pytest.raises(DataError, match="builtin:no-such-set"):
        load_chat_jsonl("builtin:no-such-set")


# ----------------------------------------------------------------------------- mixing

@pytest.mark.parametrize("n_s, n_u, ratio", [(10, 50, 0.5), (7, 3, 0.3), (10, 4, 0.25), (5, 100, 0.9), (3, 2, 0.1)])
def test_mix_ratio_close_and_deterministic(n_s, n_u, ratio):
    safety = [conv(f"s{i}", "no") for i in range(n_s)]
    utility = [conv(f"u{i}", "yes") for i in range(n_u)]
    a, b = mix(safety, utility, ratio, seed=3), mix(safety, utility, ratio, seed=3)
    assert a.examples == b.examples
    assert a.n_safety == n_s and len(a.examples) == a.n_safety + a.n_utility
    assert abs(a.n_utility - n_s * (1 - ratio) / ratio) <= 1
    assert a.achieved_ratio == pytest.approx(n_s / (n_s + a.n_utility))
    used = [c[0]["content"] for s, c in a.examples if s == "utility"]
    # without replacement until the pool runs out
    assert len(set(used)) == min(len(used), n_u)
    assert mix(safety, utility, ratio, seed=4).examples != a.examples


def test_mix_safety_only():
    safety = [conv(f"s{i}", "no") for i in range(4)]
    for m in (mix(safety, None, 0.5, 0), mix(safety, [conv("u", "y")], 1.0, 0)):
        assert m.n_utility == 0 and m.achieved_ratio == 1.0 and len(m.examples) == 4


# ----------------------------------------------------------------------------- trainer

def test_masking_covers_prompt_only(tokenizer):
    conv = CONVS[6]
    ids, labels = encode(tokenizer, conv, max_length=256)
    assert len(ids) == len(labels)
    n_prompt = next(i for i, y in enumerate(labels) if y != IGNORE)
    assert all(y == IGNORE for y in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]
    prompt = tokenizer.decode(ids[:n_prompt])
    answer = tokenizer.decode(ids[n_prompt:])
    assert prompt == "<|system|>\nBe brief.<|end|>\n<|user|>\nSay hello.<|end|>\n<|assistant|>\n"
    assert answer == "Hello!<|end|>\n"
    # truncation keeps the label/input alignment
    ids2, labels2 = encode(tokenizer, conv, max_length=n_prompt + 2)
    assert ids2 == ids[: n_prompt + 2] and labels2 == labels[: n_prompt + 2]


def test_template_without_prefix_property_is_rejected(tokenizer):
    bad = tokenizer.chat_template.replace("<|assistant|>\n{% endif %}", "<|assistant|>PROMPT{% endif %}")
    old, tokenizer.chat_template = tokenizer.chat_template, bad
    try:
        with pytest.raises(ValueError, match="not a prefix"):
            encode(tokenizer, CONVS[0], 64)
    finally:
        tokenizer.chat_template = old


def test_full_training_reduces_loss_and_saves(tokenizer, tmp_path):
    seen = []
    m = make_model(tokenizer)
    r = train(m, tokenizer, mix(CONVS, None, 1.0, 0), spec(lr=3e-3), seed=0, device=torch.device("cpu"),
              dtype=torch.float32, output_dir=tmp_path / "full", progress=seen.append)
    first, last = r.loss_curve[0][1], r.loss_curve[-1][1]
    assert r.steps == 30 and len(seen) == 30 and seen[-1]["step"] == 30
    assert last < 0.6 * first, (first, last)
    assert r.tokens_seen > 0 and r.tokens_total > r.tokens_seen and r.tokens_per_second > 0
    assert r.achieved_token_ratio == 1.0 and r.peak_memory_bytes > 0
    assert r.hyperparameters["effective_batch_size"] == 4 and "lora" not in r.hyperparameters
    assert (tmp_path / "full" / "model.safetensors").is_file()
    assert (tmp_path / "full" / "tokenizer.json").is_file()
    assert not r.model.training


def test_token_ratio_and_grad_accum(tokenizer, tmp_path):
    mixed = mix(CONVS[:4], CONVS[4:], 0.5, seed=1)
    r = train(make_model(tokenizer), tokenizer, mixed, spec(max_steps=3, batch_size=2, grad_accum=2), seed=1,
              device=torch.device("cpu"), dtype=torch.float32, output_dir=tmp_path / "mix")
    assert r.n_safety == 4 and r.n_utility == 4 and r.achieved_ratio == 0.5
    assert 0.0 < r.achieved_token_ratio < 1.0
    assert r.hyperparameters["effective_batch_size"] == 4


def test_lora_trains_adapter_only(tokenizer, tmp_path):
    model = make_model(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lora = LoraSpec(r=4, alpha=8, target_modules=["q_proj", "v_proj", "not_a_module"])
    r = run(tokenizer, tmp_path, "lora", model=model, method="lora", lora=lora, max_steps=10, lr=1e-2)
    trainable = [n for n, p in r.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = r.model.get_base_model().state_dict()
    for k, v in before.items():
        key = k.replace("q_proj.weight", "q_proj.base_layer.weight").replace("v_proj.weight", "v_proj.base_layer.weight")
        assert torch.equal(base[key], v), k
    assert any(not torch.all(p == 0) for n, p in r.model.named_parameters() if "lora_B" in n)
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    assert r.hyperparameters["lora"]["target_modules_used"] == ["q_proj", "v_proj"]
    assert r.loss_curve[-1][1] < r.loss_curve[0][1]
    out = r.model.generate(**tokenizer("<|user|>\nhi<|end|>\n<|assistant|>\n", return_tensors="pt"),
                           max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 0


def test_lora_without_matching_modules_errors(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="none of the LoRA target_modules"):
        run(tokenizer, tmp_path, method="lora", lora=LoraSpec(target_modules=["c_attn"]), max_steps=1)


def test_same_seed_same_weights(tokenizer, tmp_path):
    a = run(tokenizer, tmp_path, "a", seed=5, max_steps=8).model.state_dict()
    b = run(tokenizer, tmp_path, "b", seed=5, max_steps=8).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = run(tokenizer, tmp_path, "c", seed=6, max_steps=8).model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_raises(tokenizer, tmp_path):
    model = make_model(tokenizer)
    model.lm_head.register_forward_hook(lambda mod, inp, out: out * float("nan"))
    with pytest.raises(TrainingDiverged, match="diverged at step 1") as err:
        run(tokenizer, tmp_path, model=model, max_steps=5)
    assert err.value.step == 1 and err.value.loss != err.value.loss  # NaN


def test_huge_lr_diverges(tokenizer, tmp_path):
    with pytest.raises(TrainingDiverged):
        run(tokenizer, tmp_path, lr=1e30, warmup_steps=0, max_steps=10, max_grad_norm=1e30)
