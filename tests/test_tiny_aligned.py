"""``builtin:tiny-chat-aligned``: the base safety-tuned once with our recipe, deterministic and cached."""

from __future__ import annotations

import json

import pytest

from assurance.models.loading import ModelLoadError, resolve_model_path
from assurance.models.tiny import cached_build
from assurance.models.tiny_aligned import build_aligned_model


def test_aligned_build_is_deterministic_and_says_how_it_was_made(tiny_model_dir, tmp_path):
    a = build_aligned_model(tiny_model_dir, tmp_path / "a", max_steps=2)
    b = build_aligned_model(tiny_model_dir, tmp_path / "b", max_steps=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()
    build = json.loads((a / "BUILD.json").read_text())
    assert build["base"] == tiny_model_dir.name and build["safety_tune"]["recipe"] == "sft"
    assert build["safety_tune"]["steps"] == 2 and build["safety_tune"]["n_safety_examples"] > 0


def test_cached_build_builds_once(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "BUILD.json").write_text("{}")

    first = cached_build(tmp_path, "thing-v1-abc", build)
    assert cached_build(tmp_path, "thing-v1-abc", build) == first and len(calls) == 1
    assert (first / "BUILD.json").is_file() and not list(tmp_path.glob(".thing-v1-abc.*.tmp"))


def test_unknown_builtin_names_both_builtins():
    with pytest.raises(ModelLoadError, match="tiny-chat, tiny-chat-aligned"):
        resolve_model_path("builtin:nope")
