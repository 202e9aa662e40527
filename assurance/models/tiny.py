"""The built-in demo model ``builtin:tiny-chat``.

A few-million-parameter Llama with its own byte-level BPE tokenizer, built from
the package's own texts so the whole tool can run offline on a laptop CPU. It
is trained briefly on ordinary helpful chats and never on refusals, so it
plays the part of a "helpful but not safety-tuned" base model.

The build is deterministic: the same builder version and inputs give
byte-identical weights on the same machine. The cache folder name carries the
builder version and a digest of the input texts, so changing either gives a
new folder instead of silently reusing a stale one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

BUILDER_VERSION = 1
SEED = 1234
SPECIAL_TOKENS = ["<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
VOCAB_SIZE = 3000
MODEL_CONFIG: dict[str, Any] = dict(
    hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
    intermediate_size=384, max_position_embeddings=512, tie_word_embeddings=True,
    rms_norm_eps=1e-5, rope_theta=10000.0,
)
TRAIN_SETTINGS: dict[str, Any] = dict(steps=300, batch_size=16, lr=3e-3, weight_decay=0.01, max_len=256, warmup=20)

# Each turn is "<|role|>\n{content}<|end|>\n". Rendering turn by turn with no
# look-ahead is what makes a prompt rendering a strict prefix of the full
# conversation, which the trainer relies on to mask the loss.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{ raise_exception('tiny-chat roles are system, user and assistant, not ' + message['role']) }}"
    "{%- endif -%}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
)

_PACKAGE = Path(__file__).resolve().parent.parent
DATA_DIRS = (_PACKAGE / "battery" / "data", _PACKAGE / "finetune" / "data")
UTILITY_FILE = _PACKAGE / "finetune" / "data" / "utility.jsonl"

# Enough text for a usable BPE even when the package data files are absent.
_FALLBACK_TEXT = [
    "You are a helpful assistant. Answer the question clearly and briefly.",
    "Here is a short explanation of how photosynthesis works in green plants.",
    "I'm sorry, but I can't help with that request.",
    "The capital of France is Paris. The capital of the United Kingdom is London.",
    "To write a function in Python, use the def keyword followed by a name.",
    "1 2 3 4 5 6 7 8 9 10 100 1000 first second third, yes no maybe.",
]


def default_cache_root() -> Path:
    """``$ASSURE_CACHE``, else ``~/.cache/assurance``."""
    return Path(os.environ.get("ASSURE_CACHE") or Path.home() / ".cache" / "assurance")


def read_inputs(data_dirs: tuple[Path, ...] = DATA_DIRS, utility_file: Path | None = UTILITY_FILE) -> dict[str, bytes]:
    """A snapshot of every input file, keyed by a stable name.

    Read once, so the digest in the folder name and the texts the build uses
    can never disagree, even if the files change while we build.
    """
    # Keys like "finetune/utility.jsonl": the folder above data/ tells the two data folders apart.
    snap = {f"{d.parent.name}/{p.relative_to(d).as_posix()}": p.read_bytes()
            for d in data_dirs if d.is_dir() for p in sorted(d.rglob("*.jsonl"))}
    if utility_file is not None and utility_file.is_file():
        snap[_UTILITY_KEY] = utility_file.read_bytes()
    return snap


_UTILITY_KEY = "<utility>"


def inputs_digest(snapshot: dict[str, bytes]) -> str:
    """SHA-256 over the snapshot's names and bytes, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(snapshot):
        h.update(name.encode() + b"\0" + hashlib.sha256(snapshot[name]).digest())
    return h.hexdigest()


def _strings(value) -> Iterator[str]:
    """All strings inside a JSON value (rows differ by file, so read them all)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (dict, list)):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _strings(v)


def corpus(snapshot: dict[str, bytes]) -> list[str]:
    """Texts for the tokenizer; unreadable lines are skipped."""
    texts = list(_FALLBACK_TEXT)
    for name in sorted(k for k in snapshot if k != _UTILITY_KEY):
        for line in snapshot[name].decode("utf-8", errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                texts.extend(s for s in _strings(json.loads(line)) if s.strip())
    return texts


def build_tokenizer(texts: list[str]):
    """Train the byte-level BPE and wrap it as a transformers fast tokenizer."""
    # lazy: transformers takes seconds to import, and only a first build needs these
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", padding_side="left",
        additional_special_tokens=SPECIAL_TOKENS[1:4], chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )


def chat_rows(data: bytes) -> list[list[dict]]:
    """Conversations with at least one assistant turn; malformed rows skipped."""
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError, TypeError, KeyError):
            msgs = json.loads(line)["messages"]
            if any(m["role"] == "assistant" for m in msgs) and all(isinstance(m["content"], str) for m in msgs):
                rows.append([{"role": m["role"], "content": m["content"]} for m in msgs])
    return rows


def encode_chat(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels with loss only on assistant replies (and their ``<|end|>``)."""
    ids: list[int] = []
    labels: list[int] = []
    for i, msg in enumerate(messages):
        # Turn boundaries come from rendering prefixes: the template guarantees
        # each rendering extends the previous one, so token counts line up.
        full = _ids(tokenizer, tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
        if msg["role"] == "assistant":
            prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            n_prompt = len(_ids(tokenizer, prompt))
            # Learn the reply and the <|end|> that stops it, not the trailing newline.
            labels += [-100] * (n_prompt - len(ids)) + full[n_prompt:-1] + [-100]
        else:
            labels += [-100] * (len(full) - len(ids))
        ids = full
    return ids[:max_len], labels[:max_len]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@contextlib.contextmanager
def deterministic(seed: int):
    """Seeded, deterministic torch for the block; restores the caller's setting."""
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    # One thread: float reductions then happen in one fixed order whatever the
    # core count, and a tiny model gains little from more threads (on a busy
    # 2-core box, 2 threads were ~7x slower than 1 from OpenMP contention).
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


def init_model(tokenizer):
    """A freshly initialised float32 Llama sized for the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM  # lazy: only a first build needs it

    config = LlamaConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **MODEL_CONFIG,
    )
    return LlamaForCausalLM(config).float()


def train_base(model, tokenizer, conversations: list[list[dict]], *, steps: int, seed: int) -> list[float]:
    """A short plain-loop SFT on helpful chats; returns the loss per step."""
    s = TRAIN_SETTINGS
    examples = [encode_chat(tokenizer, c, s["max_len"]) for c in conversations]
    examples = [e for e in examples if any(lab != -100 for lab in e[1])]
    if not examples or steps <= 0:
        return []
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / s["warmup"]) * max(0.0, 1 - k / steps)
    )
    model.train()
    order: list[int] = []
    losses = []
    for _ in range(steps):
        batch: list[tuple[list[int], list[int]]] = []
        while len(batch) < s["batch_size"]:
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            batch.append(examples[order.pop()])
        width = max(len(ids) for ids, _ in batch)
        # Right padding for training: pad positions carry no loss and sit after
        # the real tokens, so causal attention never sees them.
        input_ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
    model.eval()
    return losses


def build_tiny_model(out_dir: Path, *, train_steps: int | None = None, data_dirs: tuple[Path, ...] = DATA_DIRS,
                     utility_file: Path | None = UTILITY_FILE, inputs: dict[str, bytes] | None = None) -> Path:
    """Build the demo model into ``out_dir`` (no caching, no atomicity; see ``ensure_tiny_model``).

    ``inputs`` is a ``read_inputs`` snapshot; without it the files are read now.
    """
    steps = TRAIN_SETTINGS["steps"] if train_steps is None else train_steps
    snapshot = read_inputs(data_dirs, utility_file) if inputs is None else inputs
    tokenizer = build_tokenizer(corpus(snapshot))
    with deterministic(SEED):
        model = init_model(tokenizer)
        chats = chat_rows(snapshot[_UTILITY_KEY]) if _UTILITY_KEY in snapshot else []
        losses = train_base(model, tokenizer, chats, steps=steps, seed=SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    build = {
        "name": "tiny-chat", "builder_version": BUILDER_VERSION, "seed": SEED,
        "inputs_sha256": inputs_digest(snapshot), "inputs": sorted(snapshot),
        "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer), "special_tokens": SPECIAL_TOKENS},
        "model_config": MODEL_CONFIG,
        "training": {**TRAIN_SETTINGS, "steps": steps if chats else 0, "examples": len(chats),
                     "data": "utility.jsonl" if chats else None, "loss": "assistant tokens only",
                     "optimizer": "AdamW", "first_loss": losses[0] if losses else None,
                     "last_loss": losses[-1] if losses else None},
        "torch": torch.__version__,
    }
    (out_dir / "BUILD.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    return out_dir


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive file lock so concurrent builders wait instead of racing."""
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # no fcntl (Windows): the tolerant rename still keeps us safe
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_build(root: Path, name: str, build) -> Path:
    """``root/name``, built by ``build(tmp_folder)`` if missing, under a lock, renamed into place only
    when complete, so a reader never sees a half-built folder (``BUILD.json`` marks a finished one)."""
    final = root / name
    if (final / "BUILD.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _build_lock(root / f".{name.rsplit('-', 1)[0]}.lock"):
        if (final / "BUILD.json").is_file():  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a shared cache should be readable
        try:
            build(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                # Lost a race with a builder that had no lock: theirs is complete.
                if not (final / "BUILD.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_tiny_model(cache_dir: Path | None = None) -> Path:
    """The local folder of ``builtin:tiny-chat``, built (once) if missing.

    ``cache_dir`` replaces ``$ASSURE_CACHE``. The folder appears only complete:
    it is built beside its final name and renamed into place.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    snapshot = read_inputs()
    digest = inputs_digest(snapshot)[:12]
    return cached_build(root, f"tiny-chat-v{BUILDER_VERSION}-{digest}",
                        lambda tmp: build_tiny_model(tmp, inputs=snapshot))
