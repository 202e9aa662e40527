"""Plan settings for a model supplied to be evaluated (``assure evaluate``, or ``finetune.enabled: false``).

A release gate often has to assess a model trained elsewhere: a local model
folder, a base model with a PEFT adapter from another trainer, or a model only
reachable over an OpenAI-compatible endpoint. Each is a ``target`` kind; the
optional ``baseline`` (the model before the change) is evaluated as the
``base`` stage so the paired base -> tuned comparisons work as in a fine-tune run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..urls import check_public_base_url
from .base import MAX_SEED, Section

TARGET_KEY_ENV = "ASSURE_TARGET_API_KEY"


class FolderTarget(Section):
    """A local Hugging Face model folder (safetensors), hashed and loaded as the run's ``model`` is."""

    kind: Literal["folder"]
    """``folder``: a whole model in one local folder."""
    path: str
    """The model folder, or ``builtin:tiny-chat``; a relative path resolves against the plan's folder."""
    allow_pickle: bool = False
    """Allow pickled weights (``*.bin``). Off: pickles can run code when loaded."""
    trust_remote_code: bool = False
    """Allow model code shipped in the folder. Off: it would run unreviewed code."""


class AdapterTarget(Section):
    """A base model folder plus a PEFT (LoRA) adapter folder, e.g. from TRL or axolotl; both are hashed."""

    kind: Literal["adapter"]
    """``adapter``: a base model with a PEFT adapter applied (peft)."""
    base: str
    """The base model folder the adapter was trained on, or ``builtin:tiny-chat``."""
    adapter: str
    """The adapter folder (``adapter_config.json`` and the adapter weights)."""
    allow_pickle: bool = False
    """Allow pickled base weights (``*.bin``). Off: pickles can run code when loaded."""
    trust_remote_code: bool = False
    """Allow model code shipped in the base folder. Off: it would run unreviewed code."""


class EndpointTarget(Section):
    """A model served behind an OpenAI-compatible API (vLLM, TGI, llama.cpp server, a hosted provider).

    No weights can be hashed: the run records the URL and model name, and the packs say so. Decoding is
    greedy (temperature 0, a fixed seed). The capability suite scores multiple-choice items by
    log-likelihood, which an endpoint does not give, so it cannot run against one."""

    kind: Literal["endpoint"]
    """``endpoint``: generation over HTTP."""
    base_url: str
    """Endpoint base URL, e.g. ``http://127.0.0.1:8000/v1``. Must carry no credentials or query string: the plan
    is recorded in the ledger."""
    model: str
    """The model name sent with every request (recorded)."""
    api: Literal["completions", "chat"] = "completions"
    """``completions``: prompts are rendered here with ``tokenizer``'s chat template and sent to
    ``/v1/completions``, so prefilling attacks run exactly as on a local model. ``chat``: the messages are sent to
    ``/v1/chat/completions`` and the server applies its template; prefilling attacks cannot be sent this way."""
    tokenizer: str | None = None
    """A local folder with the served model's tokenizer and chat template (hashed). Required for ``completions``;
    with ``chat`` it is only used to count the prefill tokens of attacks, which ``chat`` cannot send."""
    api_key_env: str = Field(TARGET_KEY_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable holding the API key (only the name is recorded)."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seed sent with every request (temperature is always 0)."""
    timeout: float = Field(120.0, gt=0)
    """Seconds per request."""
    retries: int = Field(2, ge=0)
    """Retries on timeouts and 408/429/5xx answers."""
    workers: int = Field(4, gt=0)
    """Requests in flight at once."""

    @model_validator(mode="after")
    def _checked(self) -> EndpointTarget:
        check_public_base_url(self.base_url)
        if self.api == "completions" and self.tokenizer is None:
            raise ValueError("tokenizer: required with api 'completions' (prompts are rendered with its chat "
                             "template); give the served model's tokenizer folder, or use api 'chat'")
        return self


Target = Annotated[FolderTarget | AdapterTarget | EndpointTarget, Field(discriminator="kind")]
"""A supplied model, by ``kind``: ``folder``, ``adapter`` or ``endpoint``."""
