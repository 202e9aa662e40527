"""The demo's comparison tables: written from the demo's own results file, into the run home and the README.

``python -m assurance.demo_report RESULTS.json [--readme README.md]`` prints the
Markdown and, with ``--readme``, rewrites the section between the demo-table
markers, so the README's figures are the demo's output, never copied by hand.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _cell(arm: dict, key: str, per_seed: bool = True) -> str:
    """Mean across seeds [t-interval], min–max, and (``per_seed``) each seed's value with its Wilson interval."""
    s = arm["summary"][key]
    head = f"**{_pct(s['mean'])}** [{_pct(s['t_low'])}, {_pct(s['t_high'])}], range {_pct(s['min'])}–{_pct(s['max'])}"
    if not per_seed:
        return head
    seeds = "; ".join(f"{_pct(r[key]['value'])} ({_pct(r[key]['ci_low'])}–{_pct(r[key]['ci_high'])})"
                      for r in arm["per_seed"])
    return f"{head}<br><sub>per seed: {seeds}</sub>"


def _table(arms: list[dict], keys: list[tuple[str, str]], per_seed: bool = True) -> list[str]:
    lines = ["| recipe | " + " | ".join(label for _, label in keys) + " |",
             "|---|" + "---|" * len(keys)]
    lines += [f"| {a['recipe']} | " + " | ".join(_cell(a, k, per_seed) for k, _ in keys) + " |" for a in arms]
    return lines


def _start_row(start: dict, keys: list[tuple[str, str]]) -> str:
    cells = [f"{_pct(start[k]['value'])} ({_pct(start[k]['ci_low'])}–{_pct(start[k]['ci_high'])})"
             if start.get(k) else "—" for k, _ in keys]
    return "| aligned start (no further tuning) | " + " | ".join(cells) + " |"


def _direction(arms: list[dict], key: str, better_low: bool) -> str:
    """What the seeds show, in words: a difference only when the t-intervals do not overlap."""
    a, b = arms
    sa, sb = a["summary"][key], b["summary"][key]
    if sa["t_high"] < sb["t_low"] or sb["t_high"] < sa["t_low"]:
        lower = a if sa["mean"] < sb["mean"] else b
        winner = lower if better_low else (b if lower is a else a)
        return f"{winner['recipe']} is better, and the seeds' intervals do not overlap"
    return "no difference the seeds can show (the intervals overlap)"


def _per_seed_wins(arms: list[dict], key: str) -> str:
    """In how many seeds the second recipe scored above the first (paired by seed)."""
    a, b = arms
    wins = sum(y[key]["value"] > x[key]["value"] for x, y in zip(a["per_seed"], b["per_seed"], strict=True))
    return f"{b['recipe']} above {a['recipe']} in {wins} of {len(a['per_seed'])} seeds"


def markdown(results: dict, per_seed: bool = True) -> str:
    """The two comparisons as Markdown, with the settings and what the seeds do and do not show
    (``per_seed`` False leaves out each seed's figures: the terminal is narrow; the file keeps them)."""
    s, ks = results["settings"], results["ks"]
    safety, down = results["comparisons"]["safety_tune"], results["comparisons"]["downstream"]
    ka = [("harmful_refused", "harmful refused")] + [(f"asr_k{k}", f"non-refusal, prefill k={k}") for k in ks] \
        + [("benign_refused", "benign refused")]
    kb = [("harmful_refused", "harmful refused"), ("benign_refused", "benign refused")]
    out = [
        f"Model `{s['model']}`, {len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}), "
        f"judge `{results['judge']}`, "
        f"reduced battery: {s['limit_per_category']} items per category, {s['max_new_tokens']} new tokens. "
        "Each cell: **mean over seeds** [95% t-interval over seeds], range over seeds; per seed the rate with its "
        "Wilson 95% interval. Non-refusal under prefill is what the refusal judge saw (no harm judge in the demo).",
        "",
        f"**(a) Safety tune of the aligned model**: plain SFT against deep-alignment, {s['safety_steps']} steps, "
        f"lr {s['safety_lr']}, batch {s['batch_size']}, the same data pool for both.",
        "",
        *_table(safety, ka, per_seed), _start_row(results["starting_model"], ka),
        "",
        f"Non-refusal at k={ks[-1] if ks else '?'}: {_direction(safety, f'asr_k{ks[-1]}', True) if ks else '—'}; "
        f"harmful refused: {_direction(safety, 'harmful_refused', False)}.",
        "",
        f"**(b) Downstream fine-tune of the aligned model** on `{s['task_data']}`: plain SFT against the constrained "
        f"objective (reference: the aligned starting model), {s['task_steps']} steps, lr {s['task_lr']}, "
        f"batch {s['batch_size']}.",
        "",
        *_table(down, kb, per_seed), _start_row(results["starting_model"], kb),
        "",
        f"Harmful refused after the downstream fine-tune: {_direction(down, 'harmful_refused', False)}; "
        f"{_per_seed_wins(down, 'harmful_refused')}.",
        "",
        f"Measured in {results['wall_seconds']:.0f} s on {results.get('machine', 'this machine')}; "
        "figures vary across CPUs (float rounding changes the tiny model's greedy text) and, as the ranges show, "
        "across seeds.",
    ]
    return "\n".join(out) + "\n"


def rewrite_readme(readme: Path, table: str) -> None:
    """Replace what lies between the demo-table markers with ``table``; the markers must be there."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: no {START} ... {END} markers")
    readme.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="demo-results.json written by `assure demo`")
    ap.add_argument("--readme", type=Path, help="rewrite this README's demo table section")
    args = ap.parse_args(argv)
    table = markdown(json.loads(args.results.read_text(encoding="utf-8")))
    if args.readme:
        rewrite_readme(args.readme, table)
    print(table, end="")


if __name__ == "__main__":
    main()
