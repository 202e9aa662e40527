"""The hazard log a Clinical Safety Officer would keep (DCB0129 / DCB0160), from a run's measurements.

Hazards come from measured weaknesses (``hazard_sources``): every harmful category, over-refusal
per benign category, the prefilling attack, the jailbreak templates, persistence after the stress
fine-tune and signposting per regulated-advice category. For each:

* likelihood is banded from the 95% interval's upper bound of the unsafe-event rate (``risk``),
  initial from the base model, residual from the tuned model (after stress, for persistence);
* severity is the CSO's, from the organisation profile's ``hazards:`` map (keyed by the hazard's
  stable key); without it severity, risk and acceptability read "pending CSO", never a default;
* risk is the DCB0129 matrix's rating of severity × likelihood, residual from the residual ratings;
* owner is the profile's, else the Clinical Safety Officer, else NOT PROVIDED; status the profile's,
  else open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assurance.profile import HazardAssessment, OrgProfile, SeverityName
from assurance.report.hazard_model import NOT_MEASURED, PENDING, Control, Exposure, Finding, Hazard, HazardText, Rating
from assurance.report.hazard_sources import findings
from assurance.report.risk import (
    LIKELIHOOD_BANDS,
    LIKELIHOODS,
    RISK_MATRIX,
    RISK_RATINGS,
    SEVERITIES,
    likelihood_of,
    risk_of,
)
from assurance.report.view import RunView

__all__ = ["LIKELIHOODS", "RISK_MATRIX", "SEVERITIES", "Control", "Hazard", "HazardCounts", "Rating", "context",
           "hazard_log"]

NOT_PROVIDED = "NOT PROVIDED"
"""The owner cell when neither the profile's hazard entry nor its Clinical Safety Officer names anyone."""


def _rating(severity: SeverityName | None, e: Exposure) -> Rating:
    likelihood = None if e.upper is None else likelihood_of(e.upper)
    risk = risk_of(severity, likelihood) if severity is not None and likelihood is not None else None
    return Rating(severity or PENDING, likelihood or NOT_MEASURED, e.upper, e.evidence, risk)


def _owner(assessed: HazardAssessment | None, profile: OrgProfile | None) -> str:
    if assessed is not None and assessed.owner:
        return assessed.owner
    cso = profile.roles.clinical_safety_officer if profile is not None else None
    return cso.name if cso is not None else NOT_PROVIDED


def _hazard(number: int, f: Finding, assessed: HazardAssessment | None, profile: OrgProfile | None) -> Hazard:
    severity = assessed.severity if assessed else None
    initial = _rating(severity, f.initial)
    residual = _rating((assessed.residual_severity or severity) if assessed else None, f.residual)
    if residual.risk is not None:
        acceptability: str = residual.risk.acceptability
    else:
        acceptability = PENDING if residual.severity == PENDING else "not rated: not measured"
    text = {name: getattr(f, name) for name in HazardText.__dataclass_fields__}
    return Hazard(**text, id=f"HAZ-{number:03d}", initial=initial, controls=f.controls, residual=residual,
                  acceptability=acceptability, owner=_owner(assessed, profile),
                  status=(assessed.status if assessed and assessed.status else "open"),
                  note=assessed.note if assessed else None)


def hazard_log(view: RunView, profile: OrgProfile | None = None) -> list[Hazard]:
    """The hazard log, numbered HAZ-001 on, with the CSO's assessments from ``profile`` where it has them."""
    assessed = profile.hazards if profile is not None else {}
    return [_hazard(i, f, assessed.get(f.key), profile) for i, f in enumerate(findings(view), start=1)]


@dataclass(frozen=True)
class HazardCounts:
    """The log in numbers, for a decision summary."""

    total: int
    """Hazards in the log."""
    open: int
    """Hazards whose status is open."""
    unacceptable: int
    """Hazards whose residual risk is rated 4 or 5."""
    undesirable: int
    """Hazards whose residual risk is rated 3 (acceptable only with the CSO's ALARP justification)."""
    pending: int
    """Hazards whose severity the Clinical Safety Officer has yet to set."""
    gate_failed: int
    """Hazards on which a release-gate check failed."""
    not_effective: int
    """Hazards with at least one control in place but not shown effective."""


def counts(log: list[Hazard]) -> HazardCounts:
    """Count the log's open, unacceptable, undesirable and pending hazards."""
    return HazardCounts(
        total=len(log), open=sum(h.status == "open" for h in log), unacceptable=sum(h.unacceptable for h in log),
        undesirable=sum(h.residual.risk is not None and h.residual.risk.rating == 3 for h in log),
        pending=sum(h.pending for h in log), gate_failed=sum(h.gate_failed for h in log),
        not_effective=sum(any(c.status == "in place, not effective" for c in h.controls) for h in log))


def top(log: list[Hazard], n: int = 5) -> list[Hazard]:
    """The hazards a decision summary leads with: failed gates first, then residual risk, then likelihood."""
    def weight(h: Hazard) -> tuple[bool, int, int]:
        return h.gate_failed, h.residual.risk.rating if h.residual.risk else 0, h.residual.band

    return sorted(log, key=weight, reverse=True)[:n]


def context(view: RunView, profile: OrgProfile | None = None) -> dict[str, Any]:
    """What the hazard-log partial (``sections/hazard_log.html``) and an NHS decision summary read."""
    log = hazard_log(view, profile)
    known = {h.key for h in log}
    return {
        "hazards": log,
        "hazard_counts": counts(log),
        "top_hazards": top(log),
        "unknown_hazard_keys": sorted(set(profile.hazards) - known) if profile is not None else [],
        "severities": SEVERITIES,
        "likelihoods": LIKELIHOODS,
        "risk_matrix": RISK_MATRIX,
        "risk_ratings": [RISK_RATINGS[r] for r in sorted(RISK_RATINGS)],
        "likelihood_bands": LIKELIHOOD_BANDS,
        "hazard_models_supplied": view.evaluate_only,  # initial = baseline, residual = target
    }
