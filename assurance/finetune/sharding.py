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
"""

from __future__ import annotations

from typing import Any

import torch


def decoder_layer_names(model: torch.nn.Module) -> set[str]:
    """The class names of the model's decoder layers (``_no_split_modules``), looked up through a peft wrapper."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


def shard(model: torch.nn.Module) -> int:
    """Shard ``model`` in place across the process group: each decoder layer, then the rest as the root
    (the module whose forward the loop calls, so the root's weights are gathered before it runs).
    Returns the number of layer units."""
    from torch.distributed.fsdp import fully_shard

    names = decoder_layer_names(model)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    return len(layers)


def gradient_sync(model: torch.nn.Module, on: bool) -> None:
    """Reduce-scatter gradients on this backward (the last micro-batch of a step) or keep accumulating."""
    model.set_requires_gradient_sync(on)  # type: ignore[operator]  # added to the module by fully_shard


def full_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """Every parameter and buffer, whole, on rank 0's CPU (empty on the others). Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
