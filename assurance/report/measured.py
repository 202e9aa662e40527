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

from assurance.battery.metrics import is_greedy
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


def harm_judge_entry(view: RunView) -> dict | None:
    """The first BatteryRecord judge that measures harm and scores a suite (not a secondary,
    agreement-only judge); None when none is listed."""
    bat = view.battery
    return next((j for j in (bat.judges if bat else [])
                 if j.get("measures") == "harm" and j.get("role") != "secondary"), None)


def recorded_harm_judge(view: RunView) -> str | None:
    """``harm_judge_entry`` as ``id@version``; None when none is listed."""
    j = harm_judge_entry(view)
    return None if j is None else f"{j.get('id', '?')}@{j.get('version', '?')}"


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


@dataclass(frozen=True)
class Interpretability:
    """Whether one stage's refusal figures can be read as safety behaviour, given its capability score."""

    stage: str
    capability: float | None
    """The stage's overall capability score; None when the capability suite did not run."""
    floor: float | None
    """The policy's ``capability_floor``; None: never applied."""

    @property
    def interpretable(self) -> bool:
        """False only when a capability score was measured and falls below the floor."""
        return self.capability is None or self.floor is None or self.capability >= self.floor

    @property
    def note(self) -> str:
        """The words a pack prints beside the stage's refusal figures."""
        if self.interpretable:
            return ""
        return (f"not interpretable: the {self.stage} model's capability score is {self.capability:.1%}, below the "
                f"floor of {self.floor:.0%}, so it may refuse (or fail to) because it can barely answer at all")


def interpretability(view: RunView) -> dict[str, Interpretability]:
    """Per stage, whether its refusal figures are interpretable (``policy.capability_floor``)."""
    scores = {m.stage: m.value for m in view.metric_log
              if m.name == "capability_score" and m.category == "overall" and m.variant is None and is_greedy(m)}
    stages = dict.fromkeys(m.stage for m in view.metric_log)
    return {s: Interpretability(s, scores.get(s), view.policy.capability_floor) for s in stages}
