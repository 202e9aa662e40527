"""The hazards a run's measurements show, one ``Finding`` per measured weakness.

Every harmful category of the refusal suite; over-refusal per benign category; the prefilling
attack; the jailbreak templates; persistence after the stress fine-tune; signposting per
regulated-advice category. Figures are selected by the report's own helpers (``view``,
``sections``, ``measured``) and pass/fail is the verdict's typed checks, never recomputed here.

The initial exposure is the base model's (before the safety fine-tune), the residual the tuned
model's (after the stress fine-tune, for persistence). Each exposure carries the 95% interval's
upper bound of the unsafe-event rate, from which ``risk.likelihood_of`` bands the likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assurance.battery.categories import category_name
from assurance.evidence.records import Check, MetricRecord
from assurance.profile import LikelihoodName
from assurance.report import hazard_text as text
from assurance.report.hazard_model import GATE, Control, ControlStatus, Exposure, Finding
from assurance.report.hazard_text import pct, pp, rate
from assurance.report.measured import wording
from assurance.report.risk import LIKELIHOODS, likelihood_of
from assurance.report.sections import (
    PersistRow,
    StageRow,
    attack_figures,
    jailbreak_rows,
    persistence_rows,
    prefill_rows,
    suite_rows,
)
from assurance.report.view import CategoryRow, RunView, row_checks

EFFECTIVE: ControlStatus = "in place and effective"
NOT_EFFECTIVE: ControlStatus = "in place, not effective"
DEPLOYMENT: ControlStatus = "deployment: organisation to confirm"


def exposure(rec: MetricRecord | None, *, safe: bool, counted: str, unsafe: str) -> Exposure:
    """How often the unsafe event happened on ``rec``: the event is the metric's complement when
    ``safe`` (refusals, signposts counted), else the metric itself (benign refusals, attack successes)."""
    if rec is None:
        return Exposure(None, "not measured")
    upper = 1 - rec.ci_low if safe else rec.ci_high
    return Exposure(upper, f"{counted} {rec.successes} of {rec.n}, {rate(rec)}; {unsafe} at most {pct(upper)} "
                           "(95% upper bound)")


def check_words(c: Check, base: str) -> str:
    """One verdict check in words: the rule, what was seen, the limit, the outcome (as recorded)."""
    fmt = pp if c.name in text.CHANGE_RULES else pct
    seen = "no result" if c.observed is None else fmt(c.observed)
    limit = text.limit_words(c)
    if c.passed:
        outcome = "passed"
    else:
        outcome = "inconclusive, counted as a fail" if c.outcome == "inconclusive" else "failed"
    subject = category_name(c.subject) if c.variant is None else c.subject
    return f"{text.rule_words(c.name, base)} ({subject}): {seen} against {limit}: {outcome}"


def gate_control(view: RunView, checks: list[Check], what: str, not_gated: str, *, gates: bool = True) -> Control:
    """The release gate's checks on a hazard: not configured without any, effective when all passed.
    ``gates``: whether the policy has a rule for this kind of hazard at all (attacks and signposting have none)."""
    if gates and view.verdict is None:
        return Control(f"{GATE}: {what}", "No release-gate verdict was recorded: the run is a draft.",
                       "not configured")
    if not checks:
        return Control(f"{GATE}: {what}", not_gated, "not configured")
    status = EFFECTIVE if all(c.passed for c in checks) else NOT_EFFECTIVE
    base = view.stage_label("base", lower=True)
    return Control(f"{GATE}: {what}", "; ".join(check_words(c, base) for c in checks) + ".", status)


def _band(e: Exposure) -> int | None:
    return None if e.upper is None else LIKELIHOODS.index(likelihood_of(e.upper))


def finetune_control(view: RunView, initial: Exposure, residual: Exposure, checks: list[Check], figures: str, *,
                     keep: bool = False, name: str = "Safety fine-tune") -> Control:
    """The safety fine-tune as a control: not effective when a gate check on the hazard failed, effective when
    they passed; without checks, effective when it lowered the likelihood band (``keep``: did not raise it)."""
    ft = view.finetune
    if ft is None:
        return Control(name, "No safety fine-tune was recorded for this run.", "not configured")
    before, after = _band(initial), _band(residual)
    if any(not c.passed for c in checks):
        ok, why = False, "a release-gate check on this hazard failed"
    elif checks:
        ok, why = True, "the release-gate checks on this hazard passed"
    elif before is None or after is None:
        ok, why = False, "no measurement of both models, so no effect is shown"
    else:
        ok = after <= before if keep else after < before
        verb = ("did not raise" if ok else "raised") if keep else ("lowered" if ok else "did not lower")
        why = f"it {verb} the likelihood band ({LIKELIHOODS[before]} before, {LIKELIHOODS[after]} after)"
    return Control(f"{name} ({ft.recipe})", f"{figures}: {why}.", EFFECTIVE if ok else NOT_EFFECTIVE)


def recipe_control(name: str, figures: str, band: LikelihoodName) -> Control:
    """A recipe meant to make safety deeper (deep-alignment, constrained objective), used by this run's safety
    fine-tune: not effective when the worst case it should prevent is still Medium likelihood or higher."""
    ok = LIKELIHOODS.index(band) < LIKELIHOODS.index("Medium")
    return Control(name, f"Used by the safety fine-tune; {figures}: likelihood {band}.",
                   EFFECTIVE if ok else NOT_EFFECTIVE)


def _deployment(name: str) -> Control:
    return Control(name, "Not measured by this run.", DEPLOYMENT)


def harmful(view: RunView, row: CategoryRow) -> Finding:
    """A harmful category of the refusal suite: the system may help with such a request."""
    said = wording(view, attacks=False)
    checks = row_checks(view.verdict, row.metric, row.category)
    initial = exposure(row.base, safe=True, counted="refused", unsafe="not refused")
    residual = exposure(row.tuned, safe=True, counted="refused", unsafe="not refused")
    labels = _labels(view)
    figures = text.stages("refusal", row.base, row.tuned, labels)
    return Finding(
        key=f"harmful:{row.category}", title=row.label,
        hazard=f"The system may help with a harmful request (measured: {said.event}) instead of refusing it.",
        cause="Safety behaviour too weak, or eroded by later fine-tuning; a refusal judge may miss partial compliance.",
        effect="The person asking receives content that helps them cause harm.",
        harm=text.HARMFUL_HARMS.get(row.category, text.DEFAULT_HARM),
        finding=f"{row.label}: {figures}" + ("; a release-gate check failed." if row.meets is False else "."),
        initial=initial, residual=residual,
        controls=(finetune_control(view, initial, residual, checks, figures),
                  gate_control(view, checks, f"minimum refusal rate; no fall against the {labels[0]} model",
                               "The policy has no check on this category."),
                  _deployment("Human oversight and output moderation in the deployed service")))


def over_refusal(view: RunView, row: CategoryRow) -> Finding:
    """A benign category: the system may refuse it, so a person is not helped."""
    checks = row_checks(view.verdict, row.metric, row.category)
    scope = "this category"
    if not checks:  # the policy gates all benign prompts together
        checks, scope = row_checks(view.verdict, row.metric, "overall"), "all benign prompts together"
    initial = exposure(row.base, safe=False, counted="refused", unsafe="refused")
    residual = exposure(row.tuned, safe=False, counted="refused", unsafe="refused")
    figures = text.stages("benign prompts refused", row.base, row.tuned, _labels(view))
    ft, name = view.finetune, "Benign examples mixed into the safety fine-tune"
    mix = f"{ft.n_utility_examples} benign examples beside {ft.n_safety_examples} safety examples; " if ft else ""
    mixed = finetune_control(view, initial, residual, checks, mix + figures, keep=True, name=name)
    if ft is not None and ft.n_utility_examples == 0:
        mixed = Control(name, "The safety fine-tune mixed in no benign examples.", "not configured")
    failed = any(not c.passed for c in checks)
    return Finding(
        key=f"over-refusal:{row.category}", title=f"Over-refusal: {row.label}",
        hazard=f"The system refuses a benign request ({row.label}) it should answer.",
        cause="The safety fine-tune generalised refusal to benign prompts that resemble harmful ones.",
        effect="A person is not helped: the information or support they asked for is withheld.",
        harm=text.OVER_REFUSAL_HARMS.get(row.category, text.DEFAULT_OVER_REFUSAL_HARM),
        finding=f"{row.label}: {figures}" + ("; the over-refusal gate failed." if failed else "."),
        initial=initial, residual=residual,
        controls=(mixed,
                  gate_control(view, checks, f"maximum benign refusal rate ({scope})",
                               "The policy has no check on benign refusals."),
                  _deployment("A person can reach a member of staff (clinician, adviser) when the system declines")))


@dataclass(frozen=True)
class _AttackWords:
    key: str
    title: str
    unit: str
    """What a row's label is preceded by: nothing for prefill (its labels read ``k = 5``), ``template ``."""
    hazard: str
    cause: str
    effect: str
    deployment: str
    deep: bool
    """Whether the deep-alignment recipe targets this attack (it targets prefilling)."""


def _worst(rows: list[StageRow], stage: str) -> tuple[StageRow, MetricRecord] | None:
    measured = [(r, rec) for r in rows if (rec := getattr(r, stage)) is not None]
    return max(reversed(measured), key=lambda p: (p[1].ci_high, p[1].value), default=None)  # ties: the later row


def _labels(view: RunView) -> tuple[str, str]:
    """The base and tuned stages as the reader sees them (baseline and target in an evaluate-only run)."""
    return view.stage_label("base", lower=True), view.stage_label("tuned", lower=True)


def _side_by_side(labels: tuple[str, str], row: StageRow, tuned: MetricRecord) -> str:
    return f"{row.label}: {labels[1]} {rate(tuned)}" + (f", {labels[0]} {rate(row.base)}" if row.base else "")


def _attack(view: RunView, rows: list[StageRow], figure: str, w: _AttackWords) -> Finding | None:
    words = wording(view, attacks=True)
    worst, base_worst = _worst(rows, "tuned"), _worst(rows, "base")
    if worst is None:
        return None
    tuned = [(r, r.tuned) for r in rows if r.tuned is not None]
    best = min(tuned, key=lambda p: (p[1].value, p[1].ci_high))
    initial = exposure(base_worst[1] if base_worst else None, safe=False, counted="succeeded on", unsafe="success")
    residual = exposure(worst[1], safe=False, counted="succeeded on", unsafe="success")
    if base_worst:
        initial = Exposure(initial.upper, f"worst {w.unit}{base_worst[0].label}: {initial.evidence}")
    residual = Exposure(residual.upper, f"worst {w.unit}{worst[0].label}: {residual.evidence}")
    labels = _labels(view)
    both = f"worst {w.unit}{_side_by_side(labels, *worst)}; best {w.unit}{_side_by_side(labels, *best)}"
    controls = [finetune_control(view, initial, residual, [], f"{figure}; {both}")]
    ft, band = view.finetune, likelihood_of(residual.upper or 0.0)
    if ft is not None and w.deep:  # only the recipes the recorded fine-tune used
        worst_case = f"worst-case tuned {w.unit}{worst[0].label}: {rate(worst[1])}"
        if ft.augmentation == "deep-alignment":
            controls.append(recipe_control("Deep-alignment augmentation (safety-recovery examples)", worst_case, band))
        if ft.objective == "constrained":
            controls.append(recipe_control("Token-wise constrained objective", worst_case, band))
    controls += [gate_control(view, [], "limit on attack success",
                              "The policy sets no limit on attack rates: measured and reported, not gated.",
                              gates=False),
                 _deployment(w.deployment)]
    return Finding(key=w.key, title=w.title, hazard=f"{w.hazard} (measured: {words.event}).", cause=w.cause,
                   effect=w.effect, harm=text.ATTACK_HARM, finding=f"{w.title}, {words.rate_name}: {both}.",
                   initial=initial, residual=residual, controls=tuple(controls))


PREFILL = _AttackWords(
    "prefill", "Prefilling attack", "",
    "Once the first words of a compliant answer are supplied, the system may carry on with the harmful request",
    "Safety alignment only a few tokens deep (Qi et al., ICLR 2025).",
    "Someone who can prefill the answer (an API that accepts assistant-turn prefixes) obtains harmful content.",
    "Deny prefilling (assistant-turn prefixes) in the deployed API", deep=True)
JAILBREAK = _AttackWords(
    "jailbreak", "Jailbreak templates", "template ",
    "A harmful request wrapped in a template (role-play, hypothetical, encoding) may get a harmful answer",
    "Refusal tied to the surface form of a request.", "Someone who rewords a request obtains harmful content.",
    "Input filtering and abuse monitoring in the deployed service", deep=False)


def attacks(view: RunView) -> list[Finding]:
    """The prefilling attack (its worst and best k) and the jailbreak templates (worst and best template),
    read from the harm-judged figure where a harm judge scored the attacks, else the non-refusal one
    (``sections.attack_figures``); the hazard says what was measured as ``measured.wording`` words it."""
    figs = attack_figures(view)
    fig = next((f for f in figs if f.short == "attack success"), figs[0])
    out = [_attack(view, prefill_rows(view, fig.metric), fig.label, PREFILL),
           _attack(view, jailbreak_rows(view, fig.metric), fig.label, JAILBREAK)]
    return [f for f in out if f is not None]


def _measured(rec: MetricRecord | None) -> str:
    return "not measured" if rec is None else rate(rec)


def _persist_gate(view: RunView, rows: list[PersistRow]) -> Control:
    """The persistence limits as recorded: not configured where the policy leaves them null."""
    null = [n for n in ("max_stress_refusal_drop", "max_stress_asr_increase") if getattr(view.policy, n) is None]
    left = f"The policy leaves {' and '.join(null)} null: measured and reported, not gated." if null else ""
    name = f"{GATE}: persistence limits after the stress fine-tune"
    words = {True: "within the limit", False: "over the limit", None: "not checked"}
    said = [f"{r.label}: {pp(r.change)} against a limit of {r.limit * 100:.1f} pp: {words[r.meets]}"
            for r in rows if r.limit is not None and r.change is not None]
    if not said:
        return Control(name, left, "not configured")
    gated = [r.meets for r in rows if r.limit is not None and r.change is not None]
    return Control(name, " ".join(["; ".join(said) + ".", left]).strip(),
                   EFFECTIVE if all(gated) else NOT_EFFECTIVE)


def persistence(view: RunView) -> Finding | None:
    """Safety after a benign downstream fine-tune: initial is the base model, residual the stress-tuned one."""
    rows = persistence_rows(view)
    refusal = next((r for r in rows if r.metric == "refusal_rate" and r.stress is not None), None)
    if refusal is None or refusal.stress is None:
        return None
    overall = next((r for r in view.refusal if r.category == "overall"), None)
    base = overall.base if overall else None
    initial = exposure(base, safe=True, counted="base model refused", unsafe="not refused")
    residual = exposure(refusal.stress, safe=True, counted="after stress refused", unsafe="not refused")
    figures = (f"refusal of harmful prompts: base {_measured(base)}, tuned {_measured(refusal.tuned)}, "
               f"after stress {rate(refusal.stress)}")
    rises = [(r.label, r.change) for r in rows if r.metric != "refusal_rate" and r.worse and r.change is not None]
    if rises:
        label, change = max(rises, key=lambda p: abs(p[1]))
        figures += f"; largest unsafe change: {label} {pp(change)}"
    controls = [finetune_control(view, initial, residual, [], figures)]
    ft, band = view.finetune, likelihood_of(residual.upper or 0.0)
    if ft is not None and ft.objective == "constrained":
        controls.append(recipe_control("Token-wise constrained objective",
                                       f"after the stress fine-tune {rate(refusal.stress)} refused", band))
    gate = _persist_gate(view, rows)
    controls += [gate, _deployment("Re-run the battery after any further fine-tuning (change management)")]
    failed = "; a persistence limit failed" if gate.status == NOT_EFFECTIVE else ""
    return Finding(
        key="persistence", title="Safety erodes after downstream fine-tuning",
        hazard="After a customer's or later project's benign fine-tune, the system may help with harmful requests "
               f"it refused before (measured: {wording(view, attacks=False).event}).",
        cause="Benign fine-tuning removes safety behaviour (Qi et al., ICLR 2024).",
        effect="A later version of the system gives harmful content that this version refuses.",
        harm=text.ATTACK_HARM,
        finding=f"Persistence: refused tuned {_measured(refusal.tuned)} → after stress {rate(refusal.stress)}"
                f"{failed}.",
        initial=initial, residual=residual, controls=tuple(controls))


def signposting(view: RunView, row: StageRow, cat: str) -> Finding:
    """A regulated-advice category: the system may neither help safely nor point to UK help."""
    initial = exposure(row.base, safe=True, counted="signposted", unsafe="not signposted")
    residual = exposure(row.tuned, safe=True, counted="signposted", unsafe="not signposted")
    base, tuned = _labels(view)
    figures = text.stages("signposted", row.base, row.tuned, (base, tuned))
    ft_control, fell = finetune_control(view, initial, residual, [], figures), ""
    if row.base is not None and row.tuned is not None and row.tuned.value < row.base.value:
        fell = f"the {tuned} model fell below the {base} model ({pct(row.tuned.value)} against {pct(row.base.value)})"
        ft_control = Control(ft_control.name, f"{figures}: {fell}.", NOT_EFFECTIVE)
    return Finding(
        key=f"signposting:{cat}", title=f"No signposting: {row.label}",
        hazard=f"A person asking for advice ({row.label}) is neither helped safely nor pointed to UK help.",
        cause="The model answers or refuses flatly instead of signposting.",
        effect="The person does not learn where to get the help they need.",
        harm=text.SIGNPOST_HARMS.get(cat, text.DEFAULT_SIGNPOST_HARM),
        finding=f"{row.label}: {figures}" + (f"; {fell}." if fell else "."), initial=initial, residual=residual,
        controls=(ft_control, gate_control(view, [], "minimum signposting rate",
                                           "The policy does not gate signposting: measured and reported.",
                                           gates=False),
                  _deployment("Scripted signposts (999, NHS 111, Samaritans 116 123, MoneyHelper) in the "
                              "deployed service")))


def findings(view: RunView) -> list[Finding]:
    """Every hazard the run's measurements show, in log order."""
    def rows(src: list[CategoryRow], make: Callable[[RunView, CategoryRow], Finding]) -> list[Finding]:
        return [make(view, r) for r in src if r.category != "overall" and (r.base or r.tuned)]

    out = rows(view.refusal, harmful) + rows(view.over_refusal, over_refusal) + attacks(view)
    if (p := persistence(view)) is not None:
        out.append(p)
    for r in suite_rows(view, "signposting_rate"):
        rec = r.tuned or r.base
        if rec is not None and rec.category != "overall":
            out.append(signposting(view, r, rec.category))
    return out
