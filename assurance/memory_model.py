"""Peak memory of generation and of a fine-tune step, from a model's shapes alone (used by ``--dry-run``).

Activations are the tensors autograd keeps for the backward pass of a transformers Llama-like decoder,
counted op by op rather than with Korthikanti et al. 2022's ``s·b·h·(34 + 5·a·s/h)`` (arXiv:2205.05198),
which assumes Megatron's fused kernels, a 4h GeLU MLP and dropout everywhere:

* RMSNorm (transformers upcasts): its float32 input; when its weight trains, also the normalised result
  before and after the weight (the next linear layer keeps the latter).
* attention with SDPA / flash (transformers' default): q, k, v (repeated to every head, as transformers does
  whenever a padding mask is given) and the output, which o_proj shares; no s×s tensor is stored.
* ``eager`` attention: q, k, v, o_proj's input (when it trains) and, per head, the s×s probabilities twice:
  the float32 softmax output (``softmax(..., dtype=float32)``) and its cast back to the model's dtype, kept
  by the matmul with v; dropout masks only when the config's attention dropout is above 0 (Llama: 0).
* gated MLP: gate output (SiLU input), SiLU output, up output and their product (down_proj's input).
* LoRA (peft keeps adapters in float32): every adapted linear keeps its own copy of its input cast for the
  adapter, float32, or bfloat16 under our trainer's autocast; a frozen base layer keeps nothing of its own.
* the loss: a float32 log-softmax over the vocabulary (kept), and in its backward two more float32
  vocabulary-wide tensors (the incoming and the outgoing gradient): 12 bytes a token per vocabulary entry.

Checked against autograd's saved tensors (``torch.autograd.graph.saved_tensors_hooks``) on CPU and against
the peaks measured on an H200 (tests/test_memory_calibration.py). Allocator fragmentation and the CUDA
context come on top: hence the verdict's margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Verdict = Literal["FITS", "TIGHT", "WILL NOT FIT"]
TIGHT_FROM = 0.8  # of the device's memory: below is FITS, up to 1.0 TIGHT, above WILL NOT FIT
LORA_BYTES = 4 + 4 + 8  # adapter weight, gradient and two AdamW states, all float32 (peft upcasts adapters)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model's config."""

    parameters: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    linear_shapes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Last name of each ``nn.Linear`` (``q_proj``...) -> its (in, out) features, one entry per module."""
    intermediate_size: int = 0
    """The MLP's width; 0 means 4 × hidden_size."""
    attention: str = "sdpa"
    """The attention implementation transformers picks for this model (``sdpa``, ``eager``, ``flash_attention_2``)."""
    attention_dropout: float = 0.0
    """Dropout on the attention probabilities (Llama: 0); with eager attention it stores a mask."""
    layer_parameters: int = 0
    """Parameters of the largest decoder layer (an FSDP unit); 0: ``parameters / num_layers``."""

    @property
    def layer_unit(self) -> int:
        """Parameters FSDP gathers for one decoder layer."""
        return self.layer_parameters or self.parameters // max(self.num_layers, 1)

    @property
    def root_unit(self) -> int:
        """Parameters outside the decoder layers (embeddings, head, final norm): the root unit, gathered for
        the whole of each forward."""
        return max(self.parameters - self.num_layers * self.layer_unit, 0)

    def lora_parameters(self, r: int, target_modules: list[str]) -> int:
        """Trainable parameters of a LoRA adapter: r·(in + out) per adapted linear layer, as peft builds it."""
        return sum(r * (i + o) for name in target_modules for i, o in self.linear_shapes.get(name, []))

    def adapter_inputs(self, r: int, target_modules: list[str]) -> int:
        """Elements per token the adapters of all layers keep for their backward: each adapted linear's
        input (its own cast copy) and its r-wide lora_A output."""
        return sum(i + r for name in target_modules for i, _ in self.linear_shapes.get(name, []))

    @property
    def stores_scores(self) -> bool:
        """Whether the attention keeps its s×s probabilities (only ``eager`` does; fused kernels recompute)."""
        return self.attention == "eager"


@dataclass(frozen=True)
class Training:
    """One fine-tune stage as the memory estimate sees it."""

    name: str
    method: Literal["full", "lora"]
    batch_size: int
    max_length: int
    trainable: int
    adapter_inputs: int = 0
    """LoRA: ``ModelShape.adapter_inputs`` for its rank and target modules."""
    autocast: bool = False
    """Our trainer runs the forward under bfloat16 autocast (CUDA, bfloat16 model): adapters' input copies are
    then bfloat16, not float32."""
    sharded: bool = False
    """``parallel: fsdp``: weights, gradients and AdamW states are split across the processes."""


@dataclass
class MemoryEstimate:
    """Peak bytes by component, the device's bytes, and the verdict."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    kv_cache: int
    peak: int
    peak_phase: str
    device_total: int
    fraction: float
    verdict: Verdict
    attention: str = "sdpa"
    """The attention implementation the activations assume."""
    processes: int = 1
    """The processes (GPUs) the run is split across; every figure is one process's."""


def dtype_bytes(dtype: str) -> int:
    return 2 if dtype in ("bfloat16", "float16") else 4


def layer_bytes(shape: ModelShape, t: Training, nb: int) -> float:
    """Bytes one decoder layer keeps per token for the backward pass (the module docstring's list)."""
    h, q = shape.hidden_size, shape.num_heads * shape.head_dim
    inter = shape.intermediate_size or 4 * h
    full = t.method == "full"
    norms = 2 * (4 + (2 * nb if full else 0)) * h  # float32 input; normalised, weighted, when the weight trains
    gated = "gate_proj" in shape.linear_shapes or "gate_up_proj" in shape.linear_shapes
    mlp = nb * inter * ((4 if full else 3) if gated else (2 if full else 1))  # down's input: only if it trains
    attn = nb * q * (4 if full or not shape.stores_scores else 3)  # q, k, v and SDPA's output or o_proj's input
    scores = 0
    if shape.stores_scores:  # the probabilities in float32 and in the model's dtype
        scores = shape.num_heads * t.max_length * (4 + (nb if nb != 4 else 0))
        if shape.attention_dropout > 0:
            scores += shape.num_heads * t.max_length * (1 + nb)  # the mask and the dropped-out copy
    adapters = (2 if t.autocast else 4) * t.adapter_inputs / max(shape.num_layers, 1)
    return norms + attn + scores + mlp + adapters


def backward_transient(shape: ModelShape, t: Training, nb: int) -> float:
    """Bytes per token alive only during the backward pass, the largest of: the loss's two float32
    vocabulary-wide gradients; eager attention's probability gradients (model dtype, float32 cast, softmax
    backward's float32 result); an MLP's three gradients."""
    eager = shape.num_heads * t.max_length * (nb + 8) if shape.stores_scores else 0
    return max(8 * shape.vocab_size, eager, 3 * nb * (shape.intermediate_size or 4 * shape.hidden_size))


def activation_bytes(shape: ModelShape, t: Training, nb: int) -> int:
    """Activations kept by one micro-batch's forward, plus the backward's transient peak."""
    h = shape.hidden_size
    # the final norm (as a layer's), our trainer's copy of the supervised positions, the float32 log-softmax
    head = (4 + (3 * nb if t.method == "full" else 0)) * h + 4 * shape.vocab_size
    per_token = shape.num_layers * layer_bytes(shape, t, nb) + head + backward_transient(shape, t, nb)
    casts = 2 * t.trainable if t.autocast and t.method == "lora" else 0  # autocast's bfloat16 copies of the adapters
    return int(t.batch_size * t.max_length * per_token) + casts


def kv_cache_bytes(shape: ModelShape, batch: int, tokens: int, nbytes: int) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``tokens``."""
    return 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * batch * tokens * nbytes


def verdict_for(fraction: float) -> Verdict:
    return "FITS" if fraction < TIGHT_FROM else "TIGHT" if fraction <= 1.0 else "WILL NOT FIT"


def sharded_weight_bytes(shape: ModelShape, nb: int, processes: int) -> int:
    """One process's weights under FSDP: its 1/N of every tensor, plus what is gathered whole while it runs:
    the root unit for the whole forward, and two decoder layers (the one running, the next prefetched)."""
    return -(-shape.parameters * nb // processes) + (shape.root_unit + 2 * shape.layer_unit) * nb


def estimate_memory(shape: ModelShape, *, dtype: str, device_total: int, trainings: list[Training],
                    gen_batch: int, gen_tokens: int, processes: int = 1,
                    sharded_weights: bool = False) -> MemoryEstimate:
    """The peak over the run's phases: generation (weights + KV cache) and each fine-tune (weights +
    gradients + AdamW states + activations). Full fine-tunes keep gradients and both AdamW moments in the
    model's dtype; LoRA keeps only the adapter's, in float32. Gradients are counted whole although the
    backward frees activations as they fill: gradient accumulation keeps them through the next forward.

    ``processes`` > 1: one process's share under a launcher. Each takes ``ceil(batch / N)`` rows of every
    micro-batch (the plan's batch is the global batch). ``sharded_weights`` (``model.parallel: fsdp``) or a
    fine-tune's ``sharded`` (``parallel: fsdp``) split weights, full gradients and AdamW states N ways, plus
    what FSDP gathers whole (``sharded_weight_bytes``) and one gathered layer's gradients before they are
    reduce-scattered; otherwise (DDP) each process holds them whole, and DDP's gradient buckets are a second
    copy of the trainable gradients. A LoRA adapter is counted whole on every process."""
    nb = dtype_bytes(dtype)
    n = max(processes, 1)
    whole = shape.parameters * nb
    split = sharded_weight_bytes(shape, nb, n)
    kv = kv_cache_bytes(shape, gen_batch, gen_tokens, nb)
    phases: list[tuple[str, int, int, int, int, int]] = [
        ("generation", split if sharded_weights and n > 1 else whole, 0, 0, 0, kv)]
    for t in trainings:
        sharded = n > 1 and (sharded_weights or t.sharded)
        if t.method == "full":
            grads, optim = t.trainable * nb, t.trainable * 2 * nb
            if sharded:
                grads, optim = -(-grads // n) + 2 * shape.layer_unit * nb, -(-optim // n)
        else:  # the adapter's own float32 weights count with its gradients
            grads, optim = t.trainable * (LORA_BYTES - 8), t.trainable * 8
        if n > 1 and not sharded:
            grads += t.trainable * (nb if t.method == "full" else 4)  # DDP's buckets
        rows = replace(t, batch_size=-(-t.batch_size // n))
        phases.append((t.name, split if sharded else whole, grads, optim, activation_bytes(shape, rows, nb), 0))
    name, weights, grads, optim, acts, kv_used = max(phases, key=lambda p: sum(p[1:]))
    peak = weights + grads + optim + acts + kv_used
    fraction = peak / device_total if device_total > 0 else float("inf")
    return MemoryEstimate(weights, grads, optim, acts, kv, peak, name, device_total, round(fraction, 4),
                          verdict_for(fraction), shape.attention, n)
