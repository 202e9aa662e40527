"""Tests for assurance.models: the tiny demo model, safe loading, batched generation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from assurance.models import tiny
from assurance.models.generate import generate, generation_settings, render_prompts
from assurance.models.loading import (
    ModelLoadError,
    describe_accelerator,
    load_model,
    resolve_device,
    resolve_model_path,
)


# One torch thread (the shared ``one_thread`` fixture): steady tiny-model generation on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "\n  And of the United Kingdom?"},
    {"role": "assistant", "content": "London.\n"},
]


# --- the tiny model ---------------------------------------------------------

def test_tiny_folder_is_complete(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "BUILD.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    build = json.loads((tiny_model_dir / "BUILD.json").read_text())
    assert build["builder_version"] == tiny.BUILDER_VERSION and build["seed"] == tiny.SEED
    assert tiny_model_dir.name.startswith(f"tiny-chat-v{tiny.BUILDER_VERSION}-")
    # No half-built temp folders left beside it; a second call reuses the cache.
    assert [p.name for p in tiny_model_dir.parent.iterdir() if p.is_dir()] == [tiny_model_dir.name]
    assert tiny.ensure_tiny_model(tiny_model_dir.parent) == tiny_model_dir


def test_builtin_spec_resolves_to_cache(tiny_model_dir):
    assert resolve_model_path("builtin:tiny-chat") == tiny_model_dir
    with pytest.raises(ModelLoadError, match="builtin:nope"):
        resolve_model_path("builtin:nope")


def test_tokenizer_settings(tiny_model):
    _, tok = tiny_model
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>" and tok.padding_side == "left"
    for special in tiny.SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1


def test_chat_template_prompt_is_strict_prefix(tiny_model):
    _, tok = tiny_model
    for end in (3, 5):
        convo = CONVERSATION[:end]
        prompt = tok.apply_chat_template(convo[:-1], tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(convo, tokenize=False)
        assert full.startswith(prompt) and len(full) > len(prompt)
        assert prompt.endswith("<|assistant|>\n")
        assert full.endswith(convo[-1]["content"] + "<|end|>\n")
        # The trainer masks by token count, so the prefix must hold for tokens too.
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        f_ids = tok(full, add_special_tokens=False)["input_ids"]
        assert f_ids[: len(p_ids)] == p_ids
    assert tok.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True) == (
        "<|system|>\nYou are a careful assistant.<|end|>\n"
        "<|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n"
    )


def test_encode_chat_labels_only_assistant_tokens(tiny_model):
    _, tok = tiny_model
    ids, labels = tiny.encode_chat(tok, CONVERSATION, max_len=512)
    learned = tok.decode([t for t, lab in zip(ids, labels) if lab != -100])
    assert learned == "The capital of France is Paris.<|end|>London.\n<|end|>"


def _utility_file(tmp_path: Path) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"Count to {n}."},
                          {"role": "assistant", "content": " ".join(str(i) for i in range(1, n + 1))}]}
            for n in range(1, 25)]
    path = tmp_path / "utility.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_builder_is_deterministic(tmp_path):
    utility = _utility_file(tmp_path)
    a = tiny.build_tiny_model(tmp_path / "a", train_steps=8, utility_file=utility)
    b = tiny.build_tiny_model(tmp_path / "b", train_steps=8, utility_file=utility)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert json.loads((a / "BUILD.json").read_text())["training"]["steps"] == 8


# --- loading ----------------------------------------------------------------

def test_resolve_device_auto_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="cuda"):
        resolve_device("cuda")


def test_describe_accelerator_cpu():
    assert describe_accelerator(torch.device("cpu")).startswith("CPU: ")


def test_missing_folder_is_refused(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="does not exist") as err:
        resolve_model_path(str(missing))
    assert str(missing) in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json") as err:
        load_model(tmp_path / "empty", device="cpu", dtype=torch.float32)
    assert str(tmp_path / "empty") in str(err.value)


def test_pickle_only_folder_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelLoadError, match="pickle") as err:
        load_model(folder, device="cpu", dtype=torch.float32)
    assert str(folder) in str(err.value) and "pytorch_model.bin" in str(err.value)


def test_remote_code_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="auto_map") as err:
        load_model(folder, device="cpu", dtype=torch.float32)
    assert str(folder) in str(err.value)


def test_transformers_errors_are_wrapped(tiny_model_dir, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ModelLoadError) as err:
        load_model(folder, device="cpu", dtype=torch.float32)
    assert str(folder) in str(err.value)


def test_loaded_model_is_ready(tiny_model):
    model, tok = tiny_model
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32


# --- generation -------------------------------------------------------------

def _prompts(n: int = 20) -> list[list[dict]]:
    words = "please explain the water cycle and prime numbers to me briefly with an example".split()
    # Lengths from one word to ~60 so batches really need padding.
    return [[{"role": "user", "content": " ".join(words[(i + j) % len(words)] for j in range(1 + 3 * i))}]
            for i in range(n)]


def test_batched_equals_one_at_a_time(tiny_model):
    model, tok = tiny_model
    convs = _prompts()
    done = []
    batched = generate(model, tok, convs, max_new_tokens=24, batch_size=8, progress=done.append)
    single = [generate(model, tok, [c], max_new_tokens=24, batch_size=1)[0] for c in convs]
    assert batched == single
    assert done == [8, 8, 4]


def test_prefill_returns_only_the_continuation(tiny_model):
    model, tok = tiny_model
    convs = _prompts(6)
    # Prefill with the first k tokens of the model's own greedy reply: the
    # continuation must be exactly the rest of that reply. (Only k whose text
    # re-encodes to the same tokens qualify; a tiny model often emits
    # non-canonical splits of a word.)
    checked = 0
    for conv, prompt in zip(convs, render_prompts(tok, convs)):
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids])
        reply = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24,
                               do_sample=False, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id)[0, len(p_ids):].tolist()
        for k in range(len(reply) - 1, 0, -1):
            prefill = tok.decode(reply[:k])
            if tok(prompt + prefill, add_special_tokens=False)["input_ids"] == p_ids + reply[:k]:
                break
        else:
            continue
        out = generate(model, tok, [conv], max_new_tokens=24 - k, batch_size=1, prefills=[prefill])[0]
        assert out == tok.decode(reply[k:], skip_special_tokens=True).strip()
        checked += 1
    assert checked, "no reply could be split into a prefill and a continuation"
    # And in general the returned text is just what follows prompt + prefill.
    prefills = ["Sure, here is"] * len(convs)
    outs = generate(model, tok, convs, max_new_tokens=12, batch_size=3, prefills=prefills)
    for text, prompt in zip(outs, render_prompts(tok, convs, prefills)):
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                             do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        assert text == tok.decode(new[0, ids.shape[1]:], skip_special_tokens=True).strip()
        assert not text.startswith("Sure, here is")
    with pytest.raises(ValueError, match="prefills"):
        generate(model, tok, convs, max_new_tokens=4, batch_size=2, prefills=["x"])


def test_generation_settings(tiny_model):
    model, tok = tiny_model
    settings = generation_settings(model, tok, max_new_tokens=16, batch_size=4)
    assert settings["backend"] == "transformers" and settings["decoding"] == "greedy"
    assert settings["dtype"] == "float32" and settings["batch_size"] == 4 and settings["max_new_tokens"] == 16
    assert tok.eos_token_id in settings["stop_token_ids"]
    json.dumps(settings)  # it goes into an evidence record


@pytest.mark.skipif(not os.environ.get("ASSURE_SLOW_TESTS"), reason="a second full build (~30 s); set ASSURE_SLOW_TESTS=1")
def test_shipped_build_is_reproducible(tiny_model_dir, tmp_path):
    """Rebuilding with the shipped settings (all training steps) gives byte-identical files.

    ``test_builder_is_deterministic`` covers the same code with few steps; this
    one checks that nothing drifts over a full build.
    """
    inputs = tiny.read_inputs()
    built = json.loads((tiny_model_dir / "BUILD.json").read_text())
    if tiny.inputs_digest(inputs) != built["inputs_sha256"]:
        pytest.skip("package data changed during the session")
    again = tiny.build_tiny_model(tmp_path / "again", inputs=inputs)
    for path in sorted(tiny_model_dir.iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
