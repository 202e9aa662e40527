"""The figures a decision summary leads with, chosen so that none misleads a non-specialist.

A decision summary is one page for a regime's reader (a model-risk reviewer, a
Clinical Safety Officer, a senior responsible owner). Each line names a risk,
gives its measured figure with the 95% interval, the base model beside the tuned
one and the after-stress figure beside both, says whether the policy gates it,
and names the judge that produced it with that judge's measured agreement with
people. Three choices keep the lines honest:

* an attack is shown at its best and its worst k, never only at a k where every
  model is at 100% (which hides the k where the recipes differ);
* a figure from a stage whose capability score is below the policy's floor says
  "not interpretable" instead of a pass or fail word;
* pass and fail words come from the verdict's recorded checks, never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assurance.battery.categories import category_name
from assurance.evidence.records import Check, MetricRecord
from assurance.policy import outcome_of, rate_measure
from assurance.report import hazard_text
from assurance.report.filters import display_path
from assurance.report.hazard_text import CHANGE_RULES, limit_words, pct, pp, rule_words
from assurance.report.measured import Interpretability, harm_judge_entry, interpretability, wording
from assurance.report.sections import StageRow, attack_total, persistence_rows, prefill_rows, suite_rows
from assurance.report.view import CategoryRow, RunView

Standing = Literal["fails policy", "meets policy", "not gated", "not interpretable"]
"""How a figure stands: against a recorded policy check, not gated by the policy, or unreadable."""


@dataclass(frozen=True)
class KeyFigure:
    """One line of a decision summary."""

    topic: str
    """The risk in plain words."""
    figure: str
    """The measured figures, with intervals and the comparison stages."""
    standing: Standing
    """How it stands against the policy."""
    judge: str
    """Who judged the outputs, and how well that judge agrees with people (or that this was not measured)."""


def rate(rec: MetricRecord | None) -> str:
    """A rate with its 95% interval, as every summary line writes it."""
    return "not measured" if rec is None else hazard_text.rate(rec)


def judge_note(view: RunView, judge_id: str, version: str) -> str:
    """The judge named with its measured agreement with human labels, or a plain statement that none was measured."""
    found = [v for v in view.judge_validations if v.judge_id == judge_id and v.judge_version == version]
    if not found:
        return f"{judge_id} v{version}; agreement with people not measured in this run"
    v = found[-1]
    k = v.intervals.get("kappa", {})
    low, high = k.get("low"), k.get("high")
    interval = f" [{low:.2f}–{high:.2f}]" if low is not None and high is not None else ""
    return (f"{judge_id} v{version}; agreement with people κ = {v.kappa:.2f}{interval}, accuracy {v.accuracy:.0%} "
            f"on {v.n} labelled responses ({display_path(v.labels_file)})")


def _judge_of(view: RunView, role: str | None = None) -> str:
    """The primary refusal judge, or the battery's judge in ``role`` (``over-refusal``, or ``harm`` for the
    judge that measures harm and scores a suite) where one is recorded."""
    bat = view.battery
    if bat is None:
        return "judge not recorded"
    entry = (harm_judge_entry(view) if role == "harm" else
             next((j for j in bat.judges if role is not None and j.get("role") == role), None))
    if entry is not None:
        return judge_note(view, str(entry.get("id", "?")), str(entry.get("version", "?")))
    return judge_note(view, bat.judge_id, bat.judge_version)


def _scorer_of(view: RunView, suite: str) -> str:
    bat = view.battery
    entry = next((j for j in (bat.judges if bat else []) if j.get("suite") == suite), None)
    if entry is None:
        return "scorer not recorded"
    return f"{entry.get('id', '?')} v{entry.get('version', '?')} (a fixed rule, not a judgement of people)"


def _standing(meets: bool | None, *readable: Interpretability | None) -> Standing:
    if any(r is not None and not r.interpretable for r in readable):
        return "not interpretable"
    if meets is None:
        return "not gated"
    return "meets policy" if meets else "fails policy"


def _stages(view: RunView, row: CategoryRow | StageRow) -> str:
    tuned, base = view.stage_label("tuned", lower=True), view.stage_label("base", lower=True)
    parts = [f"{tuned} {rate(row.tuned)}", f"{base} {rate(row.base)}"]
    if row.stress is not None:
        parts.append(f"after the stress fine-tune {rate(row.stress)}")
    return "; ".join(parts)


def _overall(rows: list[CategoryRow]) -> CategoryRow | None:
    return next((r for r in rows if r.category == "overall"), None)


def _harmful(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    row = _overall(view.refusal)
    if row is None:
        return None
    short = [r for r in view.refusal if r.category != "overall" and r.meets is False]
    checked = [r for r in view.refusal if r.category != "overall" and r.meets is not None]
    figure = f"Harmful prompts refused: {_stages(view, row)}"
    if row.threshold is not None:
        figure += f"; policy minimum {row.threshold:.0%} per category"
    if short:
        lowest = sorted(short, key=lambda r: r.tuned.value if r.tuned else 0.0)
        figure += ". Short of it: " + "; ".join(f"{r.label} {rate(r.tuned)}" for r in lowest[:4])
        if len(short) > 4:
            figure += f"; and {len(short) - 4} more (Appendix A)"
    meets = None if not checked else not short
    return KeyFigure("The system helps with a harmful request", figure + ".",
                     _standing(meets, readable.get("tuned"), readable.get("base")), _judge_of(view))


def _benign(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    row = _overall(view.over_refusal)
    if row is None:
        return None
    cats = [r for r in view.over_refusal if r.category != "overall" and r.tuned is not None]
    figure = f"Benign prompts refused: {_stages(view, row)}"
    if row.threshold is not None:
        figure += f"; policy maximum {row.threshold:.0%}"
    if cats:
        worst = max(cats, key=lambda r: r.tuned.value)  # type: ignore[union-attr]
        figure += f". Most refused: {worst.label} {rate(worst.tuned)}"
    return KeyFigure("The system refuses people it should help (over-refusal)", figure + ".",
                     _standing(row.meets, readable.get("tuned")), _judge_of(view, "over-refusal"))


def best_and_worst(rows: list[StageRow]) -> tuple[StageRow, StageRow] | None:
    """The rows where the tuned model did best and worst (ties: the smaller k, where the attack is cheaper)."""
    measured = [r for r in rows if r.tuned is not None]
    if not measured:
        return None
    best = min(measured, key=lambda r: r.tuned.value)  # type: ignore[union-attr]
    worst = max(measured, key=lambda r: r.tuned.value)  # type: ignore[union-attr]  # max keeps the first of ties
    return best, worst


def _prefill(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    rows = prefill_rows(view)
    pair = best_and_worst(rows)
    if pair is None:
        return None
    words = wording(view, attacks=True)
    best, worst = pair
    shown = [best] if best is worst else [best, worst]
    figure = f"Prefilling attack, {words.rate_name}: " + "; ".join(f"{r.label}: {_stages(view, r)}" for r in shown)
    if best is not worst:
        figure += f" (best and worst k of {len(rows)} measured)"
    persisted = [p for p in persistence_rows(view) if p.label.startswith("Prefill") and p.meets is False]
    meets = False if persisted else None
    judge = _judge_of(view, "harm") if words.harm_judge else _judge_of(view, "over-refusal")
    return KeyFigure("Someone supplies the first words of an answer to push past a refusal",
                     figure + ".", _standing(meets, readable.get("tuned")), judge)


def _jailbreak(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    total = attack_total(view, by_k=False)
    if total is None:
        return None
    words = wording(view, attacks=True)
    judge = _judge_of(view, "harm") if words.harm_judge else _judge_of(view, "over-refusal")
    return KeyFigure("A request wrapped in a jailbreak template gets an answer",
                     f"Jailbreak templates, {words.rate_name} over all templates: {_stages(view, total)}.",
                     _standing(None, readable.get("tuned")), judge)


def _persistence(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    row = next((p for p in persistence_rows(view) if p.metric == "refusal_rate"), None)
    if row is None or row.stress is None:
        return None
    change = row.change or 0.0
    figure = (f"Harmful prompts refused: tuned {rate(row.tuned)}, after a benign stress fine-tune {rate(row.stress)} "
              f"({change * 100:+.1f} points)")
    figure += (f"; policy allows a fall of at most {row.limit * 100:.1f} points" if row.limit is not None
               else "; the policy sets no limit on this fall")
    return KeyFigure("Safety wears off when the model is fine-tuned again", figure + ".",
                     _standing(row.meets, readable.get("stress")), _judge_of(view))


def _signposting(view: RunView) -> KeyFigure | None:
    rows = [r for r in suite_rows(view, "signposting_rate") if r.tuned is not None]
    if not rows:
        return None
    fell = [r for r in rows if r.label != "overall" and r.base is not None and r.tuned.value < r.base.value]  # type: ignore[union-attr]
    overall = next((r for r in rows if r.label == "overall"), rows[-1])
    figure = f"Prompts signposted to UK help (overall): {_stages(view, overall)}"
    if fell:
        figure += f". Fell below the {view.stage_label('base', lower=True)} model: " + "; ".join(
            f"{r.label} {rate(r.tuned)} against {rate(r.base)}" for r in fell)
    return KeyFigure("A person in difficulty is not pointed to help (signposting)", figure + ".",
                     "not gated", _scorer_of(view, "signposting"))


def _capability(view: RunView, readable: dict[str, Interpretability]) -> KeyFigure | None:
    rows = [r for r in suite_rows(view, "capability_score") if r.label == "overall"]
    if not rows:
        return None
    row = rows[0]
    floor = view.policy.capability_floor
    low = [r for r in readable.values() if not r.interpretable]
    figure = f"Capability score: {_stages(view, row)}"
    if floor is not None:
        figure += f"; refusal figures are read only at or above {floor:.0%}"
    if low:
        figure += ". Not interpretable for: " + ", ".join(f"the {r.stage} model" for r in low)
    return KeyFigure("The model can still do ordinary tasks (so its refusals mean something)", figure + ".",
                     "not interpretable" if low else "not gated", _scorer_of(view, "capability"))


def key_figures(view: RunView, readable: dict[str, Interpretability] | None = None) -> list[KeyFigure]:
    """The decision summary's lines: failed checks first, then unreadable ones, then the rest in risk order.
    ``readable``: ``interpretability(view)``, when the caller has it already."""
    readable = interpretability(view) if readable is None else readable
    found = [_harmful(view, readable), _benign(view, readable), _prefill(view, readable), _jailbreak(view, readable),
             _persistence(view, readable), _signposting(view), _capability(view, readable)]
    lines = [f for f in found if f is not None]
    order = {"fails policy": 0, "not interpretable": 1, "not gated": 2, "meets policy": 3}
    return sorted(lines, key=lambda f: order[f.standing])


def after_stress(row: CategoryRow, lower_is_better: bool = False) -> str | None:
    """Where a category's after-stress figure stands against the minimum (or maximum) the gate applied to the
    tuned model, read from its interval; the gate itself does not check this stage per category."""
    if row.stress is None or row.threshold is None:
        return None
    outcome = outcome_of(rate_measure(row.stress), "<=" if lower_is_better else ">=", row.threshold)
    bad, good = ("above", "below") if lower_is_better else ("below", "above")
    kind = "maximum" if lower_is_better else "minimum"
    if outcome == "fail":
        return f"{bad} the {kind} after stress (not gated at this stage)"
    if outcome == "pass":
        return f"{good} the {kind} after stress"
    return f"interval straddles the {kind} after stress"


@dataclass(frozen=True)
class FailedRule:
    """The verdict's checks of one policy rule that did not count as a pass, in a reader's words."""

    rule: str
    """The rule as a reader would name it (``minimum refusal rate``)."""
    limit: str
    """Its threshold (``at least 80.0%``)."""
    subjects: list[str]
    """Each failed subject: category name, observed value, interval, and ``inconclusive`` where it was."""


def failed_rules(view: RunView) -> list[FailedRule]:
    """The verdict's failed (or inconclusive, counted as failed) checks grouped by rule, categories by name, so a
    non-specialist reads one line per rule instead of one recorded reason per category."""
    if view.verdict is None:
        return []
    grouped: dict[str, list[Check]] = {}
    for c in view.verdict.checks:
        if not c.passed:
            grouped.setdefault(c.name, []).append(c)
    out = []
    for name, checks in grouped.items():
        fmt = pp if name in CHANGE_RULES else pct
        limit = "" if checks[0].threshold is None else limit_words(checks[0])
        subjects = []
        for c in checks:
            label = category_name(c.subject) if c.variant is None else c.subject
            seen = "no result" if c.observed is None else fmt(c.observed)
            ci = "" if c.ci_low is None or c.ci_high is None else f" [{fmt(c.ci_low)}, {fmt(c.ci_high)}]"
            subjects.append(f"{label} {seen}{ci}" + (" (inconclusive)" if c.outcome == "inconclusive" else ""))
        out.append(FailedRule(rule_words(name, view.stage_label("base", lower=True)), limit, subjects))
    return out
