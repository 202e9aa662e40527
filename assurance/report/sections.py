"""The battery's further results, gathered from MetricRecords for the packs.

``view.py`` builds the main tables (the greedy refusal suite). This module
gathers everything else the battery records beside them: the prefilling attack
per k, the jailbreak templates, signposting and capability per category, the
sampled-decoding spread across seeds and the persistence comparison of the
tuned and stress-tuned models. Like the view, it only selects and arranges
records; every number shown is a field of a record (a difference of two
recorded values at most), never re-derived from samples.

Selection keys matter: the same metric name is recorded per suite, per attack
variant, per sampled seed and as an across-seed summary, so every function
here names exactly which of those it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from assurance.battery.builtin import RESPONSES_SUITE
from assurance.battery.categories import category, category_name
from assurance.battery.metrics import is_greedy
from assurance.evidence.records import Check, FinetuneRecord, MetricRecord
from assurance.report.measured import primary_harm_judge, recorded_harm_judge, wording
from assurance.report.view import STAGES, RunView

SUITE_LABELS = {
    "refusal": "Refusal (harmful and benign prompts)",
    "signposting": "Signposting (regulated-advice prompts)",
    "prefill": "Prefilling attack",
    "jailbreak": "Jailbreak templates",
    "capability": "Capability retention",
}
METRIC_LABELS = {
    "refusal_rate": "Refusal of harmful prompts",
    "over_refusal_rate": "Refusal of benign prompts",
    "attack_success_rate": "Attack success rate",
    "non_refusal_rate": "Non-refusal under attack",
    "signposting_rate": "Signposting rate",
    "capability_score": "Capability score",
}
LOWER_IS_BETTER = {"over_refusal_rate", "attack_success_rate", "non_refusal_rate"}


@dataclass(frozen=True)
class StageRow:
    """One measure across the three stages (any of them may be missing)."""

    label: str
    base: MetricRecord | None = None
    tuned: MetricRecord | None = None
    stress: MetricRecord | None = None

    @property
    def n(self) -> int | None:
        rec = self.tuned or self.base or self.stress
        return rec.n if rec else None

    @property
    def delta(self) -> float | None:
        """Tuned minus base."""
        return None if self.base is None or self.tuned is None else self.tuned.value - self.base.value

    @property
    def stress_delta(self) -> float | None:
        """Stress minus tuned."""
        return None if self.tuned is None or self.stress is None else self.stress.value - self.tuned.value


@dataclass(frozen=True)
class PersistRow:
    """Tuned against stress-tuned for one measure, with the policy's persistence limit."""

    label: str
    metric: str
    tuned: MetricRecord | None
    stress: MetricRecord | None
    limit: float | None
    """Largest allowed refusal drop or ASR rise; None when the policy does not gate it."""
    meets: bool | None
    """None when not gated or not measured."""

    @property
    def change(self) -> float | None:
        return None if self.tuned is None or self.stress is None else self.stress.value - self.tuned.value

    @property
    def worse(self) -> bool:
        """Whether the change went the unsafe way (a drop for higher-is-better measures)."""
        c = self.change
        if c is None:
            return False
        return c > 0 if self.metric in LOWER_IS_BETTER else c < 0


def _greedy(view: RunView) -> list[MetricRecord]:
    return [m for m in view.metric_log if is_greedy(m)]


def _by_stage(records: Iterable[MetricRecord],
              key: Callable[[MetricRecord], Any]) -> dict[Any, dict[str, MetricRecord]]:
    """key -> stage -> record, keys in first-recorded order, the latest record winning."""
    out: dict[Any, dict[str, MetricRecord]] = {}
    for m in records:
        out.setdefault(key(m), {})[m.stage] = m
    return out


def _row(label: str, stages: dict[str, MetricRecord]) -> StageRow:
    return StageRow(label, stages.get("base"), stages.get("tuned"), stages.get("stress"))


@dataclass(frozen=True)
class AttackFigure:
    """One figure the attack tables show: the metric read and what the pack calls it (with its judge)."""

    metric: str
    label: str
    short: str
    """``non-refusal`` or ``attack success``: the word beside each row."""

    @property
    def title(self) -> str:
        """The label with its first letter capitalised, as a heading."""
        return self.label[:1].upper() + self.label[1:]


def attack_figures(view: RunView) -> list[AttackFigure]:
    """What the attack figures measured, in the order the pack shows them.

    Runs since harm judges existed record ``non_refusal_rate`` (the refusal judge saw no refusal) and,
    only when a harm judge scored the outputs, ``attack_success_rate``. Runs recorded before wrote
    ``attack_success_rate`` for the non-refusal count; the BatteryRecord says which judge gave it, and
    only a primary judge that measures harm (recorded beside an over-refusal judge) saw harm."""
    bat = view.battery
    entries = bat.judges if bat is not None else []
    primary = f"{bat.judge_id}@{bat.judge_version}" if bat is not None else "not recorded"
    benign = next((f"{j.get('id')}@{j.get('version')}" for j in entries if j.get("role") == "over-refusal"), None)
    harm = recorded_harm_judge(view)
    names = {m.name for m in view.metric_log}
    if "non_refusal_rate" in names:
        out = [AttackFigure("non_refusal_rate", f"non-refusal under attack (refusal judge: {benign or primary})",
                            "non-refusal")]
        if "attack_success_rate" in names:
            out.append(AttackFigure("attack_success_rate", f"attack success (harm judge: {harm or primary})",
                                    "attack success"))
        return out
    if primary_harm_judge(view) is not None:  # an old run whose primary judge measured harm
        return [AttackFigure("attack_success_rate", f"attack success (harm judge: {primary})", "attack success")]
    return [AttackFigure("attack_success_rate", f"non-refusal under attack (refusal judge: {primary})",
                         "non-refusal")]


def _attacks(view: RunView, metric: str | None = None) -> list[MetricRecord]:
    """Greedy attack figures of one metric (default: the run's first ``attack_figures``) for all
    categories together (every attack suite, every variant)."""
    name = metric or attack_figures(view)[0].metric
    return [m for m in _greedy(view) if m.name == name and m.category == "overall"]


def prefill_rows(view: RunView, metric: str | None = None, suite: str = "prefill") -> list[StageRow]:
    """One prefill suite's figure per number of prefilled tokens k (all categories together), in increasing k."""
    grouped = _by_stage((m for m in _attacks(view, metric) if m.k is not None and m.suite == suite), lambda m: m.k)
    return [_row(f"k = {k}", grouped[k]) for k in sorted(grouped)]


def jailbreak_rows(view: RunView, metric: str | None = None) -> list[StageRow]:
    """Figure per template (an attack variant without k; all categories together), in recorded order."""
    grouped = _by_stage((m for m in _attacks(view, metric) if m.variant is not None and m.k is None),
                        lambda m: m.variant)
    return [_row(str(v).split(":", 1)[-1], grouped[v]) for v in grouped]


def attack_total(view: RunView, *, by_k: bool, metric: str | None = None, suite: str = "prefill") -> StageRow | None:
    """The total over all variants and categories (variant None) of the attack suite whose variants
    are prefill depths (``by_k``: the prefill suite named ``suite``) or templates, as the records say;
    None when not recorded."""
    recs = _attacks(view, metric)
    suites = {m.suite for m in recs if m.variant is not None and (m.k is not None) == by_k
              and (not by_k or m.suite == suite)}
    stages = _by_stage([m for m in recs if m.variant is None and m.suite in suites], lambda m: 0).get(0)
    label = "all k together" if by_k else "all templates together"
    return _row(label, stages) if stages else None


def attack_tables(view: RunView) -> list[dict[str, Any]]:
    """Per attack figure, its prefill, own-response prefill and jailbreak rows, for the attacks section."""
    out = []
    for fig in attack_figures(view):
        out.append({"figure": fig, "prefill": prefill_rows(view, fig.metric),
                    "prefill_total": attack_total(view, by_k=True, metric=fig.metric),
                    "responses": prefill_rows(view, fig.metric, RESPONSES_SUITE),
                    "responses_total": attack_total(view, by_k=True, metric=fig.metric, suite=RESPONSES_SUITE),
                    "jailbreak": jailbreak_rows(view, fig.metric),
                    "jailbreak_total": attack_total(view, by_k=False, metric=fig.metric)})
    return out


def suite_rows(view: RunView, name: str) -> list[StageRow]:
    """Per category (battery order, then recorded order; ``overall`` last) for one plain-item metric."""
    recs = [m for m in _greedy(view) if m.name == name and m.variant is None]
    grouped = _by_stage(recs, lambda m: m.category)
    preferred = list(view.battery.categories) if view.battery else []
    order = [c for c in preferred if c in grouped and c != "overall"]
    order += [c for c in grouped if c not in order and c != "overall"]
    if "overall" in grouped:
        order.append("overall")
    return [_row(category_name(c), grouped[c]) for c in order]


@dataclass(frozen=True)
class SampledRow:
    """An across-seed summary of sampled decoding for one measure at one stage."""

    label: str
    rec: MetricRecord


def sampled_rows(view: RunView) -> list[SampledRow]:
    """Across-seed summaries (all categories, all variants of a suite together), by measure then stage."""
    recs = [m for m in view.metric_log if m.decoding == "sampled" and m.seeds and m.seed is None
            and m.category == "overall" and m.variant is None]
    latest: dict[tuple[str, str, str], MetricRecord] = {(m.suite, m.name, m.stage): m for m in recs}
    suites = list(dict.fromkeys(m.suite for m in recs))
    labels = METRIC_LABELS | {f.metric: f.title for f in attack_figures(view)}
    out = []
    for suite in suites:
        for name in labels:
            for stage in STAGES:
                m = latest.get((suite, name, stage))
                if m is not None:
                    out.append(SampledRow(f"{labels[name]} ({suite})", m))
    return out


def _overall(view: RunView, name: str, suite: str, variant: str | None = None) -> dict[str, MetricRecord]:
    recs = [m for m in _greedy(view) if m.name == name and m.suite == suite and m.variant == variant
            and m.category == "overall"]
    return _by_stage(recs, lambda m: 0).get(0, {})


def persistence_checks(view: RunView, rec: MetricRecord) -> list[Check]:
    """The verdict's persistence checks (tuned against stress) on the measure ``rec`` belongs to.

    A check names the records it read by metric and variant (variants are unique across suites),
    or by metric and suite for a suite's total (persistence is checked on all categories together)."""
    if view.verdict is None:
        return []
    return [c for c in view.verdict.checks if "stress" in c.stages and c.metric == rec.name
            and c.variant == rec.variant and (c.variant is not None or c.suite == rec.suite)]


def persistence_rows(view: RunView) -> list[PersistRow]:
    """Did safety persist? Tuned against stress for refusal, attacks, signposting and capability.

    A row meets its limit when the verdict's checks on that measure passed; the limit shown is the
    one they applied (the plan's, for a draft without a verdict). Only templates with a failed
    check get a row of their own.
    """
    pol = view.policy
    rows: list[PersistRow] = []

    def add(label: str, metric: str, stages: dict[str, MetricRecord], limit: float | None,
            failed_only: bool = False) -> None:
        t, s = stages.get("tuned"), stages.get("stress")
        rec = t if t is not None else s
        if rec is None:
            return
        checks = persistence_checks(view, rec)
        meets = all(c.passed for c in checks) if checks else None
        if failed_only and meets is not False:
            return
        rows.append(PersistRow(label, metric, t, s, checks[0].threshold if checks else limit, meets))

    def pair(row: StageRow) -> dict[str, MetricRecord]:
        return {s: r for s, r in (("tuned", row.tuned), ("stress", row.stress)) if r is not None}

    add("Refusal of harmful prompts", "refusal_rate", _overall(view, "refusal_rate", "refusal"),
        pol.max_stress_refusal_drop)
    add("Over-refusal of benign prompts", "over_refusal_rate", _overall(view, "over_refusal_rate", "refusal"), None)
    asr = pol.max_stress_asr_increase
    for fig in attack_figures(view):
        for by_k, rows_of, what in ((True, prefill_rows, "Prefill"), (False, jailbreak_rows, "Jailbreak")):
            whole = attack_total(view, by_k=by_k, metric=fig.metric)
            if whole is not None:
                add(f"{what} {fig.short}, all {'k' if by_k else 'templates'}", fig.metric, pair(whole), asr)
            for row in rows_of(view, fig.metric):
                add(f"{what} {fig.short}, {row.label}", fig.metric, pair(row), asr, failed_only=not by_k)
    add("Signposting rate", "signposting_rate", _overall(view, "signposting_rate", "signposting"), None)
    add("Capability score", "capability_score", _overall(view, "capability_score", "capability"), None)
    # Without a stress evaluation there is nothing to compare: the section says so instead.
    return rows if any(r.stress is not None for r in rows) else []


def flatten(settings: dict[str, Any], prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Nested settings as (dotted key, value) pairs, sorted, for a two-column table.

    ``skip``: top-level keys left out."""
    out: list[tuple[str, Any]] = []
    for key in sorted(k for k in settings if k not in skip):
        value = settings[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


OBJECTIVE_LABELS = {
    "sft": "cross-entropy on assistant tokens (plain SFT)",
    "constrained": "token-wise constrained objective (Qi et al., ICLR 2025)",
}
AUGMENTATION_LABELS = {
    "none": "none",
    "deep-alignment": "deep-alignment safety-recovery examples (Qi et al., ICLR 2025)",
}


def loss_label(ft: FinetuneRecord) -> str:
    """What the loss curve measures: the constrained loss is not cross-entropy."""
    if ft.objective == "constrained":
        return "token-wise constrained loss"
    if ft.objective == "sft":
        return "cross-entropy loss"
    return f"{ft.objective} loss"


def judges(view: RunView) -> list[dict[str, Any]]:
    """Every judge and scorer of the battery: the refusal judge first, then BatteryRecord.judges."""
    bat = view.battery
    if bat is None:
        return []
    # The refusal judge scores every suite no other scorer is recorded for.
    scored = {j.get("suite") for j in bat.judges if j.get("role") != "harm"}  # a harm judge scores beside it
    out = [{"id": bat.judge_id, "version": bat.judge_version, "digest": bat.judge_digest,
            "suite": ", ".join(s for s in bat.suites if s not in scored) or "refusal"}]
    for j in bat.judges:
        out.append({"id": j.get("id", "?"), "version": j.get("version", "?"), "digest": j.get("digest", ""),
                    "suite": j.get("suite", "")})
    return out


def comparison_rows(view: RunView) -> tuple[list, list[tuple[str, dict[str, Any]]], list[str]]:
    """Paired comparisons for the packs.

    Returns the all-category rows (by stage pair, suite and k); the refusal
    suite's per-category rows as ``(category, {"base → tuned": record, ...})``, the pairs named by their stage
    labels (``baseline → target`` in an evaluate-only run)
    so one line shows a category across both stage pairs; and those pairs.
    """
    overall = [c for c in view.comparisons if c.category == "overall"]
    per_cat: dict[str, dict[str, Any]] = {}
    for c in view.comparisons:
        if c.category != "overall" and c.suite == "refusal":
            pair = f"{view.stage_label(c.stage_from, lower=True)} → {view.stage_label(c.stage_to, lower=True)}"
            per_cat.setdefault(c.category, {})[pair] = c
    pairs = list(dict.fromkeys(p for row in per_cat.values() for p in row))
    return overall, list(per_cat.items()), pairs


@dataclass(frozen=True)
class ExtraSuiteView:
    """A public benchmark run beside the battery: where it came from and its overall rates per stage."""

    suite: str
    benchmark: str
    n_items: int
    file_digest: str
    citation: str
    rows: list[StageRow]


def extra_suites(view: RunView) -> list[ExtraSuiteView]:
    """The extra suites named in the BatteryRecord, each with its overall refusal and over-refusal rows."""
    bat = view.battery
    entries = list(bat.extra_suites) if bat else []
    known = {e.get("suite") for e in entries}
    # Metrics of an extra suite whose entry is missing still show (named by suite only).
    for m in _greedy(view):
        if m.suite.startswith("extra:") and m.suite not in known:
            entries.append({"suite": m.suite})
            known.add(m.suite)
    out = []
    for e in entries:
        suite = str(e.get("suite", ""))
        recs = [m for m in _greedy(view) if m.suite == suite and m.category == "overall" and m.variant is None]
        grouped = _by_stage(recs, lambda m: m.name)
        rows = [_row(METRIC_LABELS[name], grouped[name]) for name in ("refusal_rate", "over_refusal_rate")
                if name in grouped]
        out.append(ExtraSuiteView(suite, str(e.get("benchmark", suite.removeprefix("extra:"))),
                                  int(e.get("n_items", 0) or 0), str(e.get("file_digest", "")),
                                  str(e.get("citation", "")), rows))
    return out


def context(view: RunView) -> dict[str, Any]:
    """Everything this module adds to a pack's template context."""
    prefill = prefill_rows(view)
    comparisons_overall, comparisons_by_category, comparison_pairs = comparison_rows(view)
    return {
        "prefill_rows": prefill,
        "attack_tables": attack_tables(view),
        "prefill_total": attack_total(view, by_k=True),
        "jailbreak_rows": jailbreak_rows(view),
        "jailbreak_total": attack_total(view, by_k=False),
        "signposting_rows": suite_rows(view, "signposting_rate"),
        "capability_rows": suite_rows(view, "capability_score"),
        "sampled_rows": sampled_rows(view),
        "persist_rows": persistence_rows(view),
        "judges": judges(view),
        "agreements": view.agreements,
        "comparisons_overall": comparisons_overall,
        "comparisons_by_category": comparisons_by_category,
        "comparison_pairs": comparison_pairs,
        "extra_suites": extra_suites(view),
        "suite_labels": SUITE_LABELS,
        "objective_labels": OBJECTIVE_LABELS,
        "augmentation_labels": AUGMENTATION_LABELS,
        "category_name": category_name,
        "categories": [category(c) for c in (view.battery.categories if view.battery else [])],
        "refusal_words": wording(view, attacks=False),
        "attack_words": wording(view, attacks=True),
    }
