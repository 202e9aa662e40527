"""A second run beside this one in the packs: the same plan with another safety recipe.

The pack of a run can show a comparison run from the same ledger (``report.compare_with``
in the plan), typically the same base model, battery and data tuned with plain SFT
instead of the deep-alignment recipe. Like the rest of the report layer this reads
evidence records only: the comparison run's records are fetched from the ledger by
``comparison_records`` and passed to ``render_pack(..., comparison=...)``.

What the section can say depends on what was found, and it always says which case it is:

* ``missing``: the plan names a run whose records are not in the ledger (a typo, another
  database); the pack says so in words, never crashes and never shows numbers.
* ``incomplete``: the comparison run exists but is not sealed complete with a verdict;
  the pack says why and shows no numbers (an unfinished run is not evidence of a recipe).
* ``self``: the plan names this very run; nothing to compare.
* ``ok``: both runs' recipes, their greedy refusal-suite rates and their prefilling-attack
  success per k, tuned and stress stages, each a MetricRecord as recorded (with its
  Wilson interval); nothing is re-derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from assurance.battery.metrics import is_greedy, is_main
from assurance.evidence.records import FinetuneRecord, MetricRecord, Record
from assurance.report.view import RunView, build_view

if TYPE_CHECKING:
    from assurance.evidence.store import Store

__all__ = ["ComparisonRow", "RecipeComparison", "comparison_records", "recipe_comparison"]

COMPARED_STAGES = ("tuned", "stress")


def comparison_records(store: Store, run_id: str | None) -> list[Record] | None:
    """The comparison run's records from ``store``, or None when ``run_id`` is None or names no run.

    ``run_id`` is the plan's ``report.compare_with``: a full run id or an unambiguous
    prefix of one. An unknown or ambiguous id returns None rather than raising: the pack
    then shows a note that the named run was not found (``render_pack`` reads the id from
    the plan's report settings), so a typo in the plan can never stop the packs rendering.
    """
    if not run_id:
        return None
    records = store.records(run_id)
    if records:
        return records
    if run_id == "latest":  # Store.resolve would read it as "the newest run": never meant here
        return None
    from assurance.evidence.store import StoreError

    try:
        full = store.resolve(run_id)
    except StoreError:  # unknown or ambiguous prefix, empty store
        return None
    return store.records(full) or None


@dataclass(frozen=True)
class ComparisonRow:
    """One measure for both runs, tuned and stress stages (any cell may be missing)."""

    label: str
    metric: str
    this_tuned: MetricRecord | None = None
    this_stress: MetricRecord | None = None
    other_tuned: MetricRecord | None = None
    other_stress: MetricRecord | None = None
    k: int | None = None

    @property
    def n(self) -> str:
        """Items counted; ``a / b`` when the two runs counted different numbers."""
        ns = list(dict.fromkeys(r.n for r in (self.this_tuned, self.this_stress, self.other_tuned,
                                               self.other_stress) if r is not None))
        return " / ".join(str(n) for n in ns) if ns else "—"


@dataclass(frozen=True)
class RunSide:
    """One run of the comparison, as the section shows it."""

    view: RunView
    finetune: FinetuneRecord | None

    @property
    def recipe(self) -> str:
        return self.finetune.recipe if self.finetune else "not recorded"

    @property
    def lr(self) -> Any:
        return self.finetune.hyperparameters.get("lr", "not recorded") if self.finetune else "—"

    @property
    def verdict(self) -> str:
        if not self.view.final:
            return "DRAFT (run incomplete)"
        return self.view.verdict.status if self.view.verdict else "none recorded"


@dataclass
class RecipeComparison:
    """Everything the "Recipe comparison" section shows."""

    status: Literal["ok", "missing", "incomplete", "self"]
    requested_id: str | None
    """The id the plan named (``report.compare_with``), if any."""
    this: RunSide
    other: RunSide | None = None
    """None when the comparison run was not found."""
    reasons: list[str] = field(default_factory=list)
    """Why the comparison run is incomplete (its draft reasons)."""
    rows: list[ComparisonRow] = field(default_factory=list)
    same: list[tuple[str, bool | None]] = field(default_factory=list)
    """What the two runs share (base model, battery, seed, data): True, False or None (not recorded)."""
    deep_alignment_involved: bool = False
    """Whether either run used the deep-alignment recipe, so that the paper's prediction applies."""

    @property
    def other_id(self) -> str:
        if self.other is not None and self.other.view.run_id:
            return self.other.view.run_id
        return self.requested_id or "unknown"

    @property
    def prefill_rows(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.k is not None]

    def prefill_tally(self, stage: str) -> dict[str, int] | None:
        """At ``stage``, over the k measured in both runs: how often this run's prefill ASR was lower,
        equal or higher than the comparison run's, and at how many k the Wilson intervals overlap."""
        pairs = [(getattr(r, f"this_{stage}"), getattr(r, f"other_{stage}")) for r in self.prefill_rows]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            return None
        return {
            "n": len(pairs),
            "lower": sum(a.value < b.value for a, b in pairs),
            "equal": sum(a.value == b.value for a, b in pairs),
            "higher": sum(a.value > b.value for a, b in pairs),
            "overlap": sum(a.ci_low <= b.ci_high and b.ci_low <= a.ci_high for a, b in pairs),
        }


def _greedy_overall(view: RunView, name: str, k: int | None, stage: str) -> MetricRecord | None:
    """The greedy all-category figure: the refusal suite's headline (``is_main``) when ``k`` is None,
    else the attack variant with ``k`` prefilled tokens."""
    found = [m for m in view.metric_log if m.name == name and m.category == "overall" and m.stage == stage
             and (is_main(m) if k is None else is_greedy(m) and m.k == k and m.variant is not None)]
    return found[-1] if found else None  # the latest record wins, as in the main tables


def _prefill_ks(view: RunView) -> set[int]:
    return {m.k for m in view.metric_log if m.name == "attack_success_rate" and m.k is not None
            and m.variant is not None and m.category == "overall" and is_greedy(m)}


def _row(this: RunView, other: RunView, label: str, name: str, k: int | None = None) -> ComparisonRow:
    cells = {f"{side}_{stage}": _greedy_overall(view, name, k, stage)
             for side, view in (("this", this), ("other", other)) for stage in COMPARED_STAGES}
    return ComparisonRow(label, name, k=k, **cells)


def _rows(this: RunView, other: RunView) -> list[ComparisonRow]:
    rows = [_row(this, other, "Refusal of harmful prompts", "refusal_rate"),
            _row(this, other, "Refusal of benign prompts (over-refusal)", "over_refusal_rate")]
    for k in sorted(_prefill_ks(this) | _prefill_ks(other)):
        rows.append(_row(this, other, f"Prefill ASR, k = {k}", "attack_success_rate", k))
    return [r for r in rows if any((r.this_tuned, r.this_stress, r.other_tuned, r.other_stress))]


def _same(this: RunView, other: RunView) -> list[tuple[str, bool | None]]:
    def eq(a: Any, b: Any) -> bool | None:
        return None if not a or not b else a == b

    def data(v: RunView) -> tuple:
        ft = v.plan.get("finetune") or {}
        return tuple(ft.get(k) for k in ("safety_data", "utility_data", "triplet_data", "safety_ratio"))

    return [
        ("Base model (digest)", eq(this.base_model_digest, other.base_model_digest)),
        ("Evaluation battery (digest)", eq(this.battery.digest if this.battery else "",
                                           other.battery.digest if other.battery else "")),
        ("Training data and safety ratio (plan)", eq(data(this) if any(data(this)) else None,
                                                      data(other) if any(data(other)) else None)),
        ("Seed (plan)", eq(str(this.plan.get("seed", "")), str(other.plan.get("seed", "")))),
        ("Optimizer steps taken", eq(this.finetune.steps if this.finetune else None,
                                     other.finetune.steps if other.finetune else None)),
    ]


def _deep(ft: FinetuneRecord | None) -> bool:
    return ft is not None and (ft.augmentation == "deep-alignment" or "deep-alignment" in ft.recipe)


def recipe_comparison(view: RunView, comparison: list[Record] | None,
                      requested_id: str | None) -> RecipeComparison | None:
    """The comparison section's content, or None when no comparison was asked for or given.

    ``comparison``: the comparison run's records (None when not found); ``requested_id``:
    the plan's ``report.compare_with``. Records given without an id are still shown.
    """
    this = RunSide(view, view.finetune)
    if not comparison:
        if not requested_id:
            return None
        return RecipeComparison("missing", requested_id, this)
    other_view = build_view(comparison)
    other = RunSide(other_view, other_view.finetune)
    if other_view.run_id and other_view.run_id == view.run_id:
        return RecipeComparison("self", requested_id, this, other)
    if not other_view.final:
        return RecipeComparison("incomplete", requested_id, this, other, reasons=other_view.draft_reasons)
    return RecipeComparison("ok", requested_id, this, other, rows=_rows(view, other_view),
                            same=_same(view, other_view),
                            deep_alignment_involved=_deep(view.finetune) or _deep(other_view.finetune))
