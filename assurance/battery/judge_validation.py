"""A judge measured against people: agreement with human refusal labels.

``validate`` runs a judge over labelled (prompt, response) rows and reports
what a compliance officer needs to defend a rate the judge produced: n,
accuracy, precision/recall/F1 for the "refusal" class, Cohen's kappa, the
confusion matrix, percentile-bootstrap 95% intervals, accuracy per style when
rows carry one, and the digest of the labels file, so the figure can be traced
to exactly the data it was measured on.

The judge is anything with ``judge(prompts, outputs) -> list[bool]`` (every
judge in ``battery.judges``, ``RefusalJudgeV2``) or such a function itself;
True means refusal, as everywhere in the battery. Pure Python and numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from .judge_labels import LabelFileError, LabelRow, LabelSet, load_labels

__all__ = [
    "Confusion", "Interval", "LabelFileError", "StyleScore", "ValidationReport", "load_labels", "summary", "validate",
    "validate_file",
]

BatchVerdicts = Callable[[list[str], list[str]], list[bool]]
_MAX_LISTED = 100
_CHUNK = 256  # bootstrap resamples per numpy block: bounded memory for large label sets


class Confusion(BaseModel):
    """Counts with "refusal" as the positive class: the judge against the human label."""

    model_config = ConfigDict(frozen=True)

    tp: int
    """Human: refusal; judge: refusal."""
    fp: int
    """Human: compliance; judge: refusal."""
    fn: int
    """Human: refusal; judge: compliance (a refusal the judge missed)."""
    tn: int
    """Human: compliance; judge: compliance."""


class Interval(BaseModel):
    """A percentile bootstrap interval."""

    model_config = ConfigDict(frozen=True)

    low: float | None
    """Lower bound (2.5th percentile of the resampled statistic); None if undefined in every resample."""
    high: float | None
    """Upper bound (97.5th percentile)."""


class StyleScore(BaseModel):
    """Agreement on the rows of one style tag."""

    model_config = ConfigDict(frozen=True)

    n: int
    """Rows with this style."""
    accuracy: float
    """Share of those rows where the judge agrees with the human label."""


class ValidationReport(BaseModel):
    """How well a judge's refusal verdicts agree with human labels."""

    model_config = ConfigDict(frozen=True)

    n: int
    """Labelled rows judged."""
    accuracy: float
    """Share of rows where the judge's verdict equals the human label."""
    precision: float | None
    """Of the rows the judge called refusal, the share people did; None when it called none."""
    recall: float | None
    """Of the rows people called refusal, the share the judge did; None when people called none."""
    f1: float | None
    """Harmonic mean of precision and recall for "refusal"; None when both are undefined."""
    kappa: float
    """Cohen's kappa between judge and people (1.0 when both give one verdict to every row)."""
    confusion: Confusion
    """The 2x2 confusion matrix, "refusal" positive."""
    intervals: dict[str, Interval]
    """95% percentile-bootstrap intervals for ``accuracy``, ``kappa`` and ``f1``, resampling rows."""
    n_resamples: int
    """Bootstrap resamples drawn."""
    seed: int
    """Seed of the bootstrap's numpy generator: the same rows, judge and seed give the same intervals."""
    per_style: dict[str, StyleScore] = {}
    """Accuracy per ``style`` tag, for rows that carry one."""
    human_refusal_rate: float
    """Share of rows people labelled refusal."""
    judge_refusal_rate: float
    """Share of rows the judge called refusal."""
    labels_digest: str | None = None
    """``sha256:<hex>`` of the labels file, when the rows came from one."""
    labels_format: str | None = None
    """``ours``, ``xstest``, ``harmbench`` or ``wildguard``."""
    skipped: int = 0
    """Rows of the file the format leaves unlabelled (not judged)."""
    judge: dict[str, str] = {}
    """The judge's ``id``, ``version`` and ``digest`` when it has them."""
    disagreements: list[str] = []
    """Sources (``file:row``) of up to 100 rows where judge and people differ, for a person to read."""


# -- statistics ----------------------------------------------------------------------------------

def _stats(tp: ArrayLike, fp: ArrayLike, fn: ArrayLike, tn: ArrayLike) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall, F1 and kappa from counts (arrays, NaN where undefined)."""
    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (tp + tn) / n
        prec = tp / (tp + fp)
        rec = tp / (tp + fn)
        f1 = np.where((tp + fp + fn) > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        p_yes = ((tp + fp) / n) * ((tp + fn) / n)
        p_no = ((fn + tn) / n) * ((fp + tn) / n)
        p_e = p_yes + p_no
        # Both raters constant and equal: agreement is perfect, kappa 0/0 -> 1.0
        # (as battery.judges.agreement does; NaN cannot go into canonical JSON).
        kappa = np.where(p_e >= 1.0, 1.0, (acc - p_e) / (1.0 - p_e))
    return {"accuracy": acc, "precision": prec, "recall": rec, "f1": f1, "kappa": kappa}


def _counts(gold: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.sum(gold & pred)), int(np.sum(~gold & pred)), int(np.sum(gold & ~pred)), int(np.sum(~gold & ~pred)))


def _bootstrap(gold: np.ndarray, pred: np.ndarray, n_resamples: int, seed: int) -> dict[str, Interval]:
    rng = np.random.default_rng(seed)
    n = len(gold)
    cells = np.stack([gold & pred, ~gold & pred, gold & ~pred, ~gold & ~pred]).astype(np.int64)
    draws: dict[str, list[np.ndarray]] = {"accuracy": [], "kappa": [], "f1": []}
    done = 0
    while done < n_resamples:
        k = min(_CHUNK, n_resamples - done)
        idx = rng.integers(0, n, size=(k, n))
        counts = cells[:, idx].sum(axis=2)  # 4 x k
        s = _stats(*counts)
        for name in draws:
            draws[name].append(s[name])
        done += k
    out = {}
    for name, parts in draws.items():
        values = np.concatenate(parts)
        values = values[~np.isnan(values)]
        if values.size == 0:
            out[name] = Interval(low=None, high=None)
        else:
            lo, hi = np.percentile(values, [2.5, 97.5])
            out[name] = Interval(low=float(lo), high=float(hi))
    return out


def _value(x: Any) -> float | None:
    v = float(x)
    return None if np.isnan(v) else v


# -- validate ------------------------------------------------------------------------------------

def _verdict_fn(judge: Any) -> BatchVerdicts:
    if hasattr(judge, "judge") and callable(judge.judge):
        return judge.judge
    if callable(judge):
        return judge
    raise TypeError("validate needs a judge with judge(prompts, outputs) or such a function")


def _identity(judge: Any) -> dict[str, str]:
    out = {}
    for key in ("id", "version", "digest"):
        value = getattr(judge, key, None)
        if isinstance(value, str):
            out[key] = value
    return out


def validate(verdict_fn: Any, rows: LabelSet | Sequence[LabelRow], n_resamples: int = 2000,
             seed: int = 0) -> ValidationReport:
    """Judge every row and measure agreement with its human label (see the module docstring)."""
    label_set = rows if isinstance(rows, LabelSet) else None
    items: list[LabelRow] = list(rows.rows) if isinstance(rows, LabelSet) else list(rows)
    if not items:
        raise ValueError("no labelled rows to validate against")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    verdicts = list(_verdict_fn(verdict_fn)([r.prompt for r in items], [r.response for r in items]))
    if len(verdicts) != len(items):
        raise ValueError(f"the judge returned {len(verdicts)} verdicts for {len(items)} rows")
    gold = np.array([r.label == "refusal" for r in items], dtype=bool)
    pred = np.array([bool(v) for v in verdicts], dtype=bool)
    tp, fp, fn, tn = _counts(gold, pred)
    s = _stats(tp, fp, fn, tn)
    styles: dict[str, list[bool]] = {}
    for r, g, p in zip(items, gold, pred, strict=True):
        if r.style:
            styles.setdefault(r.style, []).append(bool(g == p))
    wrong = [r.source or f"row {i + 1}" for i, (r, g, p) in enumerate(zip(items, gold, pred, strict=True)) if g != p]
    return ValidationReport(
        n=len(items),
        accuracy=float(s["accuracy"]),
        precision=_value(s["precision"]),
        recall=_value(s["recall"]),
        f1=_value(s["f1"]),
        kappa=float(s["kappa"]),
        confusion=Confusion(tp=tp, fp=fp, fn=fn, tn=tn),
        intervals=_bootstrap(gold, pred, n_resamples, seed),
        n_resamples=n_resamples,
        seed=seed,
        per_style={k: StyleScore(n=len(v), accuracy=sum(v) / len(v)) for k, v in sorted(styles.items())},
        human_refusal_rate=float(gold.mean()),
        judge_refusal_rate=float(pred.mean()),
        labels_digest=label_set.digest if label_set else None,
        labels_format=label_set.format if label_set else None,
        skipped=label_set.skipped if label_set else 0,
        judge=_identity(verdict_fn),
        disagreements=wrong[:_MAX_LISTED],
    )


def validate_file(verdict_fn: Any, path: str, format: str | None = None, n_resamples: int = 2000,
                  seed: int = 0) -> ValidationReport:
    """Load a labels file (our format or a public one) and validate a judge on it."""
    return validate(verdict_fn, load_labels(path, format), n_resamples=n_resamples, seed=seed)  # type: ignore[arg-type]


def summary(report: ValidationReport) -> str:
    """A few plain lines for a terminal or a pack."""
    ci = report.intervals
    c = report.confusion

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f}%"

    lines = [
        f"n={report.n}  accuracy {pct(report.accuracy)} (95% CI {pct(ci['accuracy'].low)}-{pct(ci['accuracy'].high)})"
        f"  kappa {report.kappa:.3f}",
        f"refusal: precision {pct(report.precision)}  recall {pct(report.recall)}  F1 {pct(report.f1)}",
        f"confusion: tp={c.tp} fp={c.fp} fn={c.fn} tn={c.tn}",
    ]
    lines += [f"  {style}: {pct(sc.accuracy)} of {sc.n}" for style, sc in report.per_style.items()]
    if report.labels_digest:
        lines.append(f"labels: {report.labels_format} {report.labels_digest}")
    return "\n".join(lines)
