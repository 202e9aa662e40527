"""Evidence kinds about what the battery measured: refusal, over-refusal, attacks, persistence,
signposting and capability.

The figures come from the view and ``report/sections.py`` as recorded (never re-derived). A
finding is ``met`` or ``not met`` only where the verdict's checks on that measure say so; a
measure the policy does not gate is ``partly`` (measured, for a person to judge), however good or
bad its figure, and its summary says so.
"""

from __future__ import annotations

from assurance.evidence.records import Check
from assurance.report import sections
from assurance.report.view import CategoryRow, RunView
from assurance.requirements.finding import Finding, State, checks_state, failed_text, figure, ref

NOT_GATED = "not gated by the release policy: a reviewer judges it from the figures"


def _checks(view: RunView, metric: str, stages: list[str]) -> list[Check]:
    if view.verdict is None:
        return []
    return [c for c in view.verdict.checks if c.metric == metric and c.stages == stages
            and c.suite in ("refusal", None) and c.variant is None]


def _overall(rows: list[CategoryRow]) -> CategoryRow | None:
    return next((r for r in rows if r.category == "overall"), None)


def _worst(rows: list[CategoryRow], *, high: bool) -> CategoryRow | None:
    cats = [r for r in rows if r.category != "overall" and r.tuned is not None]
    if not cats:
        return None
    return max(cats, key=lambda r: r.tuned.value if high else -r.tuned.value)  # type: ignore[union-attr]


def _models(view: RunView) -> tuple[str, str]:
    """The base and tuned stages as a reader sees them: base and tuned, or baseline and target (evaluate-only)."""
    return view.stage_label("base", lower=True), view.stage_label("tuned", lower=True)


def refusal_policy(view: RunView) -> Finding:
    """Harmful prompts are refused at least as often as the policy's minimum, per category."""
    _, tuned = _models(view)
    overall = _overall(view.refusal)
    if overall is None or overall.tuned is None:
        return Finding("not measured", f"Refusal of harmful prompts was not measured on the {tuned} model.")
    checks = _checks(view, "refusal_rate", ["tuned"])
    state = checks_state(checks) or "partly"
    worst = _worst(view.refusal, high=False)
    low = f"; lowest category {worst.label}: {figure(worst.tuned)}" if worst is not None else ""
    verdict = (f"the release gate's checks failed: {failed_text(checks)}" if state == "not met" else
               f"the release gate's {len(checks)} minimum-refusal checks passed" if checks else NOT_GATED)
    return Finding(state, f"The {tuned} model refused {figure(overall.tuned)} harmful prompts{low}; {verdict}.",
                   (["verdict"] if checks else []) + [ref(overall.tuned)])


def over_refusal_policy(view: RunView) -> Finding:
    """Benign prompts (customers' and patients' ordinary questions) are refused no more often than allowed."""
    _, tuned = _models(view)
    overall = _overall(view.over_refusal)
    if overall is None or overall.tuned is None:
        return Finding("not measured", f"Refusal of benign prompts was not measured on the {tuned} model.")
    checks = _checks(view, "over_refusal_rate", ["tuned"])
    state = checks_state(checks) or "partly"
    limit = f" against a maximum of {checks[0].threshold * 100:.1f}%" if checks and checks[0].threshold else ""
    worst = _worst(view.over_refusal, high=True)
    high = f"; most refused category {worst.label}: {figure(worst.tuned)}" if worst is not None else ""
    if state == "not met":
        verdict = ("the release gate's check failed: people asking legitimate questions would be turned away "
                   "(for customers a consumer-support and foreseeable-harm risk; for patients, delayed care)")
    else:
        verdict = "the release gate's check passed" if checks else NOT_GATED
    return Finding(state, f"The {tuned} model refused {figure(overall.tuned)} benign prompts{limit}{high}; "
                          f"{verdict}.", (["verdict"] if checks else []) + [ref(overall.tuned)])


def no_regression(view: RunView) -> Finding:
    """No harmful category's refusal fell against the base model by more than the policy allows."""
    base_m, tuned = _models(view)
    checks = _checks(view, "refusal_rate", ["base", "tuned"])
    overall = _overall(view.refusal)
    if overall is None or overall.base is None or overall.tuned is None:
        return Finding("not measured", f"The {base_m} and {tuned} models were not both measured.")
    change = f"overall refusal went from {figure(overall.base)} to {figure(overall.tuned)}"
    state = checks_state(checks) or "partly"
    verdict = (f"regression checks failed: {failed_text(checks)}" if state == "not met" else
               "every category's regression check passed" if checks else NOT_GATED)
    return Finding(state, f"{base_m.capitalize()} against {tuned}: {change}; {verdict}.",
                   (["verdict"] if checks else []) + [ref(overall.base), ref(overall.tuned)])


def _attack(view: RunView, rows: list[sections.StageRow], checks: list[Check], what: str,
            unit: str) -> Finding:
    base_m, tuned_m = _models(view)
    measured = [r for r in rows if r.tuned is not None]
    if not measured:
        return Finding("not measured", f"The {what} was not run against the {tuned_m} model.")
    fig = sections.attack_figures(view)[0]
    worst = max(measured, key=lambda r: r.tuned.value)  # type: ignore[union-attr]
    best = min(measured, key=lambda r: r.tuned.value)  # type: ignore[union-attr]

    def at(r: sections.StageRow) -> str:
        base = f" ({base_m} {figure(r.base)})" if r.base is not None else ""
        return f"{unit} {r.label}: {figure(r.tuned)}{base}"

    span = at(worst) if worst is best else f"worst {at(worst)}; best {at(best)}"
    state = checks_state(checks) or "partly"
    verdict = (f"checks failed: {failed_text(checks)}" if state == "not met" else
               f"its {len(checks)} checks passed" if checks else NOT_GATED)
    records = (["verdict"] if checks else []) + [ref(r.tuned) for r in (worst, best) if r.tuned is not None]
    return Finding(state, f"{fig.title}, {tuned_m} model: {span}; {verdict}.", list(dict.fromkeys(records)))


def _attack_checks(view: RunView, suite: str) -> list[Check]:
    if view.verdict is None:
        return []
    names = {f.metric for f in sections.attack_figures(view)}
    return [c for c in view.verdict.checks if c.metric in names and "stress" not in c.stages
            and (c.suite == suite or (c.variant or "").startswith(suite))]


def prefill_robustness(view: RunView) -> Finding:
    """Refusal holds when the first tokens of a harmful answer are prefilled (worst and best k)."""
    return _attack(view, sections.prefill_rows(view), _attack_checks(view, "prefill"), "prefilling attack",
                   "at")


def jailbreak_robustness(view: RunView) -> Finding:
    """Refusal holds under the battery's jailbreak templates (worst and best template)."""
    return _attack(view, sections.jailbreak_rows(view), _attack_checks(view, "jailbreak"), "jailbreak suite",
                   "template")


def persistence(view: RunView) -> Finding:
    """Safety persists through a short benign fine-tune (the stress test), gated or not."""
    rows = sections.persistence_rows(view)
    if not rows:
        return Finding("not measured", "No stress fine-tune was evaluated, so persistence of safety under "
                                       "further tuning was not measured.")
    failed = [r for r in rows if r.meets is False]
    gated = [r for r in rows if r.meets is not None]
    worse = [r for r in rows if r.worse]
    head = rows[0]
    lead = f"{head.label}: tuned {figure(head.tuned)}, after stress {figure(head.stress)}"
    state: State
    if failed:
        state, verdict = "not met", "persistence checks failed on " + ", ".join(r.label for r in failed)
    elif gated:
        state, verdict = "met", f"the {len(gated)} persistence checks passed"
    else:
        state, verdict = "partly", "measured; " + NOT_GATED
    moved = f"; {len(worse)} of {len(rows)} measures moved the unsafe way" if worse else ""
    records = ["finetune stress"] if view.stress_finetune else []
    records += (["verdict"] if gated else []) + [ref(r) for r in (head.tuned, head.stress) if r is not None]
    return Finding(state, f"{lead}{moved}; {verdict}.", records)


def _suite_checks(view: RunView, metric: str) -> list[Check]:
    if view.verdict is None:
        return []
    return [c for c in view.verdict.checks if c.metric == metric and "stress" not in c.stages]


def signposting(view: RunView) -> Finding:
    """Regulated-advice and crisis prompts are answered with UK help routes (signposts)."""
    base_m, tuned = _models(view)
    rows = sections.suite_rows(view, "signposting_rate")
    overall = next((r for r in rows if r.label == "overall"), None)
    if overall is None or overall.tuned is None:
        return Finding("not measured", "Signposting to UK help (e.g. Samaritans, NHS 111, MoneyHelper) was not "
                                       "measured.")
    fell = [r for r in rows if r is not overall and r.delta is not None and r.delta < 0]
    drop = "; ".join(f"{r.label} fell below the {base_m} model ({figure(r.tuned)} against {figure(r.base)})"
                     for r in fell)
    checks = _suite_checks(view, "signposting_rate")
    state = checks_state(checks) or "partly"
    verdict = (f"checks failed: {failed_text(checks)}" if state == "not met" else
               "its checks passed" if checks else NOT_GATED)
    base = f" ({base_m} {figure(overall.base)})" if overall.base is not None else ""
    return Finding(state, f"The {tuned} model signposted {figure(overall.tuned)} prompts{base}"
                          f"{'; ' + drop if drop else ''}; {verdict}.",
                   (["verdict"] if checks else []) + [ref(overall.tuned)] + [ref(r.tuned) for r in fell
                                                                             if r.tuned is not None])


def capability_retained(view: RunView) -> Finding:
    """The tuned model can still do useful work (the capability suite), so its refusals mean something."""
    base_m, tuned = _models(view)
    rows = sections.suite_rows(view, "capability_score")
    overall = next((r for r in rows if r.label == "overall"), None)
    if overall is None or overall.tuned is None:
        return Finding("not measured", "Capability was not measured, so a refusal cannot be told apart from a "
                                       "model that can barely answer.")
    checks = _suite_checks(view, "capability_score")
    state = checks_state(checks) or "partly"
    base = f", against {figure(overall.base)} for the {base_m} model" if overall.base is not None else ""
    verdict = "checks failed" if state == "not met" else "its checks passed" if checks else NOT_GATED
    return Finding(state, f"The {tuned} model scored {figure(overall.tuned)} capability items{base}; {verdict}.",
                   (["verdict"] if checks else []) + [ref(overall.tuned)])


def evaluation_recorded(view: RunView) -> Finding:
    """Base and tuned models were evaluated on the same battery, every rate with its 95% interval."""
    stages = [s for s in ("base", "tuned", "stress") if view.stage_present(s)]
    if not stages:
        return Finding("not measured", "No evaluation was recorded.")
    n_cats = len([r for r in view.refusal + view.over_refusal if r.category != "overall"])
    state: State = "met" if {"base", "tuned"} <= set(stages) else "partly"
    shown = ", ".join(view.stage_label(s, lower=True) for s in stages)
    return Finding(state, f"{len(view.metric_log)} figures over {n_cats} refusal-suite categories at stages "
                          f"{shown}, each with its 95% Wilson interval.",
                   ["battery"] + [f"metrics {s}" for s in stages])
