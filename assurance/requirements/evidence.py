"""The evidence kinds a requirement map may name: registry name -> (heading, function).

A map's ``evidence:`` list names these; each function reads a RunView only and returns a Finding
(``finding.py``). Adding a kind is a function in ``provenance.py`` or ``results.py`` and one line
here; the maps then use it by name.
"""

from __future__ import annotations

from assurance.report.view import RunView
from assurance.requirements import provenance as p
from assurance.requirements import results as r
from assurance.requirements.finding import Finding, Reader

EVIDENCE: dict[str, tuple[str, Reader]] = {
    "model_identity": ("Model identity", p.model_identity),
    "training_data_recorded": ("Training data recorded", p.training_data_recorded),
    "finetune_recorded": ("Fine-tune recorded", p.finetune_recorded),
    "battery_pinned": ("Battery and judges pinned", p.battery_pinned),
    "judge_validated": ("Judge validated against human labels", p.judge_validated),
    "judge_agreement": ("Agreement between judges", p.judge_agreement),
    "environment_recorded": ("Environment recorded", p.environment_recorded),
    "ledger_sealed": ("Ledger sealed and complete", p.ledger_sealed),
    "signed_manifest": ("Signed manifest", p.signed_manifest),
    "release_gate": ("Release-gate verdict", p.release_gate),
    "signoffs_recorded": ("Sign-offs recorded", p.signoffs_recorded),
    "evaluation_recorded": ("Evaluation with intervals", r.evaluation_recorded),
    "refusal_policy": ("Refusal of harmful prompts", r.refusal_policy),
    "over_refusal_policy": ("Over-refusal of benign prompts", r.over_refusal_policy),
    "no_regression": ("No regression against the model before the change", r.no_regression),
    "prefill_robustness": ("Prefilling-attack robustness", r.prefill_robustness),
    "jailbreak_robustness": ("Jailbreak robustness", r.jailbreak_robustness),
    "persistence": ("Persistence under further fine-tuning", r.persistence),
    "signposting": ("Signposting to UK help", r.signposting),
    "capability_retained": ("Capability retained", r.capability_retained),
}
"""Every evidence kind, by the name the maps use."""


def find(kind: str, view: RunView) -> Finding:
    """The finding of evidence kind ``kind`` on ``view``, labelled with its kind and heading."""
    label, reader = EVIDENCE[kind]
    found = reader(view)
    return Finding(found.state, found.summary, list(found.records), kind, label)
