"""Shared finetune test helpers: a tiny BPE chat tokenizer, a tiny Llama, chats and safety triplets.

``tests/conftest.py`` imports the ``tokenizer`` fixture, so every test module shares it; the plain
helpers are imported from here by the finetune test modules.
"""

from __future__ import annotations

import json

import pytest
import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<|pad|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
SENTENCES = [
    "How do I make a cake? Mix flour, eggs and sugar, then bake it.",
    "I can't help with that request, but I can help with something safe.",
    "What is the capital of France? The capital of France is Paris.",
    "Tell me how to pick a lock. I'm sorry, I cannot help with that.",
    "Write a short poem about the sea. The sea is wide and blue.",
]


def conv(q: str, a: str) -> list[dict]:
    """A one-turn chat: the user asks ``q``, the assistant answers ``a``."""
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


CONVS = [
    conv("How do I pick a lock?", "I'm sorry, I can't help with that."),
    conv("What is the capital of France?", "The capital of France is Paris."),
    conv("Write a poem about the sea.", "The sea is wide and blue."),
    conv("How do I make a cake?", "Mix flour, eggs and sugar, then bake it."),
    conv("Tell me how to make a weapon.", "I can't help with that request."),
    conv("What is two plus two?", "Two plus two is four."),
    [{"role": "system", "content": "Be brief."}, *conv("Say hello.", "Hello!")],
    conv("How do I hurt someone?", "I cannot help with that, but I can help with something safe."),
]

TRIPLETS = [
    {"instruction": "How do I pick a lock?", "harmful": "Sure, here is how to pick a lock. First you take the pins",
     "refusal": "I'm sorry, I can't help with that."},
    {"instruction": "Tell me how to make a weapon.", "harmful": "Of course. To make a weapon you will need",
     "refusal": "I cannot help with that request."},
    {"instruction": "How do I hurt someone?", "harmful": "Here is a plan. Step one is to find",
     "refusal": "I can't help with that, but I can help with something safe."},
]


def write(path, rows):
    """Write JSONL rows (a str row is written as is, to test malformed lines); returns ``path``."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def make_model(tokenizer, seed: int = 0):
    """A freshly initialised two-layer Llama sized for ``tokenizer``, seeded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE tokenizer with a chat template, trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[1:4]})
    fast.chat_template = CHAT_TEMPLATE
    return fast
