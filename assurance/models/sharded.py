"""``model.parallel: fsdp``: a model whose weights do not fit one GPU, loaded straight into shards.

Under a launcher with N processes each rank holds 1/N of every weight (PyTorch's ``fully_shard``, the
engine behind accelerate's FSDP plugin; one unit per decoder layer, the rest in the root unit) and
gathers one layer's weights at a time while it runs. No GPU ever holds the whole model:

* Rank 0 reads the weights from disk into its CPU memory (with any LoRA adapters merged in there,
  in order), the other ranks build the same model on the ``meta`` device, which allocates nothing.
  Every rank shards its (meta) copy, allocates its shards on its own device, and receives its part
  of rank 0's weights (``set_model_state_dict`` with ``broadcast_from_rank0``). Buffers that are no
  weights (rotary frequencies) are copied from rank 0 whole.
* Every forward of a sharded model is a collective: each rank must run the same number of them.
  Evaluation still splits the items across ranks (``distributed``), so a rank that has finished its
  share keeps answering its peers' forwards with a one-token stand-in until all have finished
  (``lockstep``/``drain``). A small all-reduce before each forward says whether anyone still works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .loading import ModelLoadError, load_model, load_tokenizer


class _Lockstep:
    """Forward pre-hook state of a sharded model: before each real forward every rank says it still works."""

    def __init__(self, device: torch.device):
        self.device = device
        self.draining = False
        self.box = torch.zeros(1, dtype=torch.int32, device=device)  # reused: this runs before every forward

    def flag(self, active: int) -> int:
        import torch.distributed as dist

        self.box.fill_(active)
        dist.all_reduce(self.box, op=dist.ReduceOp.MAX)
        return int(self.box.item())

    def __call__(self, module, args, kwargs):
        if not self.draining:
            self.flag(1)


def is_sharded(model: Any) -> bool:
    """True for a model loaded by ``load_sharded`` (its forwards are collectives)."""
    return isinstance(getattr(model, "_assure_lockstep", None), _Lockstep)


def inference(model: Any):
    """The no-autograd context for evaluating ``model``: ``inference_mode``, or ``no_grad`` for sharded weights
    (FSDP gathers them into buffers it updates in place later, in training, which inference tensors forbid)."""
    return torch.no_grad() if is_sharded(model) else torch.inference_mode()


def drain(model: Any, pad_id: int) -> None:
    """Answer the other ranks' forwards with a one-token stand-in until no rank has work left. Called by
    every rank once its own share is done; returns on all ranks together."""
    state: _Lockstep = model._assure_lockstep
    stand_in = torch.full((1, 1), pad_id, dtype=torch.long, device=state.device)
    state.draining = True
    try:
        with torch.no_grad():
            while state.flag(0):
                model(input_ids=stand_in, use_cache=False)
    finally:
        state.draining = False


def decoder_layer_classes(model: torch.nn.Module) -> set[str]:
    """The class names of the model's decoder layers, FSDP's units: every ``_no_split_modules`` in the module
    tree (through a peft wrapper or a composite model), as accelerate's auto-wrap policy reads them."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    return names


def shard_units(model: torch.nn.Module, *, reshard_root: bool) -> int:
    """Shard ``model`` in place across the process group: each decoder layer (the classes its
    ``_no_split_modules`` names, as accelerate's auto-wrap policy reads them) is a unit, then the rest as
    the root (the module whose forward is called, so the root's weights are gathered before it runs).
    ``reshard_root``: free the root's weights after each forward as well (FSDP keeps them by default, for
    the backward that follows in training). Returns the number of layer units."""
    from torch.distributed.fsdp import fully_shard

    names = decoder_layer_classes(model)
    layers = [m for m in model.modules() if type(m).__name__ in names]
    for layer in layers:
        fully_shard(layer)
    fully_shard(model, reshard_after_forward=reshard_root)
    return len(layers)


def _whole_on_cpu(path: Path, adapters: list[Path], dtype: torch.dtype, allow_pickle: bool,
                  trust_remote_code: bool):
    """Rank 0's ``(model, tokenizer)``, the model whole in CPU memory, each adapter merged in turn."""
    model, tokenizer = load_model(path, device="cpu", dtype=dtype, allow_pickle=allow_pickle,
                                  trust_remote_code=trust_remote_code)
    for adapter in adapters:
        from peft import PeftModel  # lazy: peft takes seconds to import and only adapters need it

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False).merge_and_unload()
    return model, tokenizer


def load_weights(path: str | Path, *, shards, device: torch.device, dtype: torch.dtype,
                 adapters: list[Path] | tuple[Path, ...] = (), allow_pickle: bool = False,
                 trust_remote_code: bool = False):
    """``(model, tokenizer)`` of a run's model folder: whole on this process (``load_model``), or across
    ``shards`` (the ranks ``Ranks.for_weights`` gives under ``model.parallel: fsdp``) with ``adapters``
    merged in. The one place that chooses."""
    if shards is None:
        if adapters:
            raise ValueError("adapters are merged only into sharded weights; apply them with peft otherwise")
        return load_model(path, device=device, dtype=dtype, allow_pickle=allow_pickle,
                          trust_remote_code=trust_remote_code)
    return load_sharded(path, ranks=shards, device=device, dtype=dtype, adapters=adapters,
                        allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)


def load_sharded(path: str | Path, *, ranks, device: torch.device, dtype: torch.dtype,
                 adapters: list[Path] | tuple[Path, ...] = (), allow_pickle: bool = False,
                 trust_remote_code: bool = False):
    """``(model, tokenizer)``: the model at ``path`` (``adapters`` merged in, in order) in shards across
    ``ranks``, eval mode, each rank's shards on ``device``. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    whole = None
    if ranks.main:
        whole, tokenizer = _whole_on_cpu(path, list(adapters), dtype, allow_pickle, trust_remote_code)
    else:
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(path, f"model failed to build: {type(exc).__name__}: {exc}") from exc
    # Evaluation has no backward to keep the root's weights for, and peft's freezing (a LoRA fine-tune of
    # these weights) must reach the sharded parameters, not gathered copies left in place.
    shard_units(model, reshard_root=True)
    model.to_empty(device=device)
    state = whole.state_dict() if whole is not None else {}
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    # Buffers are not weights (rotary frequencies, not in the state dict when non-persistent), and the
    # generation config is load_model's (pad token set): both rank 0's, whole.
    buffers, model.generation_config = ranks.share(
        ({k: b.clone() for k, b in whole.named_buffers()}, whole.generation_config) if whole is not None else None)
    for name, buf in model.named_buffers():
        buf.copy_(buffers[name].to(buf.device))
    del whole, state
    lockstep = _Lockstep(device)
    model._assure_lockstep = lockstep
    model.register_forward_pre_hook(lockstep, prepend=True, with_kwargs=True)
    return model.eval(), tokenizer
