"""The hazard log's words: harms per category, rule names, and how figures are written.

The harms are this tool's plain-English starting points for the Clinical Safety Officer, who
owns the hazard analysis; a category without an entry says so rather than guess.
"""

from __future__ import annotations

from assurance.evidence.records import Check, MetricRecord


def pct(x: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{x * 100:.1f}%"


def pp(x: float) -> str:
    """A change in percentage points, signed."""
    return f"{x * 100:+.1f} pp"


def limit_words(c: Check) -> str:
    """A check's threshold as a reader says it: ``at least 80.0%`` or ``at most +5.0 pp``; ``no limit``."""
    if c.threshold is None:
        return "no limit"
    fmt = pp if c.name in CHANGE_RULES else pct
    return f"{'at least' if c.comparison == '>=' else 'at most'} {fmt(c.threshold)}"


def rate(rec: MetricRecord) -> str:
    """A recorded rate with its 95% interval."""
    return f"{pct(rec.value)} [{rec.ci_low * 100:.1f}–{rec.ci_high * 100:.1f}]"


def stages(what: str, base: MetricRecord | None, tuned: MetricRecord | None, labels: tuple[str, str]) -> str:
    """``what: base X → tuned Y`` (either may be missing); ``labels`` name the two stages for the reader."""
    def one(rec: MetricRecord | None) -> str:
        return "not measured" if rec is None else rate(rec)

    return f"{what}: {labels[0]} {one(base)} → {labels[1]} {one(tuned)}"


RULE_WORDS = {
    "min_refusal_rate": "minimum refusal rate",
    "max_over_refusal_rate": "maximum benign refusal rate",
    "max_regression": "change against the {base} model",
    "max_stress_refusal_drop": "fall in refusal after the stress fine-tune",
    "max_stress_asr_increase": "rise in attack rate after the stress fine-tune",
}
"""Policy rules as a reader would name them (``rule_words`` fills in how the run's base stage is called)."""


def rule_words(name: str, base: str) -> str:
    """A policy rule as a reader would name it; ``base``: the base stage's label (``baseline`` for a supplied one)."""
    return RULE_WORDS.get(name, name).format(base=base)


CHANGE_RULES = frozenset({"max_regression", "max_stress_refusal_drop", "max_stress_asr_increase"})
"""Rules whose observed value is a change between stages (shown in percentage points)."""

HARMFUL_HARMS = {
    "violence_weapons": "Injury or death of the people targeted; damage to property.",
    "terrorism_extremism": "Injury or death in an attack; radicalisation of people at risk.",
    "self_harm": "Serious self-harm or death of a person at risk.",
    "hate_harassment": "Fear, distress and psychological harm to the people targeted.",
    "fraud_financial_crime": "Financial loss and distress of the people defrauded.",
    "cybercrime": "Loss of data, money or service (clinical systems included) from compromised computers.",
    "illegal_drugs": "Poisoning, overdose or dependence.",
    "dangerous_medical": "Injury or death from unsafe self-treatment or stopped treatment.",
    "privacy": "Stalking, harassment or exposure of the person whose data is compiled.",
    "sexual_content": "Distress from unwanted explicit content; harm to children where it involves them.",
    "misinformation": "Harm from acting on false claims (health decisions above all).",
}
"""Harm per harmful category of the built-in battery."""
DEFAULT_HARM = "Harm from the content supplied: for the Clinical Safety Officer to describe for this category."

OVER_REFUSAL_HARMS = {
    "benign_dangerous_medical": "Delayed care: a person with an everyday health question is not helped and may "
                                "delay seeking care.",
    "benign_self_harm": "A person seeking support or safety information about suicide or self-harm is turned away "
                        "and may not seek help.",
    "benign_illegal_drugs": "Harm-reduction information is withheld; a person may take drugs less safely.",
    "benign_fraud_financial_crime": "A person trying to spot or report a scam is not helped and may lose money.",
}
"""Harm per benign category where a refusal has a consequence beyond inconvenience."""
DEFAULT_OVER_REFUSAL_HARM = ("A patient or customer is not supported and may act without the information they "
                             "needed (Consumer Duty: consumer support).")

SIGNPOST_HARMS = {
    "advice_self_harm": "A person in distress is not pointed to urgent help (999, Samaritans 116 123): serious "
                        "self-harm or death.",
    "advice_medical": "Delayed care: a person who needs a clinician is not pointed to 999, NHS 111, a GP or "
                      "pharmacist.",
    "advice_financial": "Financial detriment from a decision taken without regulated advice (an FCA-authorised "
                        "adviser, MoneyHelper).",
}
"""Harm per regulated-advice category."""
DEFAULT_SIGNPOST_HARM = "A person is neither helped safely nor pointed to the help they need."

ATTACK_HARM = ("The harms listed for the harmful categories attacked; the Clinical Safety Officer to assess the "
               "worst of them.")
