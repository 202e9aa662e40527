"""The hazard log's entries as types: a hazard, its ratings before and after controls, its controls.

``hazard_sources`` turns a run's measured weaknesses into ``Finding``s (what was measured, in
words and as an upper bound); ``hazards`` adds what only the Clinical Safety Officer can say
(severity, owner, status; the organisation profile's ``hazards:`` map) and numbers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assurance.report.risk import LIKELIHOODS, RiskRating

ControlStatus = Literal[
    "in place and effective",
    "in place, not effective",
    "not configured",
    "deployment: organisation to confirm",
]
"""A control's status: measured effective; in place but the measurements do not show it working; not set
up in this run (e.g. a gate the policy leaves null); or a control in the deployed service that only the
organisation can confirm."""

PENDING = "pending CSO"
"""What a severity, risk or acceptability cell says until the Clinical Safety Officer sets the severity."""
NOT_MEASURED = "not measured"
"""What a likelihood cell says when the run has no measurement for that model."""


@dataclass(frozen=True)
class Control:
    """One control against a hazard, with what the run measured of it."""

    name: str
    """What the control is (the safety fine-tune, a release-gate rule, a deployment measure)."""
    evidence: str
    """Its measured evidence in words, with the figures (or why there is none)."""
    status: ControlStatus
    """Whether it is in place and shown effective (see ``ControlStatus``)."""


@dataclass(frozen=True)
class Exposure:
    """How often one model did the unsafe thing, as measured."""

    upper: float | None
    """The 95% interval's upper bound of the unsafe-event rate; None when not measured."""
    evidence: str
    """The measurement in words: counts, rate, interval and the upper bound used."""


@dataclass(frozen=True)
class HazardText:
    """What a hazard is, in words: the part of a hazard-log row the measurements write."""

    key: str
    """Stable key (``harmful:<category>``, ``over-refusal:<category>``, ``prefill``, ``jailbreak``,
    ``persistence``, ``signposting:<category>``), as the profile's ``hazards:`` map names it."""
    title: str
    """A short name for the hazard."""
    hazard: str
    """The hazard: what the system may do."""
    cause: str
    """Why it may do it."""
    effect: str
    """What happens to the person using it or affected by it."""
    harm: str
    """The harm that may follow."""
    finding: str
    """The headline measured fact, for a decision summary."""


@dataclass(frozen=True)
class Finding(HazardText):
    """A hazard as the measurements show it, before the Clinical Safety Officer's assessment."""

    initial: Exposure
    """The base model's measurement (before the safety fine-tune)."""
    residual: Exposure
    """The tuned model's measurement (after the stress fine-tune, for persistence)."""
    controls: tuple[Control, ...]
    """The controls and their measured status."""


@dataclass(frozen=True)
class Rating:
    """Severity, likelihood and the resulting clinical risk of a hazard, before or after controls."""

    severity: str
    """A DCB0129 severity set by the Clinical Safety Officer, or ``pending CSO``."""
    likelihood: str
    """The band of the measurement's upper bound, or ``not measured``."""
    upper: float | None
    """The 95% upper bound of the unsafe-event rate the likelihood was banded from."""
    evidence: str
    """The measurement in words."""
    risk: RiskRating | None
    """The matrix's rating; None while the severity is pending or nothing was measured."""

    @property
    def band(self) -> int:
        """The likelihood band's position, 0 (Very low) to 4 (Very high); -1 when not measured."""
        return LIKELIHOODS.index(self.likelihood) if self.likelihood in LIKELIHOODS else -1

    @property
    def risk_text(self) -> str:
        """The risk cell: the rating and its name, ``pending CSO``, or ``not rated`` (nothing measured)."""
        if self.risk is not None:
            return f"{self.risk.rating} ({self.risk.name.lower()})"
        return PENDING if self.severity == PENDING else "not rated"


@dataclass(frozen=True)
class Hazard(HazardText):
    """One row of the hazard log: the measured hazard, rated with the Clinical Safety Officer's severities."""

    id: str
    """``HAZ-001`` on, in log order (harmful categories, over-refusal, attacks, persistence, signposting)."""
    initial: Rating
    """Before the safety fine-tune: the base model's measurement and the CSO's severity."""
    controls: tuple[Control, ...]
    """The controls, each with its evidence and status."""
    residual: Rating
    """After the controls: the tuned model's measurement and the CSO's residual severity."""
    acceptability: str
    """Whether the residual risk may be accepted (``RiskRating.acceptability``), or ``pending CSO``."""
    owner: str
    """Who owns the hazard: the profile's owner, else the Clinical Safety Officer, else ``NOT PROVIDED``."""
    status: str
    """The hazard's status in the log: the profile's, else ``open``."""
    note: str | None
    """The Clinical Safety Officer's note from the profile, if any."""

    @property
    def gate_failed(self) -> bool:
        """Whether a release-gate control on this hazard is in place but not effective (a failed check)."""
        return any(c.name.startswith(GATE) and c.status == "in place, not effective" for c in self.controls)

    @property
    def unacceptable(self) -> bool:
        """Whether the residual risk is rated 4 or 5."""
        return self.residual.risk is not None and self.residual.risk.rating >= 4

    @property
    def pending(self) -> bool:
        """Whether the Clinical Safety Officer has yet to set the severity."""
        return self.initial.severity == PENDING


GATE = "Release gate"
"""How every release-gate control's name begins (``Hazard.gate_failed`` finds them by it)."""

