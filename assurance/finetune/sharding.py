"""``finetune.parallel: fsdp``: parameters, gradients and optimizer state sharded across the processes.

DDP keeps a whole copy of the training state on every GPU: weights, gradients and AdamW's two
moments, about 16 bytes a parameter for a full fine-tune, before activations. FSDP (PyTorch's
``fully_shard``, the engine behind accelerate's FSDP plugin) keeps 1/N of each on each of N
GPUs and gathers one decoder layer's weights at a time for its forward and backward, so a full
fine-tune whose training state is N times one GPU's memory still trains.

Each decoder layer is its own unit (the classes a Hugging Face model lists in
``_no_split_modules``, as accelerate's auto-wrap policy reads them), with the whole model as the
root unit. The finished weights are gathered to rank 0's CPU memory to be saved; the sharded model
is not used again: the tuned model is reloaded from what was saved (``stages.Models``).

A model that arrived in shards (``model.parallel: fsdp``, ``models.sharded``) is trained as it is:
its causal LM is the root unit, and LoRA weights added to it afterwards are whole on every rank,
outside FSDP, so the trainer averages their gradients itself (``unmanaged``, ``average_gradients``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.sharded import shard_units


def shard(model: torch.nn.Module) -> int:
    """Shard ``model`` in place (one unit per decoder layer, the rest as the root; ``models.sharded``).
    Returns the number of layer units."""
    return shard_units(model, reshard_root=False)


def gradient_sync(model: torch.nn.Module, on: bool) -> None:
    """Reduce-scatter gradients on this backward (the last micro-batch of a step) or keep accumulating."""
    model.set_requires_gradient_sync(on)  # type: ignore[operator]  # added to the module by fully_shard


def full_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """Every parameter and buffer, whole, on rank 0's CPU (empty on the others). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def unmanaged(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The trainable parameters FSDP does not hold in shards (plain tensors, not DTensors): LoRA weights
    injected into a model that was already sharded when it loaded (``models.sharded``)."""
    from torch.distributed.tensor import DTensor

    return [p for p in params if not isinstance(p, DTensor)]


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the gradients of ``params`` across ranks (one flat all-reduce), as FSDP averages its own."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset:offset + g.numel()].view_as(p)  # views of one buffer: no second copy
        offset += g.numel()
