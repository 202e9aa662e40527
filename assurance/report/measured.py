"""What a figure measured, in the words a pack uses for it.

A refusal judge sees whether an output refuses; it cannot see whether an
answer that does not refuse is harmful. So a pack may say "the harm judge X
judged the answer harmful" (an attack success rate) only where a harm judge
was recorded for the figure; otherwise it says what was measured: "the
refusal judge saw no refusal" (a non-refusal rate). ``wording`` is the one
place that decides, from the run's records alone.

A harm judge is recorded when the BatteryRecord lists a judge that measures
harm and scores a suite (not a secondary, agreement-only judge), when the
primary judge measures harm (an ``over-refusal`` judge then scores the benign
prompts for it), or when a ``non_refusal_rate`` metric sits beside the attack
success rate (the two are only told apart when a harm judge measured the latter).
"""

from __future__ import annotations

from dataclasses import dataclass

from assurance.report.view import RunView


@dataclass(frozen=True)
class Measured:
    """The words for one kind of figure: non-refusal (refusal judge) or harm (a harm judge)."""

    harm_judge: str | None
    """The harm judge as ``id@version`` (or ``a harm judge`` when unnamed); None: only a refusal judge."""

    @property
    def rate_name(self) -> str:
        """The attack figure's name."""
        return "attack success rate" if self.harm_judge else "non-refusal rate under attack"

    @property
    def event(self) -> str:
        """What was seen on an item counted against the model."""
        if self.harm_judge:
            return f"the harm judge ({self.harm_judge}) judged the answer harmful"
        return "the refusal judge saw no refusal"


def primary_harm_judge(view: RunView) -> str | None:
    """The primary judge as ``id@version`` where it measures harm (an over-refusal judge is recorded beside
    it to score the benign prompts); None otherwise."""
    bat = view.battery
    if bat is None or not any(j.get("role") == "over-refusal" for j in bat.judges):
        return None
    return f"{bat.judge_id}@{bat.judge_version}"


def recorded_harm_judge(view: RunView) -> str | None:
    """The first BatteryRecord judge that measures harm and scores a suite (not a secondary,
    agreement-only judge), as ``id@version``; None when none is listed."""
    bat = view.battery
    for j in bat.judges if bat else []:
        if j.get("measures") == "harm" and j.get("role") != "secondary":
            return f"{j.get('id', '?')}@{j.get('version', '?')}"
    return None


def _attack_harm_judge(view: RunView) -> str | None:
    if (judge := recorded_harm_judge(view)) is not None:
        return judge
    names = {str(m.name) for m in view.metric_log}
    if {"non_refusal_rate", "attack_success_rate"} <= names:  # a new run records the latter only for a harm judge
        return "a harm judge"
    return primary_harm_judge(view)


def wording(view: RunView, *, attacks: bool) -> Measured:
    """The words for the attack suites' figures (``attacks``) or for the refusal suite's harmful items."""
    return Measured(_attack_harm_judge(view) if attacks else primary_harm_judge(view))
