"""Shared test helper: the ``builtin:tiny-chat`` model, built once per session.

Import the fixture into a test module to use it::

    (tests/conftest.py imports these fixtures, so every test module shares one build)

The build goes into a temporary ``ASSURE_CACHE`` (set for the whole session,
so ``builtin:tiny-chat`` resolves there too) and never touches the user's cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The folder of the tiny demo model, built once into a temporary cache."""
    from assurance.models.tiny import ensure_tiny_model

    cache = tmp_path_factory.mktemp("assure-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASSURE_CACHE", str(cache))
        yield ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """``(model, tokenizer)`` of the tiny model on CPU in float32, loaded once."""
    import torch

    from assurance.models.loading import load_model

    return load_model(tiny_model_dir, device="cpu", dtype=torch.float32)
