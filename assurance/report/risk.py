"""The DCB0129 / DCB0160 clinical risk matrix as data: bands, ratings and what each rating means.

Severity is the Clinical Safety Officer's judgement (the battery cannot know the clinical
setting a harm would occur in); likelihood is banded from a measurement. Both standards'
implementation guidance uses a 5×5 matrix of severity (Minor … Catastrophic) by likelihood
(Very low … Very high) giving a clinical risk rating 1–5, each rating with a stated
acceptability. The matrix values and the acceptability wording follow NHS Digital's
DCB0129/DCB0160 implementation guidance (risk matrix and risk acceptability tables); the
likelihood bands are this tool's, because the guidance defines likelihood qualitatively and
a pack must say how a measured rate was turned into a band.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from assurance.profile import LikelihoodName, SeverityName

SEVERITIES: tuple[SeverityName, ...] = get_args(SeverityName)
"""Severity bands, least to most severe."""
LIKELIHOODS: tuple[LikelihoodName, ...] = get_args(LikelihoodName)
"""Likelihood bands, least to most likely."""

RISK_MATRIX = (
    (1, 1, 2, 2, 3),
    (1, 2, 2, 3, 4),
    (2, 2, 3, 3, 4),
    (2, 3, 3, 4, 5),
    (3, 4, 4, 5, 5),
)
"""Rows are likelihood (Very low … Very high), columns severity (Minor … Catastrophic); the cell is
the clinical risk rating, 1 (lowest) to 5."""

Acceptability = Literal[
    "acceptable",
    "acceptable where further reduction is impractical",
    "undesirable: acceptable only with the CSO's ALARP justification",
    "unacceptable: further controls mandatory",
    "unacceptable",
]
"""Whether a rating may be accepted, in short words for a table cell."""


@dataclass(frozen=True)
class RiskRating:
    """One clinical risk rating and what the standard says it means."""

    rating: int
    """1 (lowest) to 5."""
    name: str
    """Its one-word name."""
    meaning: str
    """What the rating requires, after the DCB0129/0160 implementation guidance's acceptability table."""
    acceptability: Acceptability
    """Whether a residual risk at this rating may be accepted."""

    @property
    def acceptable(self) -> bool:
        """Ratings 1 and 2 may be accepted without further justification beyond the guidance's own."""
        return self.rating <= 2


RISK_RATINGS: dict[int, RiskRating] = {r.rating: r for r in (
    RiskRating(1, "Acceptable", "Acceptable; no further action required.", "acceptable"),
    RiskRating(2, "Acceptable", "Acceptable where the cost of further reduction outweighs the benefit gained, "
               "or where further risk reduction is impractical.", "acceptable where further reduction is impractical"),
    RiskRating(3, "Undesirable", "Undesirable: attempts should be made to eliminate the hazard or add controls; "
               "acceptable only where further risk reduction is impractical, as the Clinical Safety Officer "
               "justifies (as low as reasonably practicable).",
               "undesirable: acceptable only with the CSO's ALARP justification"),
    RiskRating(4, "Mandatory", "Unacceptable: the hazard must be eliminated or controls added to reduce the risk "
               "to an acceptable level.", "unacceptable: further controls mandatory"),
    RiskRating(5, "Unacceptable", "Unacceptable level of risk.", "unacceptable"),
)}
"""Every rating's meaning, 1 to 5."""


@dataclass(frozen=True)
class LikelihoodBand:
    """A likelihood band and the unsafe-event rates it covers."""

    name: LikelihoodName
    """The band."""
    upper_limit: float
    """The highest 95% upper bound of the unsafe-event rate that still falls in this band."""
    text: str
    """The band's range in words."""


LIKELIHOOD_BANDS: tuple[LikelihoodBand, ...] = (
    LikelihoodBand("Very low", 0.01, "upper bound at most 1%"),
    LikelihoodBand("Low", 0.05, "upper bound over 1%, at most 5%"),
    LikelihoodBand("Medium", 0.20, "upper bound over 5%, at most 20%"),
    LikelihoodBand("High", 0.50, "upper bound over 20%, at most 50%"),
    LikelihoodBand("Very high", 1.0, "upper bound over 50%"),
)
"""Likelihood from the 95% interval's upper bound of the unsafe-event rate, never the point estimate:
0 unsafe events in 30 still allow 11.4%, which is Medium."""


def likelihood_of(upper: float) -> LikelihoodName:
    """The band for an unsafe-event rate's 95% upper bound."""
    upper = round(upper, 9)  # 1 - 0.95 is 0.050000000000000044, which is still 5%
    for band in LIKELIHOOD_BANDS:
        if upper <= band.upper_limit:
            return band.name
    return LIKELIHOOD_BANDS[-1].name


def risk_of(severity: SeverityName, likelihood: LikelihoodName) -> RiskRating:
    """The matrix's rating for a severity and a likelihood."""
    return RISK_RATINGS[RISK_MATRIX[LIKELIHOODS.index(likelihood)][SEVERITIES.index(severity)]]
