"""One policy check of a verdict: which rule, on which measure, what was seen, what was required, the outcome.

The policy (``assurance.policy``) writes these; every reader (the gate's JUnit, the
terminal, the packs) reads them as recorded and never re-applies a threshold.

Verdicts written before checks were typed (``schema_version`` 1) hold each check as a
plain mapping ``{name, category, observed, threshold, passed, reason}``. Those still
parse: ``Check.from_legacy`` reads them into this shape. Their stored payload (and so
their digest and the chain) is untouched; only the in-memory reading is typed.

Since verdicts respect their intervals, a check's ``outcome`` is what the 95% interval
says (``pass``, ``fail`` or ``inconclusive``) and ``counted_as`` is what the verdict made
of it under the policy's ``decision_rule``. Checks written before that have no
``counted_as``: they were decided on the point estimate and count as their outcome, which
is always ``pass`` or ``fail``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Stage

Outcome = Literal["pass", "fail", "inconclusive"]
"""What a check's interval says: ``pass`` (the whole 95% interval is on the allowed side of the
threshold), ``fail`` (the whole interval is on the wrong side) or ``inconclusive`` (it straddles
the threshold). Checks written before decision rules say ``pass`` or ``fail`` of the point estimate."""

Counted = Literal["pass", "fail"]
"""How a check counted toward the verdict."""

DecisionRule = Literal["inconclusive-fails", "inconclusive-passes", "point-estimate"]
"""How a verdict turns check outcomes into a decision: ``inconclusive-fails`` (the default; a release
gate errs on the side of caution), ``inconclusive-passes`` (only a check whose interval lies wholly on
the wrong side fails), ``point-estimate`` (the observed value alone against the threshold, as verdicts
did before intervals were respected; kept for comparison)."""

IntervalMethod = Literal["wilson", "cluster-wilson", "paired-bootstrap", "cluster-bootstrap", "newcombe"]
"""How a check's interval was obtained: the rate's recorded interval (``wilson``, or ``cluster-wilson``
when probes were clustered by item); for a change between stages, the recorded paired comparison's
bootstrap interval (``paired-bootstrap``, or ``cluster-bootstrap`` when items were resampled with all
their variants) or, without one, Newcombe's interval from the two rates' intervals (``newcombe``)."""

Comparison = Literal[">=", "<="]
"""How ``observed`` is held against ``threshold``: at least, or at most."""


class Check(BaseModel):
    """One rule of the policy applied to one measure."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    """The rule: ``min_refusal_rate``, ``max_over_refusal_rate``, ``max_regression``,
    ``max_stress_refusal_drop`` or ``max_stress_asr_increase``."""
    metric: str | None
    """The metric the rule reads (``refusal_rate``, ``attack_success_rate``...); None only for a
    legacy check whose rule this version does not know."""
    subject: str
    """What the check is about: a category (``weapons``, ``overall``) or an attack variant's label."""
    suite: str | None = None
    """The suite of the metric records read; None when not recorded (legacy checks of unknown rules)."""
    variant: str | None = None
    """The attack variant of the metric records read (``prefill-k10``); None for the suite as a whole."""
    stages: list[Stage] = Field(default_factory=list)
    """The evaluation stages whose records the check reads: ``[tuned]``, ``[base, tuned]`` for a
    regression, ``[tuned, stress]`` for persistence."""
    observed: float | None
    """The value held against the threshold (a rate, or a change between stages); None when the
    battery had no result for the subject."""
    ci_low: float | None = None
    """Lower end of the observed value's 95% interval (a rate's, or a change's); None on legacy checks and
    on checks of changes written before intervals were respected."""
    ci_high: float | None = None
    """Upper end of the observed value's 95% interval; None where ``ci_low`` is."""
    interval_method: IntervalMethod | None = None
    """How ``ci_low``/``ci_high`` were obtained (see ``IntervalMethod``); None on checks written before."""
    threshold: float | None
    """The limit the policy set for this check."""
    comparison: Comparison | None
    """``>=``: observed must be at least the threshold; ``<=``: at most. None for a legacy check of an
    unknown rule."""
    outcome: Outcome
    """What the interval says: ``pass``, ``fail`` or ``inconclusive`` (see ``Outcome``)."""
    counted_as: Counted | None = None
    """How the verdict counted this check under its decision rule; None on checks written before decision
    rules (they count as their outcome)."""
    reason: str = ""
    """Why the check failed or was inconclusive, in plain words (empty when it passed outright)."""

    @property
    def passed(self) -> bool:
        """True when the check counted as a pass toward the verdict."""
        return (self.counted_as or self.outcome) == "pass"

    @classmethod
    def from_legacy(cls, value: Any) -> Any:
        """A check as stored before checks were typed, read into this shape; anything else unchanged."""
        if not isinstance(value, dict) or "passed" not in value or "outcome" in value:
            return value
        name = str(value.get("name", ""))
        metric, comparison, stages = _LEGACY_RULES.get(name, (None, None, []))
        subject = str(value.get("category", ""))
        suite: str | None = "refusal" if metric in ("refusal_rate", "over_refusal_rate") else None
        variant: str | None = None
        if name == "max_stress_asr_increase":
            suite, variant = _legacy_attack(subject)
        return {"name": name, "metric": metric, "subject": subject, "suite": suite, "variant": variant,
                "stages": stages, "observed": value.get("observed"), "threshold": value.get("threshold"),
                "comparison": comparison, "outcome": "pass" if value.get("passed") else "fail",
                "reason": str(value.get("reason") or "")}


class LegacyCheck(BaseModel):
    """A check as verdicts with ``schema_version`` 1 stored it (published so old payloads still validate)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    """The rule."""
    category: str
    """The category, or the attack variant's label."""
    observed: float | None
    """The value held against the threshold."""
    threshold: float | None
    """The limit."""
    passed: bool
    """Whether the check passed."""
    reason: str
    """Why it failed (empty when it passed)."""


# The rules that existed when checks were untyped, and what each read. Frozen: it describes
# records already written, so it never follows later changes to the policy.
_LEGACY_RULES: dict[str, tuple[str, Comparison, list[str]]] = {
    "min_refusal_rate": ("refusal_rate", ">=", ["tuned"]),
    "max_over_refusal_rate": ("over_refusal_rate", "<=", ["tuned"]),
    "max_regression": ("refusal_rate", ">=", ["base", "tuned"]),
    "max_stress_refusal_drop": ("refusal_rate", "<=", ["tuned", "stress"]),
    "max_stress_asr_increase": ("attack_success_rate", "<=", ["tuned", "stress"]),
}


def _legacy_attack(label: str) -> tuple[str | None, str | None]:
    # The legacy label was the variant, or "<suite> (all variants)" for a suite's total; variants
    # were named "<suite-ish>-k<k>" or "<suite>:<template>", so the suite is known only for totals.
    if label.endswith(" (all variants)"):
        return label.removesuffix(" (all variants)"), None
    return None, label
