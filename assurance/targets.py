"""The models an evaluate-only run was given (``plan.target``, ``plan.baseline``): checked, hashed, loaded.

Each supplied model becomes a ``SuppliedModel``: where its files are (checked
before anything is written), the artifact records of everything that can be
hashed, the ``SuppliedModelRecord`` that states what was supplied, and how to
load it (a folder; a base folder with a PEFT adapter; or, for an endpoint, no
local model at all and an ``EndpointGenerator`` in its place).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .endpoint import EndpointGenerator, public_url
from .evidence.records import ArtifactRecord, SuppliedModelRecord
from .models.loading import ModelLoadError, check_folder, load_tokenizer, resolve_model_path
from .plan import AdapterTarget, EndpointTarget, Plan, Target

ROLES: dict[str, Literal["base", "tuned"]] = {"baseline": "base", "target": "tuned"}
"""Supplied role -> the evaluated stage its metrics carry (the paired comparison is base -> tuned)."""


@dataclass(frozen=True)
class SuppliedModel:
    """One supplied model, its folders resolved and checked."""

    role: Literal["target", "baseline"]
    """``target`` (gated) or ``baseline`` (the model before the change)."""
    spec: Target
    """The plan's entry."""
    model_path: Path | None
    """The model folder (an adapter's base folder); None for an endpoint."""
    adapter_path: Path | None = None
    """The PEFT adapter folder, for an adapter target."""
    tokenizer_path: Path | None = None
    """An endpoint's local tokenizer folder, if given."""

    @property
    def stage(self) -> Literal["base", "tuned"]:
        return ROLES[self.role]

    def hashed(self) -> list[tuple[str, Path]]:
        """(artifact role, folder) of everything that can be hashed. The target's model folder is ``base_model``,
        as the folder a fine-tune run starts from is, so packs and ``assure verify`` find it where they always have."""
        prefix = "" if self.role == "target" else "baseline_"
        found = []
        if self.model_path is not None:
            found.append(("base_model" if self.role == "target" else "baseline_model", self.model_path))
        if self.adapter_path is not None:
            found.append((f"{prefix}supplied_adapter", self.adapter_path))
        if self.tokenizer_path is not None:
            found.append((f"{prefix}endpoint_tokenizer", self.tokenizer_path))
        return found

    def record(self, arts: list[ArtifactRecord]) -> SuppliedModelRecord:
        """What was supplied, with the digests just taken (``arts``: the artifact records of ``hashed()``)."""
        digests = {Path(a.path): a.digest for a in arts}
        spec = self.spec
        common: dict[str, Any] = {"role": self.role, "stage": self.stage, "source": spec.kind}
        if isinstance(spec, EndpointTarget):
            return SuppliedModelRecord(**common, endpoint_url=public_url(spec.base_url), endpoint_model=spec.model,
                                       endpoint_api=spec.api, weights_hashed=False,
                                       tokenizer_digest=digests.get(self.tokenizer_path) if self.tokenizer_path
                                       else None)
        assert self.model_path is not None  # a folder or adapter target always has one
        return SuppliedModelRecord(**common, model_path=str(self.model_path), model_digest=digests[self.model_path],
                                   adapter_path=str(self.adapter_path) if self.adapter_path else None,
                                   adapter_digest=digests.get(self.adapter_path) if self.adapter_path else None,
                                   weights_hashed=True)

    def load(self, device, dtype, *, shards=None) -> tuple[Any, Any]:
        """``(model, tokenizer)``: None for an endpoint's model (its tokenizer, if given, is loaded).
        ``shards``: the ranks to shard the weights across (``model.parallel: fsdp``; an adapter is merged in)."""
        spec = self.spec
        if isinstance(spec, EndpointTarget):
            return None, load_tokenizer(self.tokenizer_path) if self.tokenizer_path else None
        assert self.model_path is not None  # a folder or adapter target always has one
        from .models.sharded import load_weights

        merged = [self.adapter_path] if shards is not None and self.adapter_path else []  # sharded: merged in
        model, tokenizer = load_weights(self.model_path, shards=shards, device=device, dtype=dtype, adapters=merged,
                                        allow_pickle=spec.allow_pickle, trust_remote_code=spec.trust_remote_code)
        if self.adapter_path is not None and not merged:
            from peft import PeftModel  # lazy: peft takes seconds to import and only adapters need it

            try:
                model = PeftModel.from_pretrained(model, str(self.adapter_path), is_trainable=False)
            except Exception as err:  # peft raises many types; one error naming the folder
                raise ModelLoadError(self.adapter_path, f"the adapter does not load onto {self.model_path}: "
                                                        f"{type(err).__name__}: {err}") from err
            model = model.to(device).eval()
        return model, tokenizer

    def weights(self) -> tuple[Path, Path | None] | None:
        """(model folder, adapter folder or None) as vLLM loads them; None for an endpoint."""
        return None if self.model_path is None else (self.model_path, self.adapter_path)

    def generator(self) -> EndpointGenerator | None:
        """The HTTP generator of an endpoint; None for local weights."""
        return EndpointGenerator(self.spec) if isinstance(self.spec, EndpointTarget) else None


def supplied_models(plan: Plan) -> dict[str, SuppliedModel]:
    """Stage -> the supplied model it evaluates (``base`` only with a baseline), every folder checked;
    empty for a fine-tune run. Raises ModelLoadError naming the folder before anything is written."""
    if plan.finetune.enabled:
        return {}
    found = {"tuned": _checked("target", plan.evaluated_target())}
    if plan.baseline is not None:
        found["base"] = _checked("baseline", plan.baseline)
    return found


def _checked(role: Literal["target", "baseline"], spec: Target) -> SuppliedModel:
    if isinstance(spec, EndpointTarget):
        tok = Path(spec.tokenizer) if spec.tokenizer else None
        if tok is not None and not tok.is_dir():
            raise ModelLoadError(tok, "tokenizer folder does not exist")
        return SuppliedModel(role, spec, None, tokenizer_path=tok.resolve() if tok else None)
    path = resolve_model_path(spec.base if isinstance(spec, AdapterTarget) else spec.path)
    check_folder(path, allow_pickle=spec.allow_pickle, trust_remote_code=spec.trust_remote_code)
    if not isinstance(spec, AdapterTarget):
        return SuppliedModel(role, spec, path)
    adapter = Path(spec.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise ModelLoadError(adapter, "adapter_config.json is missing; expected a PEFT adapter folder")
    return SuppliedModel(role, spec, path, adapter_path=adapter.resolve())
