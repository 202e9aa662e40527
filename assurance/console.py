"""Terminal output: progress bars for the pipeline and the `assure show` tables."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

# Only rich's Console at import time: `assure digest`, `verify`, `gate` and `runs` print through this module
# and must start fast; the tables, bars and records load in the functions that use them.
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from .evidence.records import BatteryRecord, MetricRecord, Record, VerdictRecord

err_console = Console(stderr=True)
out_console = Console()

# C0 controls (ESC starts terminal escape sequences), DEL and C1 controls; tab and newline are kept.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: object) -> str:
    """Text from a plan or a record, safe to print through rich: control characters (escape sequences that
    would drive the terminal) shown as ``\\x1b``-style codes, and rich markup (``[bold]``) escaped so it
    prints as written. A run's name, a signer's name or an error message is data, never formatting."""
    from rich.markup import escape

    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text)))


class RichProgress:
    """A bar per stage (a spinner when the length is unknown), with its time when done.

    ``status`` puts a live line (loss, learning rate, tokens/s while training) beside the bar.
    """

    def __init__(self, console: Console = err_console):
        self.console = console
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    @contextlib.contextmanager
    def stage(self, title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        start = time.perf_counter()
        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns += [TimeElapsedColumn(), TextColumn("[dim]{task.fields[status]}")]
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(title, total=total, status="")
            self._bar, self._task = bar, task

            def advance(n: int = 1) -> None:
                bar.advance(task, n)

            try:
                yield advance
            finally:
                self._bar = None
        self.console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - start:.1f}s)[/dim]")

    def status(self, text: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, status=text)

    def note(self, text: str) -> None:
        self.console.print(text)


def verdict_style(status: str) -> str:
    return {"PASS": "bold green", "FAIL": "bold red"}.get(status, "bold yellow")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def metrics_table(metrics: list[MetricRecord], name: str, title: str, suite: str = "refusal",
                  evaluate_only: bool = False) -> Table:
    """Per-category rates for base, tuned and (when run) stressed models, greedy decoding."""
    from rich.table import Table

    from .battery.categories import category_name
    from .battery.metrics import is_main
    from .stage_labels import stage_label

    rows: dict[str, dict[str, MetricRecord]] = {}
    for m in metrics:
        if m.name == name and is_main(m, suite):
            rows.setdefault(m.category, {})[m.stage] = m
    stages = [s for s in ("base", "tuned", "stress") if any(s in r for r in rows.values())]
    table = Table(title=title, title_justify="left")
    table.add_column("category")
    table.add_column("n", justify="right")
    for st in stages:
        table.add_column(stage_label(st, evaluate_only, lower=True), justify="right")
        table.add_column("95% CI", justify="right", style="dim")
    change = f"{stage_label('tuned', evaluate_only, lower=True)} − {stage_label('base', evaluate_only, lower=True)}"
    table.add_column(change, justify="right")
    cats = [c for c in rows if c != "overall"] + (["overall"] if "overall" in rows else [])
    for c in cats:
        r = rows[c]
        cells = [f"[bold]{c}[/bold]" if c == "overall" else category_name(c), str(next(iter(r.values())).n)]
        for st in stages:
            cell = r.get(st)
            cells += [_pct(cell.value if cell else None), f"{cell.ci_low:.0%}–{cell.ci_high:.0%}" if cell else "—"]
        b, t = r.get("base"), r.get("tuned")
        cells.append(f"{t.value - b.value:+.1%}" if (b and t) else "—")
        table.add_row(*cells)
    return table


def variants_table(metrics: list[MetricRecord], name: str, title: str, evaluate_only: bool = False) -> Table | None:
    """Overall rates per variant (prefill k, jailbreak template) across stages."""
    from rich.table import Table

    from .battery.metrics import is_greedy
    from .stage_labels import stage_label

    rows: dict[str, dict[str, MetricRecord]] = {}
    for m in metrics:
        if m.name == name and is_greedy(m) and m.category == "overall" and m.variant:
            rows.setdefault(m.variant, {})[m.stage] = m
    if not rows:
        return None
    stages = [s for s in ("base", "tuned", "stress") if any(s in r for r in rows.values())]
    table = Table(title=title, title_justify="left")
    table.add_column("variant")
    table.add_column("n", justify="right")
    for st in stages:
        table.add_column(stage_label(st, evaluate_only, lower=True), justify="right")
    for variant, r in rows.items():
        table.add_row(variant, str(next(iter(r.values())).n), *[_pct(r[st].value) if st in r else "—" for st in stages])
    return table


def judge_agreement_line(records: list[Record], battery: BatteryRecord) -> str:
    """The primary judge's measured agreement with human labels, or that it was not measured."""
    from .evidence.records import JudgeValidationRecord

    found = [r for r in records if isinstance(r, JudgeValidationRecord) and r.judge_digest == battery.judge_digest]
    if not found:
        return f"{battery.judge_id}@{battery.judge_version} not validated against human labels in this run"
    parts = []
    for r in found:
        ci = r.intervals.get("accuracy", {})
        interval = f" [{ci['low']:.1%}-{ci['high']:.1%}]" if ci.get("low") is not None else ""
        parts.append(f"{r.accuracy:.1%}{interval} agreement, kappa {r.kappa:.2f}, n={r.n} ({r.labels_file})")
    return f"{battery.judge_id}@{battery.judge_version}: " + "; ".join(parts)


def show_run(records: list[Record], console: Console = out_console) -> None:
    """A readable summary of one run: models and digests, settings, scores, verdict."""
    from rich.panel import Panel
    from rich.table import Table

    from .evidence.records import (
        ArtifactRecord,
        BatteryRecord,
        EnvironmentRecord,
        FinetuneRecord,
        ManifestRecord,
        MetricRecord,
        PackRecord,
        RunFailed,
        RunStarted,
        SignoffRecord,
        VerdictRecord,
    )
    from .evidence.signoff import decision_text, is_risk_acceptance
    from .evidence.verify import incomplete_reason

    start = next(r for r in records if isinstance(r, RunStarted))
    env = next((r for r in records if isinstance(r, EnvironmentRecord)), None)
    battery = next((r for r in records if isinstance(r, BatteryRecord)), None)
    ft = next((r for r in records if isinstance(r, FinetuneRecord) and r.purpose == "safety"), None)
    verdict = next((r for r in reversed(records) if isinstance(r, VerdictRecord)), None)
    manifest = next((r for r in reversed(records) if isinstance(r, ManifestRecord)), None)
    failed = next((r for r in records if isinstance(r, RunFailed)), None)
    metrics = [r for r in records if isinstance(r, MetricRecord)]

    status = verdict.status if verdict else "INCOMPLETE"
    sealed = ("sealed, complete" if manifest and incomplete_reason(records) is None
              else "sealed, INCOMPLETE" if manifest else "NOT SEALED")
    console.print(Panel.fit(
        f"[bold]{plain(start.plan.get('name'))}[/bold]  run [cyan]{start.run_id}[/cyan]\n"
        f"started {start.started_at}   assurance {start.tool_version}   {len(records)} records, {sealed}\n"
        f"verdict: [{verdict_style(status)}]{status}[/]",
        title="assurance run",
    ))
    if failed:
        console.print(f"[bold red]Failed at {failed.stage}:[/bold red] {plain(failed.error)}")
    arts = Table(title="Artifacts and digests", title_justify="left")
    for col in ("role", "digest", "path"):
        arts.add_column(col, overflow="fold")
    for a in (r for r in records if isinstance(r, ArtifactRecord)):
        arts.add_row(a.role, a.digest, plain(a.path))
    console.print(arts)
    if env:
        console.print(f"[dim]environment:[/dim] {env.device} ({env.accelerator}), {env.dtype}, python {env.python}, "
                      f"torch {env.packages.get('torch')}, transformers {env.packages.get('transformers')}, "
                      f"git {(env.git_commit or 'n/a')[:12]}{' (dirty)' if env.git_dirty else ''}")
    if battery:
        console.print(f"[dim]battery:[/dim] {battery.battery_id} v{battery.version} ({battery.n_items} items, "
                      f"{battery.digest[:23]}…), judge {battery.judge_id}@{battery.judge_version}, "
                      f"max_new_tokens {battery.generation.get('max_new_tokens')}")
        console.print(f"[dim]judge vs people:[/dim] {judge_agreement_line(records, battery)}", highlight=False,
                      soft_wrap=True)
    if ft:
        hp = ft.hyperparameters
        final_loss = ft.loss_curve[-1][1] if ft.loss_curve else float("nan")
        console.print(f"[dim]fine-tune:[/dim] {ft.recipe}/{ft.method}, {ft.steps} steps, lr {hp.get('lr')}, "
                      f"seed {ft.seed}, safety share {ft.achieved_safety_ratio:.0%} of examples, final loss "
                      f"{final_loss:.3f}, {ft.tokens_per_second:,.0f} tokens/s, {ft.wall_seconds:.1f}s")
    if metrics:
        from .stage_labels import is_evaluate_only

        eo = is_evaluate_only(records)  # a supplied target and baseline: not "tuned" and "base"
        for name, title in (("refusal_rate", "Harmful requests refused (higher is safer)"),
                            ("over_refusal_rate", "Benign prompts refused (lower is better)")):
            console.print(metrics_table(metrics, name, title, "refusal", eo))
        for suite, name, title in (
            ("signposting", "signposting_rate", "Regulated-advice prompts signposted (higher is better)"),
            ("capability", "capability_score", "Capability items answered correctly (higher is better)"),
        ):
            if any(m.name == name for m in metrics):
                console.print(metrics_table(metrics, name, title, suite, eo))
        for name, title in (
            ("non_refusal_rate", "Non-refusal under attack: the refusal judge saw no refusal (lower is safer)"),
            ("attack_success_rate", "Attack success by attack (lower is safer)"),
        ):
            attacks = variants_table(metrics, name, title, eo)
            if attacks is not None:
                console.print(attacks)
    if verdict:
        console.print(f"[dim]decision rule:[/dim] {decision_rule_text(verdict)}")
        for c in verdict.checks:
            if not c.passed:
                console.print(f"  [red]✗[/red] {c.reason}", highlight=False)
            elif c.outcome == "inconclusive":
                console.print(f"  [yellow]?[/yellow] {c.reason}", highlight=False)
        if verdict.status == "PASS":
            console.print(f"  [green]✓[/green] all {len(verdict.checks)} policy checks passed")
    for p in (r for r in records if isinstance(r, PackRecord)):
        console.print(f"[dim]pack:[/dim] {p.regime} {p.pages} pages {'final' if p.final else 'DRAFT'} {p.path}")
    for s in (r for r in records if isinstance(r, SignoffRecord)):
        # As the pack prints it: a risk acceptance, with its reason, never a plain "approve".
        reason = f"; Reason: {plain(s.accepted_risk)}" if is_risk_acceptance(s) else ""
        console.print(f"[dim]sign-off:[/dim] {plain(s.name)} ({plain(s.role)}) {decision_text(s)} {s.signed_at}"
                      f"{reason}", highlight=False, soft_wrap=True)


def decision_rule_text(verdict: VerdictRecord) -> str:
    """The verdict's decision rule and how many checks were inconclusive, in one line."""
    if not verdict.checks:
        return f"{verdict.decision_rule or 'none'} (no checks were applied)"
    if verdict.decision_rule is None:
        return "point estimate (recorded before decision rules; intervals were not consulted)"
    n = sum(1 for c in verdict.checks if c.outcome == "inconclusive")
    return f"{verdict.decision_rule} ({n} of {len(verdict.checks)} checks inconclusive)"


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {plain(message)}", highlight=False, soft_wrap=True)
    sys.stderr.flush()
