"""Charts for the packs, drawn with matplotlib as deterministic SVG text.

We use the object-oriented API (``Figure`` with the SVG canvas) rather than
pyplot, so nothing here touches matplotlib's global backend or figure registry
and no display is needed (Agg would only matter for raster output). Determinism
matters because a pack is an artifact with a digest: the same records must give the same
bytes, so ids are salted with a constant, sizes are fixed and no date is written.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from assurance.report.view import CategoryRow

# Sober, colour-blind-safe pair (Okabe-Ito) plus a neutral for the stress stage.
STAGE_STYLE = {
    "base": ("Base model", "#999999"),
    "tuned": ("Safety-tuned", "#0072B2"),
    "stress": ("After benign stress tune", "#E69F00"),
}
THRESHOLD_COLOUR = "#D55E00"

_RC = {
    "svg.hashsalt": "assurance-pack",  # fixed ids instead of random ones
    "svg.fonttype": "path",  # text as paths: no font lookup when the PDF is drawn
    "font.family": "DejaVu Sans",  # ships with matplotlib, so the same everywhere
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    FigureCanvasSVG(fig)
    # metadata Date=None drops the timestamp matplotlib would otherwise embed.
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches=None)
    return buf.getvalue()


def rate_chart(rows: Sequence[CategoryRow], *, title: str, lower_is_better: bool = False) -> str:
    """Grouped horizontal bars of a rate per category by stage, with Wilson 95% error bars.

    The policy threshold is drawn as a tick mark on each category (categories may
    have different thresholds). Returns SVG text; empty string when there is nothing to draw.
    """
    rows = [r for r in rows if r.base or r.tuned or r.stress]
    if not rows:
        return ""
    stages = [s for s in ("base", "tuned", "stress") if any(getattr(r, s) for r in rows)]
    height = 0.9 + 0.28 * len(rows) * len(stages)
    bar_h = 0.8 / len(stages)

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.4, height), dpi=72)
        ax = fig.add_axes((0.24, 0.9 / height * 0.75, 0.72, 1 - 0.9 / height))
        labels = [r.category for r in rows]
        # Top-to-bottom in table order: matplotlib draws y=0 at the bottom.
        ys = list(range(len(rows)))[::-1]
        for k, stage in enumerate(stages):
            name, colour = STAGE_STYLE[stage]
            vals, lo, hi, pos = [], [], [], []
            for y, row in zip(ys, rows):
                rec = getattr(row, stage)
                if rec is None:
                    continue
                vals.append(rec.value)
                lo.append(max(rec.value - rec.ci_low, 0.0))
                hi.append(max(rec.ci_high - rec.value, 0.0))
                pos.append(y + 0.4 - bar_h * (k + 0.5))
            ax.barh(pos, vals, height=bar_h * 0.9, color=colour, label=name,
                    xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        for y, row in zip(ys, rows):
            if row.threshold is not None:
                ax.plot([row.threshold, row.threshold], [y - 0.45, y + 0.45],
                        color=THRESHOLD_COLOUR, linewidth=1.6, linestyle="--")
        ax.plot([], [], color=THRESHOLD_COLOUR, linewidth=1.6, linestyle="--",
                label="Policy maximum" if lower_is_better else "Policy minimum")
        ax.set_yticks(ys, labels)
        ax.set_xlim(0, 1.0)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0], ["0%", "20%", "40%", "60%", "80%", "100%"])
        ax.set_title(title, fontsize=9, loc="left")
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.12), ncol=len(stages) + 1,
                  frameon=False, fontsize=7)
        return _to_svg(fig)


def loss_chart(curve: Sequence[tuple[int, float]]) -> str:
    """A small line chart of training loss by optimizer step; empty string without points."""
    if not curve:
        return ""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(4.2, 1.8), dpi=72)
        ax = fig.add_axes((0.14, 0.24, 0.82, 0.66))
        ax.plot([p[0] for p in curve], [p[1] for p in curve], color=STAGE_STYLE["tuned"][1], linewidth=1.2)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.grid(color="#dddddd", linewidth=0.5)
        ax.set_title("Training loss (safety fine-tune)", fontsize=8, loc="left")
        return _to_svg(fig)


def data_uri(svg: str) -> str:
    """An SVG as a ``data:`` URI for an ``<img src>``; the pack's fetcher serves these and nothing remote."""
    if not svg:
        return ""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
