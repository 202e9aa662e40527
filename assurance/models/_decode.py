"""The decode loop behind ``models.generate``: one batch, prefill, then one token per step with a KV cache.

Two routes give the same tokens:

- **layers** (Llama, Mistral, Qwen2 and Qwen3 with full attention, SDPA or eager attention, also under
  a PEFT LoRA wrapper) runs the decoder layers' parts itself: the model's own rotary embedding,
  attention function and norms, its plain linear weights applied directly (LoRA and other wrapped
  layers are called as modules). ``model(...)`` would add, per step and per layer, module dispatch,
  mask construction through the generic masking code and output bookkeeping.
  - On a CPU the prefill packs the prompts without padding: norms, products and rotary run once
    over all real tokens, attention runs causally on each group of prompts of one length. On a GPU
    it is one padded batch through the model's own forward.
  - Each step then runs one new token per row, with the 4-D padding mask built once per step
    (none once no row has padding).
  - A row leaves the batch on the step it ends: live rows from the end of the batch move into the
    ended rows' places, so a drop copies only the moved rows' keys and values.
- **generic** (any other causal LM, and sharded weights): ``model(...)`` with a ``DynamicCache``, as
  ``model.generate`` does; ended rows leave once a quarter of the batch has ended, since dropping
  there copies the whole cache.

Each row sees the computation it would alone (its own positions, padding masked), which is why
outputs equal one-at-a-time generation (tests/test_generation_identity.py, on both routes and on
Llama, Mistral, Qwen2, Qwen3, GPT-2 and LoRA-wrapped models).

Measured (benchmarks/generation.py: tiny demo model, 128 battery prompts, batch 64, one CPU thread),
HF's batched ``generate`` time over ours: medians 1.28 and 1.25 with a padded prefill and the quarter
rule on this route too; median 1.335 over 24 runs (1.22-1.43; 95% interval of the median 1.30-1.36)
with the packed prefill, rows leaving at once (2,902 row-steps, the least possible, against HF's
3,968) and the tiled greedy pick. Products are
about half a run, the cache's ``torch.cat`` plus SDPA about a fifth. Measured and not kept: a buffer
per layer written in place (``cat``'s time goes, but SDPA on the strided view takes twice as long:
0.475 s against 0.430 s a run), also grown 8-16 columns at a time and read whole with the unwritten
columns masked (no gain); two fixed buffers ``cat`` writes into by turns; fused query/key/value and
gate/up products; ended rows skipping the products; ``F.rms_norm``, one rotary product for query and
key and SDPA without transformers' wrapper (~3%, within the noise, and no longer the model's own).
"""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .sharded import is_sharded

Pick = Callable[[torch.Tensor, list[int], int], torch.Tensor]
"""(last logits of each batch row, input row of each batch row, step) -> next token of each batch row."""

# Architectures whose base model's forward is exactly: embed_tokens, rotary_emb, the decoder layers
# (each with one causal mask), norm; and whose causal LM's head is a plain lm_head on the last hidden state.
_LAYER_ROUTE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})

# On the generic route rows that ended stay in the batch until this share of it has ended:
# dropping them there copies the whole cache.
_DROP_SHARE = 4


# Where the layers route packs the prefill. On a GPU a kernel launch costs more than the padding's
# arithmetic, so there one padded batch goes through the model's own forward (as measured on the
# H200), not one attention call per prompt length.
_PACKED_PREFILL_DEVICES = frozenset({"cpu"})


def decode_route(model, *, length: int = 0) -> str:
    """``"layers"`` when a batch whose rows reach ``length`` tokens can take the layers route, else ``"generic"``."""
    inner = _unwrapped(model)
    if is_sharded(model):
        return "generic"  # sharded weights are gathered by hooks on each module's forward, which the layers route skips
    config = getattr(inner, "config", None)
    base = getattr(inner, "model", None)
    if config is None or base is None or getattr(config, "model_type", None) not in _LAYER_ROUTE_TYPES:
        return "generic"
    if not type(inner).__module__.startswith("transformers.models."):
        return "generic"  # remote code may reuse a model type with other layers
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager") or hasattr(inner, "hf_device_map"):
        return "generic"
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or ()):
        return "generic"
    window = getattr(config, "sliding_window", None)
    if window is not None and getattr(config, "use_sliding_window", True) and length > window:
        return "generic"  # a sliding window that could bite needs the model's own mask
    if not all(hasattr(base, p) for p in ("embed_tokens", "layers", "norm", "rotary_emb")) or \
            not hasattr(inner, "lm_head") or not all(_has_parts(layer) for layer in base.layers):
        return "generic"
    return "layers"


def _has_parts(layer) -> bool:
    """The parts of a Llama-like decoder layer that ``_LayerStep`` runs."""
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    modeling = sys.modules.get(type(attn).__module__)
    return (all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling"))
            and all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj", "act_fn"))
            and hasattr(layer, "input_layernorm") and hasattr(layer, "post_attention_layernorm")
            and hasattr(modeling, "apply_rotary_pos_emb") and hasattr(modeling, "eager_attention_forward"))


def _unwrapped(model):
    """The transformers model inside a PEFT LoRA wrapper (its LoRA layers stay in place), else ``model``.

    Other PEFT kinds (prompt tuning and the like) change more than layers: None sends them the generic way."""
    if not hasattr(model, "get_base_model"):
        return model
    config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", None))
    return model.get_base_model() if getattr(config, "peft_type", None) == "LORA" else None


def decode(model, rows: list[list[int]], *, max_new_tokens: int, stops: set[int], pad_id: int, device,
           pick: Pick) -> list[list[int]]:
    """Generated token ids (stop token excluded) of each of ``rows`` (token ids of one prompt each)."""
    width = max(len(r) for r in rows)
    layers = decode_route(model, length=width + max_new_tokens) == "layers"
    step = (_LayerStep if layers else _GenericStep)(model, rows, pad_id=pad_id, device=device)
    logits = step.prefill()
    rows_state = _Rows(len(rows), stops)
    # Positions count real tokens only, as model.generate derives them for left padding.
    next_pos = torch.tensor([[len(r)] for r in rows], device=device)
    for i in range(max_new_tokens):
        tokens = pick(logits, rows_state.alive, i)
        live = rows_state.take(tokens.tolist())
        if not live or i == max_new_tokens - 1:
            break
        if len(live) < len(rows_state.alive) and step.drops(len(rows_state.alive) - len(live)):
            order = step.select(live)
            idx = torch.tensor(order, device=device)
            next_pos, tokens = next_pos[idx], tokens[idx]
            rows_state.alive = [rows_state.alive[j] for j in order]
        logits = step(tokens[:, None], next_pos)
        next_pos = next_pos + 1
    return rows_state.generated


class _Rows:
    """Which input rows are still in the batch, which have ended, and what each has generated."""

    def __init__(self, n: int, stops: set[int]):
        self.alive = list(range(n))
        self.done = [False] * n
        self.generated: list[list[int]] = [[] for _ in range(n)]
        self.stops = stops

    def take(self, tokens: list[int]) -> list[int]:
        """Record one token per batch row; return the batch rows still going."""
        live = []
        for j, (a, t) in enumerate(zip(self.alive, tokens, strict=True)):
            if self.done[a]:
                continue  # an ended row still in the batch: its tokens are ignored
            if t in self.stops:
                self.done[a] = True
            else:
                self.generated[a].append(t)
                live.append(j)
        return live


class _GenericStep:
    """Prefill and decode steps through ``model(...)`` with a ``DynamicCache``: any causal LM."""

    def __init__(self, model, rows: list[list[int]], *, pad_id: int, device):
        from transformers import DynamicCache  # lazy: transformers takes seconds to import

        self.model = model
        self.input_ids, self.mask = left_pad(rows, pad_id, device)
        self.cache = DynamicCache(config=model.config)
        self.cache_kw = {cache_argument(_unwrapped(model) or model): self.cache}

    def prefill(self) -> torch.Tensor:
        """The last logits of each row's prompt, through the model's own forward (masks, positions, padding)."""
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=self.input_ids, attention_mask=self.mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1, **self.cache_kw).logits[:, -1, :]

    def drops(self, ended: int) -> bool:
        """Whether to drop rows now that ``ended`` more have ended (each drop copies the whole cache)."""
        return ended >= max(1, len(self.mask) // _DROP_SHARE)

    def select(self, live: list[int]) -> list[int]:
        """Keep the batch rows ``live``; return the old batch row of each new one."""
        idx = torch.tensor(live, device=self.mask.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]
        return live

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(tokens), 1))], dim=1)
        return self.model(input_ids=tokens, attention_mask=self.mask, position_ids=pos, use_cache=True,
                          **self.cache_kw).logits[:, -1, :]


class _LayerStep:
    """Prefill and decode steps through the decoder layers' own parts (see the module docstring).

    A step is the decoder layer's forward written out, so that it pays for the tensor operations and
    not for module dispatch: plain ``nn.Linear`` weights are applied with ``F.linear`` (what their
    forward does), anything else (a LoRA or quantised layer) is called as a module, and the rotary
    embedding, norms and attention are the model's own.

    On a CPU the prefill packs the prompts' tokens without padding: every per-token part (norms, products,
    rotary) runs once over all real tokens, and attention runs causally on each group of prompts of
    one length, as each prompt alone would. Keys and values then sit left-padded, one tensor per layer,
    and each step appends its column with ``torch.cat`` (a buffer written in place measured slower:
    see the module docstring)."""

    def __init__(self, model, rows: list[list[int]], *, pad_id: int, device):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # lazy: see _GenericStep

        inner = _unwrapped(model)
        self.model, self.lm_head, self.base = model, inner.lm_head, inner.model
        self.rows, self.pad_id, self.device = rows, pad_id, device
        self.width = max(len(r) for r in rows)
        self.pad = [self.width - len(r) for r in rows]  # padding columns of each batch row
        self.mask = left_pad(rows, pad_id, device)[1].bool()
        # Rows only leave the batch, so once none has padding the mask is never needed again.
        self.padded = max(self.pad) > 0
        attn = self.base.layers[0].self_attn
        modeling = sys.modules[type(attn).__module__]  # the model's own rotary and eager attention functions
        self.attention = ALL_ATTENTION_FUNCTIONS.get_interface(inner.config._attn_implementation,
                                                               modeling.eager_attention_forward)
        self.rope = modeling.apply_rotary_pos_emb
        self.head_dim = attn.head_dim
        self.eager = inner.config._attn_implementation == "eager"
        self.dtype = self.base.embed_tokens.weight.dtype
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] = []

    def prefill(self) -> torch.Tensor:
        """The last logits of each row's prompt; keys and values left-padded in ``self.kv``."""
        if torch.device(self.device).type not in _PACKED_PREFILL_DEVICES:
            padded = _GenericStep(self.model, self.rows, pad_id=self.pad_id, device=self.device)
            logits = padded.prefill()
            layers: list = padded.cache.layers  # DynamicLayer each: the model has full attention only
            self.kv = [(layer.keys, layer.values) for layer in layers]
            return logits
        base, rows, width = self.base, self.rows, self.width
        lengths = [len(r) for r in rows]
        starts = list(itertools.accumulate(lengths, initial=0))  # each row's first packed token; then the total
        tokens = torch.tensor([t for r in rows for t in r], device=self.device)[None]
        pos = torch.tensor([p for n in lengths for p in range(n)], device=self.device)[None]
        # Runs of rows of one length: (first row, rows, length, eager attention's causal mask or None).
        groups = []
        for length, run in itertools.groupby(range(len(rows)), key=lengths.__getitem__):
            members = list(run)
            groups.append((members[0], len(members), length, self._causal(length)))
        hidden = base.embed_tokens(tokens)
        cos, sin = base.rotary_emb(hidden, position_ids=pos)
        shape = (1, starts[-1], -1, self.head_dim)
        for layer in base.layers:
            attn = layer.self_attn
            q, k, v = self._qkv(layer, hidden, shape, cos, sin)
            # Padding columns are zeroed below: masked, but uninitialised memory could hold NaN.
            keys = k.new_empty((len(rows), k.shape[1], width, self.head_dim))
            values = torch.empty_like(keys)
            outs = []
            for first, n, length, causal in groups:
                span = slice(starts[first], starts[first] + n * length)
                qg, kg, vg = (t[0, :, span].unflatten(1, (n, length)).transpose(0, 1) for t in (q, k, v))
                keys[first:first + n, :, :width - length] = values[first:first + n, :, :width - length] = 0
                keys[first:first + n, :, width - length:width] = kg
                values[first:first + n, :, width - length:width] = vg
                out, _ = self.attention(attn, qg, kg, vg, causal, dropout=0.0, scaling=attn.scaling)
                outs.append(out.reshape(n * length, -1))
            self.kv.append((keys, values))
            hidden = self._rest(layer, hidden, torch.cat(outs)[None])
        last = torch.tensor(starts[1:], device=self.device) - 1  # each row's last prompt token
        return _linear(self.lm_head, base.norm(hidden[:, last]))[0]

    def _causal(self, length: int) -> torch.Tensor | None:
        """Eager attention's additive causal mask for a prompt of ``length`` (SDPA is told ``is_causal``)."""
        if not self.eager:
            return None
        return torch.full((length, length), torch.finfo(self.dtype).min, dtype=self.dtype,
                          device=self.device).triu(1)[None, None]

    def _qkv(self, layer, hidden: torch.Tensor, shape: tuple, cos: torch.Tensor, sin: torch.Tensor):
        """Query, key (rotated) and value of ``hidden``, heads before positions."""
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        q, k, v = _linear(attn.q_proj, x).view(shape), _linear(attn.k_proj, x).view(shape), \
            _linear(attn.v_proj, x).view(shape)
        if hasattr(attn, "q_norm"):  # Qwen3 normalises each head's query and key
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = self.rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
        return q, k, v.transpose(1, 2)

    def _rest(self, layer, hidden: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The layer after attention: output product, residuals and the MLP."""
        attn, mlp = layer.self_attn, layer.mlp
        hidden = hidden + _linear(attn.o_proj, attended)
        x = layer.post_attention_layernorm(hidden)
        return hidden + _linear(mlp.down_proj, mlp.act_fn(_linear(mlp.gate_proj, x)) * _linear(mlp.up_proj, x))

    def drops(self, ended: int) -> bool:
        """Rows leave as soon as they end: a drop copies only the rows that move (see ``select``)."""
        return True

    def select(self, live: list[int]) -> list[int]:
        """Keep the batch rows ``live``; return the old batch row of each new one.

        Live rows from the end of the batch move into the places of rows that ended, and every
        tensor is cut to its first ``len(live)`` rows (a view): only the moved rows are copied,
        where indexing the batch would copy the whole cache."""
        n, kept = len(live), set(live)
        gaps = [j for j in range(n) if j not in kept]
        movers = [j for j in live if j >= n]
        order = list(range(n))
        for gap, mover in zip(gaps, movers, strict=True):
            order[gap] = mover
        if gaps:
            to, fro = torch.tensor(gaps, device=self.device), torch.tensor(movers, device=self.device)
            for k, v in self.kv:
                k.index_copy_(0, to, k.index_select(0, fro))
                v.index_copy_(0, to, v.index_select(0, fro))
        self.kv = [(k[:n], v[:n]) for k, v in self.kv]
        self.mask = self.mask[torch.tensor(order, device=self.device)]
        self.pad = [self.pad[j] for j in order]
        self.padded = max(self.pad) > 0
        return order

    def _attention_mask(self) -> torch.Tensor | None:
        """The 4-D mask the model's forward would build for one new token (None when no row has padding)."""
        if not self.padded:
            return None
        keep = self.mask[:, None, None, :]
        if not self.eager:
            return keep
        return torch.zeros((), dtype=self.dtype, device=keep.device).where(keep, torch.finfo(self.dtype).min)

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        base = self.base
        if self.padded:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(tokens), 1))], dim=1)
        hidden = base.embed_tokens(tokens)
        cos, sin = base.rotary_emb(hidden, position_ids=pos)
        mask = self._attention_mask()
        shape = (len(tokens), 1, -1, self.head_dim)
        for i, (layer, (keys, values)) in enumerate(zip(base.layers, self.kv, strict=True)):
            q, k, v = self._qkv(layer, hidden, shape, cos, sin)
            keys, values = torch.cat([keys, k], 2), torch.cat([values, v], 2)
            self.kv[i] = keys, values
            attn = layer.self_attn
            out, _ = self.attention(attn, q, keys, values, mask, dropout=0.0, scaling=attn.scaling)
            hidden = self._rest(layer, hidden, out.reshape(len(tokens), 1, -1))
        return _linear(self.lm_head, base.norm(hidden))[:, -1, :]


def _linear(module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, without module dispatch when it is a plain ``nn.Linear`` (LoRA layers are called)."""
    if type(module) is torch.nn.Linear:
        return F.linear(x, module.weight, module.bias)
    return module(x)


def cache_argument(module) -> str:
    """The keyword ``module.forward`` takes its cache by: transformers 5 renamed ``past_key_values`` to ``cache``."""
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and the attention mask (transformers derives position ids from it)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=device)
    return ids, mask
