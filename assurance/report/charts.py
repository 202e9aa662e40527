"""Charts for the packs, drawn with matplotlib as deterministic SVG text.

We use the object-oriented API (``Figure`` with the SVG canvas) rather than
pyplot, so nothing here touches matplotlib's global backend or figure registry
and no display is needed (Agg would only matter for raster output). Determinism
matters because a pack is an artifact with a digest: the same records must give the same
bytes, so ids are salted with a constant, sizes are fixed and neither a date nor matplotlib's
version is written.

Legends sit below the plot, outside the axes, and the figures use constrained layout, which
makes room for them (and for long category names) instead of letting the figure's edge cut
them off. The ``*_figure`` functions return the Figure itself, so tests can measure that.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from assurance.report.sections import StageRow
from assurance.report.view import CategoryRow
from assurance.stage_labels import legend_label

if TYPE_CHECKING:  # the rc key names; only for the type checker, as older matplotlib lacks the alias
    from matplotlib.typing import RcKeyType

# Sober, colour-blind-safe pair (Okabe-Ito) plus a neutral for the stress stage. Legend names are
# stage_labels.legend_label's.
STAGE_COLOUR = {"base": "#999999", "tuned": "#0072B2", "stress": "#E69F00"}
THRESHOLD_COLOUR = "#D55E00"

_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "assurance-pack",  # fixed ids instead of random ones
    "svg.fonttype": "path",  # text as paths: no font lookup when the PDF is drawn
    "font.family": "DejaVu Sans",  # ships with matplotlib, so the same everywhere
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _to_svg(fig: Figure | None) -> str:
    if fig is None:
        return ""
    buf = io.StringIO()
    FigureCanvasSVG(fig)
    # Date and Creator None: no timestamp and no matplotlib version in the bytes.
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches=None)
    return buf.getvalue()


def _figure(width: float, height: float) -> Figure:
    # Constrained layout leaves room for tick labels and the outside legend; pads in inches.
    return Figure(figsize=(width, height), dpi=72, layout=ConstrainedLayoutEngine(w_pad=0.06, h_pad=0.06))


def _legend_below(fig: Figure, ax: Any, last: str | None = None) -> None:
    """The legend under the plot, in as many rows as it needs to stay inside the figure,
    stages in order and ``last`` (the policy mark) at the end."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == last)
    # 7 pt DejaVu: about 0.06 in a character, plus the marker and the gap between entries.
    per_row = max(1, min(len(labels), int(fig.get_figwidth() // (0.45 + 0.06 * max(map(len, labels))))))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
               ncols=per_row, frameon=False, fontsize=7)


def rate_chart(rows: Sequence[CategoryRow], *, title: str, lower_is_better: bool = False,
               evaluate_only: bool = False) -> str:
    """Grouped horizontal bars of a rate per category by stage, with Wilson 95% error bars.

    The policy threshold is drawn as a tick mark on each category (categories may
    have different thresholds). Returns SVG text; empty string when there is nothing to draw.
    """
    with matplotlib.rc_context(_RC):
        return _to_svg(rate_figure(rows, title=title, lower_is_better=lower_is_better, evaluate_only=evaluate_only))


def rate_figure(rows: Sequence[CategoryRow], *, title: str, lower_is_better: bool = False,
                evaluate_only: bool = False) -> Figure | None:
    """The Figure behind ``rate_chart`` (None when there is nothing to draw)."""
    rows = [r for r in rows if r.base or r.tuned or r.stress]
    if not rows:
        return None
    stages = [s for s in ("base", "tuned", "stress") if any(getattr(r, s) for r in rows)]
    # Thinner bars when there are many categories, so the chart fits on one A4 page
    # (12 categories x 3 stages would otherwise be 11 inches tall); 1.1 in for title, axis and legend.
    height = 1.1 + min(0.28 * len(stages), 7.2 / len(rows)) * len(rows)
    bar_h = 0.8 / len(stages)

    with matplotlib.rc_context(_RC):
        fig = _figure(6.4, height)
        ax = fig.add_subplot()
        labels = ["All categories" if r.category == "overall" else r.label for r in rows]
        # Top-to-bottom in table order: matplotlib draws y=0 at the bottom.
        ys = list(range(len(rows)))[::-1]
        for k, stage in enumerate(stages):
            name, colour = legend_label(stage, evaluate_only), STAGE_COLOUR[stage]
            vals, lo, hi, pos = [], [], [], []
            for y, row in zip(ys, rows, strict=True):
                rec = getattr(row, stage)
                if rec is None:
                    continue
                vals.append(rec.value)
                lo.append(max(rec.value - rec.ci_low, 0.0))
                hi.append(max(rec.ci_high - rec.value, 0.0))
                pos.append(y + 0.4 - bar_h * (k + 0.5))
            ax.barh(pos, vals, height=bar_h * 0.9, color=colour, label=name,
                    xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        for y, row in zip(ys, rows, strict=True):
            if row.threshold is not None:
                ax.plot([row.threshold, row.threshold], [y - 0.45, y + 0.45],
                        color=THRESHOLD_COLOUR, linewidth=1.6, linestyle="--")
        policy = "Policy maximum" if lower_is_better else "Policy minimum"
        ax.plot([], [], color=THRESHOLD_COLOUR, linewidth=1.6, linestyle="--", label=policy)
        ax.set_yticks(ys, labels)
        ax.set_xlim(0, 1.0)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0], ["0%", "20%", "40%", "60%", "80%", "100%"])
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        _legend_below(fig, ax, last=policy)
        return fig


def loss_chart(curve: Sequence[tuple[int, float]], *, title: str = "Training loss (safety fine-tune)",
               ylabel: str = "loss", colour: str = STAGE_COLOUR["tuned"]) -> str:
    """A small line chart of training loss by optimizer step; empty string without points.

    ``ylabel`` names what was minimised: the token-wise constrained loss is not cross-entropy.
    """
    if not curve:
        return ""
    with matplotlib.rc_context(_RC):
        fig = _figure(4.2, 1.8)
        ax = fig.add_subplot()
        ax.plot([p[0] for p in curve], [p[1] for p in curve], color=colour, linewidth=1.2)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        ax.grid(color="#dddddd", linewidth=0.5)
        ax.set_title(title, fontsize=8, loc="left")
        return _to_svg(fig)


def asr_curve_chart(rows: Sequence[StageRow], *, measure: str = "attack success rate", title: str | None = None,
                    evaluate_only: bool = False) -> str:
    """The per-k prefill curve: x = prefilled tokens k, y = ``measure`` (what the figure measured:
    non-refusal or, with a harm judge, attack success), one line per stage with Wilson bands.

    ``rows`` are ``sections.prefill_rows`` (one per k). Empty string when nothing was measured.
    """
    with matplotlib.rc_context(_RC):
        return _to_svg(asr_curve_figure(rows, measure=measure, title=title, evaluate_only=evaluate_only))


def asr_curve_figure(rows: Sequence[StageRow], *, measure: str = "attack success rate",
                     title: str | None = None, evaluate_only: bool = False) -> Figure | None:
    """The Figure behind ``asr_curve_chart`` (None when nothing was measured)."""
    points = {stage: [(getattr(r, stage).k, getattr(r, stage)) for r in rows if getattr(r, stage) is not None]
              for stage in ("base", "tuned", "stress")}
    points = {s: sorted(p, key=lambda kv: kv[0]) for s, p in points.items() if p}
    if not points:
        return None
    ks = sorted({k for p in points.values() for k, _ in p})
    with matplotlib.rc_context(_RC):
        fig = _figure(5.6, 2.7)
        ax = fig.add_subplot()
        for stage, pts in points.items():
            name, colour = legend_label(stage, evaluate_only), STAGE_COLOUR[stage]
            xs = [k for k, _ in pts]
            recs = [m for _, m in pts]
            ax.fill_between(xs, [m.ci_low for m in recs], [m.ci_high for m in recs], color=colour, alpha=0.15,
                            linewidth=0)
            ax.plot(xs, [m.value for m in recs], color=colour, marker="o", markersize=3.5, linewidth=1.4,
                    label=name)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlim(min(ks) - 1 if len(ks) == 1 else min(ks) - (max(ks) - min(ks)) * 0.04,
                    max(ks) + 1 if len(ks) == 1 else max(ks) + (max(ks) - min(ks)) * 0.04)
        ax.set_ylim(0, 1.04)  # a line at 100% stays visible above the frame
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_xlabel("prefilled tokens k")
        ax.set_ylabel(measure)
        ax.set_title(title or f"Prefilling attack: {measure} by k", fontsize=9, loc="left")
        ax.grid(color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        _legend_below(fig, ax)
        return fig


def data_uri(svg: str) -> str:
    """An SVG as a ``data:`` URI for an ``<img src>``; the pack's fetcher serves these and nothing remote."""
    if not svg:
        return ""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
