"""The decode loop behind ``models.generate``: one batch, prefill, then one token per step with a KV cache.

Every batch is prefilled through the model's own forward (its masks, positions and padding handling).
The steps after that take one of two routes, which give the same tokens:

- **layers** (Llama, Mistral, Qwen2 and Qwen3 with full attention, SDPA or eager attention, also under
  a PEFT LoRA wrapper): each step runs the decoder layers' parts itself, for one new token: the
  model's own rotary embedding, attention function and norms, its plain linear weights applied
  directly (LoRA and other wrapped layers are called as modules), the 4-D padding mask built once
  per step (none once no row has padding), the same ``DynamicCache``. ``model(...)`` would add,
  per step and per layer, module dispatch, mask construction through the generic masking code and
  output bookkeeping: on the tiny demo model, a tenth of the runner's time at batch 64.
- **generic** (any other causal LM): ``model(...)`` with a ``DynamicCache``, as ``model.generate`` does.

On both routes rows that have ended leave the batch (and the cache) once a quarter of it has ended.
Each row sees exactly the computation it would alone (its own positions, padding masked), which is
why outputs equal one-at-a-time generation (tests/test_generation_identity.py, on both routes and
on Llama, Mistral, Qwen2, Qwen3, GPT-2 and LoRA-wrapped models).

Where a step's time goes (tiny demo model, batch 64, one CPU thread): products ~half, and the
cache's ``torch.cat`` plus SDPA ~a fifth, mostly moving keys and values through memory. SDPA reads
them fastest straight after ``cat`` wrote them, so the following were measured against this loop,
interleaved in one process (benchmarks/generation.py's workload), and not kept, none gaining more
than the run-to-run noise (about 5%): a buffer per layer written in place, whole or grown 4-16
columns at a time (``cat`` ~40 ms to ~10 ms per run, SDPA on the strided view ~50 ms to ~85-140 ms);
two fixed buffers ``cat`` writes into by turns (no change: the cost is the copy, not the
allocation); the layer parts looked up once per batch, query/key/value and gate/up weights
concatenated into one product each, the additive mask built once per step and the leading
all-padding columns cut when rows drop; and ended rows skipping the products until they drop.
"""

from __future__ import annotations

import inspect
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

# Rows that ended stay in the batch until this share of it has ended: dropping them copies the cache.
_DROP_SHARE = 4


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
    from transformers import DynamicCache  # lazy: transformers takes seconds to import

    input_ids, mask = left_pad(rows, pad_id, device)
    # Positions count real tokens only, as model.generate derives them for left padding.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    cache_kw = {cache_argument(_unwrapped(model) or model): cache}
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   logits_to_keep=1, **cache_kw).logits[:, -1, :]
    rows_state = _Rows(len(rows), stops)
    next_pos = positions[:, -1:] + 1
    layers = decode_route(model, length=input_ids.shape[1] + max_new_tokens) == "layers"
    step = (_LayerStep if layers else _GenericStep)(model, cache, cache_kw, mask)
    for i in range(max_new_tokens):
        tokens = pick(logits, rows_state.alive, i)
        live = rows_state.take(tokens.tolist())
        if not live or i == max_new_tokens - 1:
            break
        if len(rows_state.alive) - len(live) >= max(1, len(rows_state.alive) // _DROP_SHARE):
            idx = torch.tensor(live, device=device)
            step.select(idx)
            next_pos, tokens = next_pos[idx], tokens[idx]
            rows_state.alive = [rows_state.alive[j] for j in live]
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
    """One decode step through ``model(...)``: any causal LM."""

    def __init__(self, model, cache, cache_kw: dict, mask: torch.Tensor):
        self.model, self.cache, self.cache_kw, self.mask = model, cache, cache_kw, mask

    def select(self, idx: torch.Tensor) -> None:
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]

    def _grow_mask(self, n: int) -> None:
        self.mask = torch.cat([self.mask, self.mask.new_ones((n, 1))], dim=1)

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        self._grow_mask(len(tokens))
        return self.model(input_ids=tokens, attention_mask=self.mask, position_ids=pos, use_cache=True,
                          **self.cache_kw).logits[:, -1, :]


class _LayerStep(_GenericStep):
    """One decode step through the decoder layers' own parts (see the module docstring).

    The step is the decoder layer's forward for one new token, written out so that a step pays
    for the tensor operations and not for module dispatch: plain ``nn.Linear`` weights are applied
    with ``F.linear`` (what their forward does), anything else (a LoRA or quantised layer) is called
    as a module, and the rotary embedding and attention are the model's own functions."""

    def __init__(self, model, cache, cache_kw: dict, mask: torch.Tensor):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # lazy: see decode

        super().__init__(model, cache, cache_kw, mask)
        inner = _unwrapped(model)
        self.lm_head, self.base = inner.lm_head, inner.model
        self.pad = (mask.shape[1] - mask.sum(-1)).tolist()  # padding columns of each batch row
        # Rows only leave the batch, so once none has padding the mask is never needed again.
        self.padded = max(self.pad) > 0
        attn = self.base.layers[0].self_attn
        modeling = sys.modules[type(attn).__module__]  # the model's own rotary and eager attention functions
        self.attention = ALL_ATTENTION_FUNCTIONS.get_interface(inner.config._attn_implementation,
                                                               modeling.eager_attention_forward)
        self.rope = modeling.apply_rotary_pos_emb
        self.head_dim = attn.head_dim
        self.eager = inner.config._attn_implementation == "eager"

    def select(self, idx: torch.Tensor) -> None:
        super().select(idx)
        self.pad = [self.pad[j] for j in idx.tolist()]
        self.padded = max(self.pad) > 0

    def _attention_mask(self) -> torch.Tensor | None:
        """The 4-D mask the model's forward would build for one new token (None when no row has padding)."""
        if not self.padded:
            return None
        keep = self.mask.bool()[:, None, None, :]
        if not self.eager:
            return keep
        dtype = self.base.embed_tokens.weight.dtype
        return torch.zeros((), dtype=dtype, device=keep.device).where(keep, torch.finfo(dtype).min)

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        base = self.base
        if self.padded:
            self._grow_mask(len(tokens))
        hidden = base.embed_tokens(tokens)
        cos, sin = base.rotary_emb(hidden, position_ids=pos)
        mask = self._attention_mask()
        shape = (len(tokens), 1, -1, self.head_dim)
        for i, layer in enumerate(base.layers):
            attn, mlp = layer.self_attn, layer.mlp
            x = layer.input_layernorm(hidden)
            q, k, v = _linear(attn.q_proj, x).view(shape), _linear(attn.k_proj, x).view(shape), \
                _linear(attn.v_proj, x).view(shape)
            if hasattr(attn, "q_norm"):  # Qwen3 normalises each head's query and key
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = self.rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
            k, v = self.cache.update(k, v.transpose(1, 2), i)
            out, _ = self.attention(attn, q, k, v, mask, dropout=0.0, scaling=attn.scaling)
            hidden = hidden + _linear(attn.o_proj, out.reshape(len(tokens), 1, -1).contiguous())
            x = layer.post_attention_layernorm(hidden)
            hidden = hidden + _linear(mlp.down_proj, mlp.act_fn(_linear(mlp.gate_proj, x)) * _linear(mlp.up_proj, x))
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
