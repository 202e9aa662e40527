"""What an evaluate-only run was given, as the packs state it ("model supplied" provenance).

Read from the run's ``supplied_model`` records alone. A run that fine-tuned has
none, and its packs show the fine-tuning sections; an evaluate-only run has
one per supplied model and its packs show these rows instead, never a
fine-tuning section left empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from assurance.evidence.records import SuppliedModelRecord
from assurance.report.filters import display_path
from assurance.report.view import RunView

HOW = {"folder": "a local model folder", "adapter": "a base model with a PEFT adapter",
       "endpoint": "an OpenAI-compatible endpoint"}
"""How a model was supplied, in words."""


@dataclass(frozen=True)
class SuppliedRow:
    """One supplied model as the pack states it."""

    role: str
    """``Model assessed`` (the target) or ``Baseline (before the change)``."""
    target: bool
    """True for the model the run assessed (templates pick it by this, not by the role's words)."""
    how: str
    """How it was supplied, in words."""
    what: str
    """Where it came from: folder(s), or the endpoint URL and model name."""
    hashed: bool
    """False for an endpoint: the pack prints ``endpoint: weights not hashed`` in place of digests
    (``pack_macros.weights``)."""
    digests: tuple[tuple[str, str], ...]
    """(what, ``sha256:<hex>``) for each digest taken: model, adapter, an endpoint's tokenizer."""


def supplied_rows(view: RunView) -> list[SuppliedRow]:
    """The run's supplied models, target first; empty for a run that fine-tuned."""
    return [_row(r) for r in sorted(view.supplied, key=lambda r: r.role != "target")]


def _row(rec: SuppliedModelRecord) -> SuppliedRow:
    target = rec.role == "target"
    role = "Model assessed" if target else "Baseline (before the change)"
    taken = (("model", rec.model_digest), ("adapter", rec.adapter_digest), ("tokenizer", rec.tokenizer_digest))
    digests = tuple((name, d) for name, d in taken if d)
    if not rec.weights_hashed:
        what = f"{rec.endpoint_url} (model {rec.endpoint_model}, {rec.endpoint_api} API)"
        return SuppliedRow(role, target, HOW[rec.source], what, False, digests)
    what = display_path(rec.model_path)
    if rec.adapter_path:
        what += f" + adapter {display_path(rec.adapter_path)}"
    return SuppliedRow(role, target, HOW[rec.source], what, True, digests)
