"""What a reader sees for a run's evaluated stages.

Records name the stages ``base``, ``tuned`` and ``stress`` whatever the run did, and those names stay in the
ledger and its digests. A run that fine-tuned shows them as Base, Tuned and Stress. An evaluate-only run
(``assure evaluate``: a supplied target, optionally a baseline; its ledger has ``supplied_model`` records)
tuned nothing, so its ``tuned`` stage is shown as Target and its ``base`` stage as Baseline. Packs, their
chart legends and ``assure show`` take every stage label from here. No heavy imports: ``show`` must start fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_LABELS = {
    False: {"base": "Base", "tuned": "Tuned", "stress": "Stress"},
    True: {"base": "Baseline", "tuned": "Target", "stress": "Stress"},
}
# Chart legends name the model each stage evaluated, in a few more words.
_LEGENDS = {
    False: {"base": "Base model", "tuned": "Safety-tuned", "stress": "After benign stress tune"},
    True: {"base": "Baseline model", "tuned": "Target model", "stress": "Stress model"},
}


def is_evaluate_only(records: Iterable[Any]) -> bool:
    """Whether the run evaluated supplied models rather than fine-tuning one (it recorded what was supplied)."""
    return any(getattr(r, "kind", None) == "supplied_model" for r in records)


def stage_label(stage: str, evaluate_only: bool, *, lower: bool = False) -> str:
    """The label of a recorded stage name for a reader: ``Tuned`` or, in an evaluate-only run, ``Target``.
    A stage name without a label is shown as recorded."""
    label = _LABELS[evaluate_only].get(stage, stage)
    return label.lower() if lower else label


def legend_label(stage: str, evaluate_only: bool) -> str:
    """A stage's chart legend entry: ``Safety-tuned`` or, in an evaluate-only run, ``Target model``."""
    return _LEGENDS[evaluate_only].get(stage, stage)


def stage_labels(evaluate_only: bool) -> dict[str, str]:
    """Every stage's label (capitalised), for templates: ``{{ stage.tuned }}``, ``{{ stage.base|lower }}``."""
    return dict(_LABELS[evaluate_only])
