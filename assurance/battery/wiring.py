"""The battery's judges, paired comparisons and public benchmarks, as a run uses them.

The library pieces (``judges/``, ``stats.py``, ``loaders.py``) know nothing of
plans or records; this module turns the plan's ``battery`` section into them
and their results into evidence records:

* ``build_judges`` makes the plan's judges (the first is the primary judge);
  ``build_harm_judge`` the attack suites' harm judge;
  ``over_refusal_judge`` picks who scores benign prompts when the primary
  measures harm (a guard model must not feed over-refusal).
* ``cross_judge`` has every secondary judge score the refusal suite's greedy
  outputs of one stage, and measures agreement for every pair of judges
  (``JudgeVerdictsRecord``, ``AgreementRecord``). Secondary verdicts never
  feed a metric or the gate.
* ``compare_stages`` pairs two stages item by item (harmful refusal items and
  the prefilling attack) into ``ComparisonRecord``s: the difference with a
  paired bootstrap interval, and McNemar's test, both clustered by item.
* ``load_judge_labels`` and ``validate_judges`` measure every refusal judge
  against the plan's human-labelled files (``JudgeValidationRecord``).
* ``load_extra_suites`` reads the public benchmark files into suites named
  ``extra:<name>``, run beside the battery but outside its digest and gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from ..evidence.records import (
    AgreementRecord,
    ComparisonRecord,
    JudgeValidationRecord,
    JudgeVerdictsRecord,
    SampleRecord,
    Stage,
)
from .items import BatteryError
from .judge_labels import LabelFileError, LabelSet, load_labels
from .judge_validation import validate
from .judges import BaseJudge, JudgeError, JudgeSpec, KeywordJudgeSpec, agreement_summary, judge_key
from .loaders import LOADERS, BenchmarkFormatError, load_benchmark
from .paths import resolve_path
from .probes import Plain
from .stats import mcnemar, paired_bootstrap_delta
from .suites import Suite

EXTRA_PREFIX = "extra:"
"""Suite-name prefix of public benchmarks run beside the battery; the gate reads only ``refusal``."""
EXTRA_SUITE_VERSION = "1"


# -- judges ----------------------------------------------------------------------------------------

def build_judges(specs: Sequence[JudgeSpec], base: Path | None = None, *, device: str = "cpu",
                 dtype: str = "float32") -> list[BaseJudge]:
    """The plan's judges, in order; a bad one raises ``JudgeError`` naming ``battery.judges[i]``.

    Nothing is contacted or loaded here (model weights load on first use), so
    this is cheap enough to run before the first record is written.
    """
    judges = []
    for n, spec in enumerate(specs):
        try:
            judge = spec.build(base, device=device, dtype=dtype)
            _ = judge.digest  # a model judge hashes its folder here: a missing file fails now, not mid-run
        except (JudgeError, OSError) as err:
            raise JudgeError(f"battery.judges[{n}] ({spec.kind}): {err}") from None
        judges.append(judge)
    keys = [judge_key(j) for j in judges]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise JudgeError(f"battery.judges: the same judge is listed more than once: {dupes}")
    return judges


def build_harm_judge(spec: JudgeSpec | None, base: Path | None = None, *, device: str = "cpu",
                     dtype: str = "float32") -> BaseJudge | None:
    """The plan's ``battery.harm_judge`` for the attack suites (None when the plan gives none); a bad one
    raises ``JudgeError`` naming ``battery.harm_judge``. Nothing is loaded yet, only the folder hashed."""
    if spec is None:
        return None
    try:
        judge = spec.build(base, device=device, dtype=dtype)
        _ = judge.digest
    except (JudgeError, OSError) as err:
        raise JudgeError(f"battery.harm_judge ({spec.kind}): {err}") from None
    if judge.measures != "harm":  # the plan checks this too; a judge built by hand is checked here
        raise JudgeError(f"battery.harm_judge: {judge_key(judge)} measures {judge.measures}, not harm")
    return judge


def over_refusal_judge(judges: Sequence[BaseJudge]) -> BaseJudge | None:
    """Who scores benign prompts when the primary judge measures harm; None when the primary does it.

    A harm judge reads a safe answer and a refusal alike as "safe", so it
    cannot see over-refusal: the first refusal-measuring judge listed takes
    the benign prompts, or the default keyword judge (v2) when none is listed.
    """
    if not judges or judges[0].measures != "harm":
        return None
    return next((j for j in judges[1:] if j.measures == "refusal"), None) or KeywordJudgeSpec().build()


def judge_entries(judges: Sequence[BaseJudge], benign_judge: BaseJudge | None) -> list[dict[str, Any]]:
    """BatteryRecord ``judges`` entries for the refusal judges beyond the primary one."""
    out = [j.identity() | {"suite": "refusal (secondary: agreement only)", "role": "secondary"} for j in judges[1:]]
    if benign_judge is not None:
        out.append(benign_judge.identity() | {"suite": "refusal (benign prompts: over-refusal)",
                                              "role": "over-refusal"})
    return out


# -- judges measured against people -----------------------------------------------------------------

def load_judge_labels(specs: Sequence, base: Path | None = None) -> list[LabelSet]:
    """Each plan ``judge_validation`` labels file, read and checked; a bad one raises ``BatteryError`` naming the
    plan entry, the file and the row."""
    out = []
    for n, spec in enumerate(specs):
        try:
            out.append(load_labels(resolve_path(spec.labels, base), None if spec.format == "auto" else spec.format))
        except LabelFileError as err:
            raise BatteryError(f"battery.judge_validation[{n}]: {err}") from None
    return out


def validate_judges(judges: Sequence[BaseJudge], benign_judge: Any, label_sets: Sequence[LabelSet],
                    specs: Sequence, seed: int) -> list[JudgeValidationRecord]:
    """Every refusal-measuring judge of the run (primary, secondary, over-refusal) against every labels file.

    A harm judge answers another question ("is this harmful?"), so refusal labels cannot measure it."""
    roles = [(j, "primary" if n == 0 else "secondary") for n, j in enumerate(judges)]
    if benign_judge is not None:
        roles.append((benign_judge, "over-refusal"))
    out = []
    for judge, role in roles:
        if judge.measures != "refusal":
            continue
        for labels, spec in zip(label_sets, specs, strict=True):
            seeded = seed if spec.seed is None else spec.seed
            report = validate(judge, labels, n_resamples=spec.n_resamples, seed=seeded)
            out.append(JudgeValidationRecord(
                judge_id=judge.id, judge_version=judge.version, judge_digest=judge.digest, role=role,
                labels_file=Path(labels.path).name, labels_digest=labels.digest, labels_format=labels.format,
                n=report.n, skipped=report.skipped, accuracy=report.accuracy, kappa=report.kappa,
                precision=report.precision, recall=report.recall, f1=report.f1,
                intervals={k: v.model_dump() for k, v in report.intervals.items()},
                confusion=report.confusion.model_dump(), n_resamples=report.n_resamples, seed=report.seed,
                per_style={k: {"n": v.n, "accuracy": v.accuracy} for k, v in report.per_style.items()},
                human_refusal_rate=report.human_refusal_rate, judge_refusal_rate=report.judge_refusal_rate,
                disagreements=report.disagreements))
    return out


# -- judging the same outputs twice -----------------------------------------------------------------

def _refusal_samples(samples: Sequence[SampleRecord], stage: Stage) -> list[SampleRecord]:
    """The greedy plain refusal-suite samples of one stage: what the judges cross-check."""
    return [s for s in samples if s.stage == stage and s.suite == "refusal" and s.seed is None
            and s.variant is None and s.expected in ("refuse", "comply")]


def _served(judge: BaseJudge, before: dict) -> dict[str, int]:
    """What answered this call (the judge's ``served`` counter is cumulative over the run)."""
    served = dict(getattr(judge, "served", None) or {})
    return {f"{model} {fp}".strip(): int(n - before.get((model, fp), 0))
            for (model, fp), n in sorted(served.items()) if n - before.get((model, fp), 0) > 0}


def cross_judge(judges: Sequence[BaseJudge], samples: Sequence[SampleRecord], stage: Stage
                ) -> tuple[list[JudgeVerdictsRecord], list[AgreementRecord]]:
    """Every secondary judge scores the stage's refusal outputs; agreement for every pair of judges.

    The primary judge's verdicts are the SampleRecords' own (``refused``, on
    the items whose ``judge_id`` names it). A harm judge scores harmful items
    only, and any pair with a harm judge is compared on harmful items only.
    """
    if len(judges) < 2:
        return [], []
    rows = _refusal_samples(samples, stage)
    if not rows:
        return [], []
    primary = judges[0]
    verdicts: dict[int, dict[str, bool]] = {
        0: {s.item_id: s.refused for s in rows if s.judge_id == judge_key(primary)}}
    records: list[JudgeVerdictsRecord] = []
    for n, judge in enumerate(judges[1:], start=1):
        scored = [s for s in rows if judge.measures == "refusal" or s.expected == "refuse"]
        if not scored:
            continue
        before = dict(getattr(judge, "served", None) or {})
        got = judge.verdicts([s.prompt for s in scored], [s.output for s in scored])
        if len(got) != len(scored):
            raise JudgeError(f"judge {judge_key(judge)} gave {len(got)} verdicts for {len(scored)} outputs")
        verdicts[n] = {s.item_id: v.refused for s, v in zip(scored, got, strict=True)}
        records.append(JudgeVerdictsRecord(
            stage=stage, judge_id=judge_key(judge), judge_digest=judge.digest, measures=judge.measures,
            item_ids=[s.item_id for s in scored], refused=[v.refused for v in got], labels=[v.label for v in got],
            raw=[v.raw for v in got] if any(v.raw for v in got) else [], served=_served(judge, before)))
    harmful = {s.item_id for s in rows if s.expected == "refuse"}
    order = [s.item_id for s in rows]
    agreements: list[AgreementRecord] = []
    for i, j in combinations(sorted(verdicts), 2):
        a, b = judges[i], judges[j]
        scope: Literal["all", "harmful"] = "harmful" if "harm" in (a.measures, b.measures) else "all"
        ids = [x for x in order if x in verdicts[i] and x in verdicts[j] and (scope == "all" or x in harmful)]
        if not ids:
            continue
        va, vb = [verdicts[i][x] for x in ids], [verdicts[j][x] for x in ids]
        summary = agreement_summary(va, vb, ids)
        agreements.append(AgreementRecord(
            stage=stage, judge_a=judge_key(a), judge_a_digest=a.digest, judge_b=judge_key(b),
            judge_b_digest=b.digest, scope=scope, n=summary["n"], agreement=summary["agreement"],
            kappa=summary["kappa"], a_refused=sum(va), b_refused=sum(vb), disagreements=summary["disagreements"]))
    return records, agreements


# -- paired comparison of two stages ----------------------------------------------------------------

@dataclass(frozen=True)
class _Pair:
    key: tuple[str, str | None]
    category: str
    variant: str | None
    k: int | None
    before: bool
    after: bool
    judges: tuple[str, str]


def _outcomes(samples: Sequence[SampleRecord], stage: Stage, suite: str) -> dict[tuple[str, str | None], SampleRecord]:
    out = {}
    for s in samples:
        if s.stage != stage or s.suite != suite or s.seed is not None:
            continue
        if suite == "refusal" and (s.expected != "refuse" or s.variant is not None):
            continue
        out[(s.item_id, s.variant)] = s
    return out


def _event(s: SampleRecord, metric: str) -> bool:
    return bool(s.refused) if metric == "refusal_rate" else bool(s.attack_succeeded)


ComparedMetric = Literal["refusal_rate", "attack_success_rate", "non_refusal_rate"]
COMPARED: tuple[tuple[str, ComparedMetric], ...] = (("refusal", "refusal_rate"), ("prefill", "non_refusal_rate"))
"""(suite, metric) pairs compared across stages: harmful refusal items and the prefilling attack (non-refusal:
the refusal judge's verdicts; runs before harm judges recorded the same count as ``attack_success_rate``)."""


def compare_stages(samples: Sequence[SampleRecord], stage_from: Stage, stage_to: Stage, *,
                   n_resamples: int = 10_000, seed: int = 0) -> list[ComparisonRecord]:
    """Paired comparisons of two stages: overall, per category and (prefill) per k."""
    out: list[ComparisonRecord] = []
    for suite, metric in COMPARED:
        before, after = _outcomes(samples, stage_from, suite), _outcomes(samples, stage_to, suite)
        pairs = [_Pair(key, s.category, s.variant, s.k, _event(s, metric), _event(after[key], metric),
                       (s.judge_id, after[key].judge_id))
                 for key, s in before.items() if key in after]
        if not pairs:
            continue
        groups: list[tuple[str, str | None, int | None, list[_Pair]]] = [("overall", None, None, pairs)]
        if suite == "prefill":
            for variant in dict.fromkeys(p.variant for p in pairs):
                chosen = [p for p in pairs if p.variant == variant]
                groups.append(("overall", variant, chosen[0].k, chosen))
        for category in dict.fromkeys(p.category for p in pairs):
            groups.append((category, None, None, [p for p in pairs if p.category == category]))
        for category, variant, k, group in groups:
            a, b = [p.before for p in group], [p.after for p in group]
            items = [p.key[0] for p in group]  # an item's variants resampled together, never as independent
            boot = paired_bootstrap_delta(a, b, n_resamples=n_resamples, seed=seed, clusters=items)
            test = mcnemar(a, b, clusters=items)
            judges = sorted({j for p in group for j in p.judges})
            out.append(ComparisonRecord(
                stage_from=stage_from, stage_to=stage_to, suite=suite, metric=metric, category=category,
                variant=variant, k=k, n=len(group), value_from=sum(a) / len(a), value_to=sum(b) / len(b),
                delta=boot.delta, ci_low=boot.lo, ci_high=boot.hi, n_resamples=n_resamples, seed=seed,
                mcnemar_b=int(test["b"]), mcnemar_c=int(test["c"]), mcnemar_statistic=float(test["statistic"]),
                mcnemar_p_value=float(test["p_value"]), mcnemar_method=str(test["method"]),
                judge_id=", ".join(judges), clustered_by="item", n_clusters=len(set(items))))
    return out


# -- public benchmarks beside the battery -----------------------------------------------------------

@dataclass(frozen=True)
class ExtraSuite:
    """A loaded public benchmark: its suite and where it came from."""

    suite: Suite
    benchmark: str
    path: Path
    options: dict[str, Any]

    def entry(self, file_digest: str) -> dict[str, Any]:
        """The BatteryRecord ``extra_suites`` entry."""
        return {"suite": self.suite.name, "benchmark": self.benchmark, "path": str(self.path),
                "file_digest": file_digest, "suite_digest": self.suite.digest, "n_items": len(self.suite.items),
                "options": self.options, "citation": LOADERS[self.benchmark].citation}


def load_extra_suites(specs: Sequence, base: Path | None = None, *,
                      per_category: int | None = None) -> list[ExtraSuite]:
    """Each plan ``extra_suites`` entry loaded and checked; a bad file raises ``BatteryError`` naming
    the plan entry, the file and the row. ``per_category`` cuts each category like the battery's limit."""
    out = []
    for n, spec in enumerate(specs):
        path = resolve_path(spec.path, base)
        options = dict(spec.options)
        if spec.expected_rows is not None:
            options["expected_rows"] = spec.expected_rows
        try:
            items = load_benchmark(spec.name, path, **options)
        except BenchmarkFormatError as err:
            raise BatteryError(f"battery.extra_suites[{n}] ({spec.name}): {err}") from None
        if not items:
            raise BatteryError(f"battery.extra_suites[{n}] ({spec.name}): {path.name}: no items after filtering")
        suite = Suite(f"{EXTRA_PREFIX}{spec.name}", EXTRA_SUITE_VERSION, tuple(items), Plain(), "refusal")
        out.append(ExtraSuite(suite.limited(per_category), spec.name, path, dict(spec.options)))
    return out

