"""A model the run was given to evaluate, not one it trained (``assure evaluate``, ``finetune.enabled: false``)."""

from __future__ import annotations

from typing import Literal

from .base import BaseRecord

SuppliedKind = Literal["folder", "adapter", "endpoint"]
"""How the model was supplied: a local model folder, a base model plus a PEFT adapter, or an endpoint."""


class SuppliedModelRecord(BaseRecord):
    """What was supplied for one evaluated stage, with its digests, or the statement that none could be taken.

    Written with the run's provenance, before any evaluation; the digests repeat those of the ``artifact``
    records beside it, so a pack states the provenance from this one record."""

    kind: Literal["supplied_model"] = "supplied_model"
    role: Literal["target", "baseline"]
    """``target``: the model the gate decides on; ``baseline``: the model before the change."""
    stage: Literal["base", "tuned"]
    """The evaluated stage its metrics carry: ``tuned`` for the target, ``base`` for the baseline."""
    source: SuppliedKind
    """How it was supplied."""
    model_path: str | None = None
    """The model folder (for an adapter, the base model folder); None for an endpoint."""
    model_digest: str | None = None
    """``sha256:<hex>`` directory digest of ``model_path``."""
    adapter_path: str | None = None
    """The PEFT adapter folder, for ``adapter``."""
    adapter_digest: str | None = None
    """``sha256:<hex>`` directory digest of ``adapter_path``."""
    endpoint_url: str | None = None
    """For ``endpoint``: the URL requests went to (no credentials or query)."""
    endpoint_model: str | None = None
    """For ``endpoint``: the model name sent with every request."""
    endpoint_api: Literal["completions", "chat"] | None = None
    """For ``endpoint``: ``completions`` (prompts rendered here) or ``chat`` (the server applies its template)."""
    tokenizer_digest: str | None = None
    """For ``endpoint``: digest of the local tokenizer folder used to render prompts and count prefill tokens."""
    weights_hashed: bool
    """Whether the weights evaluated were hashed. False for an endpoint: no weights could be hashed, so the
    figures are tied to a URL and a model name, and whatever the server ran then."""
