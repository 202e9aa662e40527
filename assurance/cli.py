"""The `assure` command line. Each command is a typed function; the evidence commands (verify, gate,
signoff, keygen, attest, export) live in ``cli_evidence.py`` and are registered here.

Exit codes (documented in the README):
  run / demo / gate: 0 PASS, 1 FAIL, 2 bad input or usage, 3 error (run incomplete)
  gate:              4 awaiting approval (policy.require_signoff roles have not all approved)
  verify:            0 intact, 1 findings, 2 usage
  signoff:           0 signed and recorded, 2 refused (nothing recorded)
  render:            0 rendered and sealed, 2 usage (unsealed run, missing or other --sign-key; nothing written)
  any command:       2 bad input (one line naming the file, field or path), 3 internal error (one line;
                     ASSURE_DEBUG=1 shows the traceback)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub look-ups, ever: models are local
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer

# Only light modules at the top: `digest`, `verify`, `gate`, `show` and `runs` must start without torch,
# transformers or WeasyPrint (tests/test_fast_imports.py); each command imports what it needs.
from .cli_common import REGIME_HELP, DbOpt, JsonOpt, QuietOpt, open_run, open_store
from .cli_evidence import EVIDENCE_COMMANDS
from .cli_judge import judge_app
from .cli_profile import profile_app
from .console import err_console, fail, out_console, plain
from .distributed import launched
from .exit_codes import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, EXIT_USAGE
from .regimes import Regime

app = typer.Typer(
    help="assurance: auditable safety fine-tuning, evidence ledgers and UK assurance packs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(judge_app, name="judge")
app.add_typer(profile_app, name="profile")


def _input_errors() -> tuple[type[BaseException], ...]:
    from .battery.items import BatteryError
    from .evidence.store import StoreError
    from .finetune.chat_data import DataError
    from .models.loading import ModelLoadError
    from .plan import PlanError

    return (PlanError, DataError, ModelLoadError, BatteryError, StoreError)


def _execute(work, *, quiet: bool, as_json: bool, story: bool = False, resumed: bool = False) -> int:
    """Run ``work(progress) -> (result, comparison)`` and report the finished run the same way for
    ``run``, ``run --resume`` and ``demo``; bad input is exit 2 with nothing written."""
    from .console import RichProgress, show_run, verdict_style
    from .evidence.store import Store
    from .inputs import SilentProgress

    start = time.perf_counter()
    follower = not launched().main  # under torchrun only rank 0 reports; every rank exits with its run's code
    if follower:
        _quiet_libraries()
    progress = SilentProgress() if (quiet or as_json or follower) else RichProgress()
    try:
        result, comparison = work(progress)
    except _input_errors() as err:
        if not follower:
            fail(str(err))
        return EXIT_USAGE
    wall = time.perf_counter() - start
    if follower:
        return result.exit_code
    runs = (comparison or {}).get("runs") or []  # the demo's several runs
    if as_json:
        out = {
            "run_id": result.run_id, "status": result.status, "exit_code": result.exit_code,
            "reasons": result.reasons, "error": result.error, "store": result.store_url,
            "packs": {k: str(v) for k, v in result.packs.items()}, "wall_seconds": round(wall, 1),
            "resumed": resumed,
        }
        out_console.print_json(json.dumps({**out, "runs": [f.as_json() for f in runs]} if runs else out))
        return result.exit_code
    if quiet:
        print(f"{result.status} {result.run_id}")
        return result.exit_code
    if story:
        from .demo import tell_story

        tell_story(result, out_console, comparison)
    show_run(Store(result.store_url).records(result.run_id), out_console)
    if result.error:
        err_console.print(f"[bold red]Run incomplete:[/bold red] {result.error}")
    code_note = (f"as a gate this run would exit {result.exit_code}; the demo exits 0 when its runs complete"
                 if story else f"exit code {result.exit_code}" + (", resumed" if resumed else ""))
    out_console.print(f"\n[bold]Verdict:[/bold] [{verdict_style(result.status)}]{result.status}[/]  "
                      f"({code_note}; {wall:.0f}s)")
    out_console.print(f"[bold]Evidence store:[/bold] {result.store_url}")
    for regime, path in ({} if runs else result.packs).items():  # the demo's story listed every run's packs
        out_console.print(f"[bold]{regime.upper()} pack:[/bold] {path}")
    out_console.print(f"Check it offline: [cyan]assure verify {result.run_id}[/cyan]")
    return result.exit_code


def _quiet_libraries() -> None:
    """Ranks other than 0 print nothing: not transformers' loading bars, nor the warnings rank 0 already shows."""
    import warnings

    from transformers.utils import logging as hf_logging  # the follower is about to load a model anyway

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.simplefilter("ignore")


DryRunOpt = typer.Option(False, "--dry-run", help="Check the plan, list the stages with their sizes and "
                         "estimate peak memory (FITS / TIGHT / WILL NOT FIT); loads no weights, writes nothing.")


ProcessesOpt = typer.Option(None, "--processes", min=1, metavar="N",
                            help="With --dry-run: estimate one process's memory in a run launched with N processes "
                                 "(torchrun --nproc_per_node N); default: the launcher's WORLD_SIZE, else 1.")


def _dry_run(plan, as_json: bool, processes: int | None) -> None:
    """``--dry-run``: exit 0 with the report, 2 on bad input; no run folder, no ledger row."""
    from .dryrun import dry_run_report, print_report

    try:
        report = dry_run_report(plan, processes=processes)
    except _input_errors() as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    print_report(report, as_json=as_json)
    raise typer.Exit(EXIT_PASS)


@app.command()
def run(
    plan_file: Path | None = typer.Argument(None, help="The run plan (YAML); optional with --resume."),
    db: str | None = DbOpt,
    sign_key: Path | None = typer.Option(None, "--sign-key", help="Ed25519 private key (PEM) to sign the manifest."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_ID",
        help="Continue a killed (never sealed) run, by id or unique prefix, from its recorded plan: stages already "
             "in the ledger are skipped, an interrupted fine-tune restarts from its latest checkpoint. A PLAN given "
             "too must be the recorded plan. Exit 2, nothing appended, if the run is sealed or its inputs changed."),
    dry_run: bool = DryRunOpt,
    processes: int | None = ProcessesOpt,
) -> None:
    """Run the plan: provenance, evaluate, safety fine-tune, evaluate, verdict, seal, packs."""
    _processes_need_dry_run(processes, dry_run)
    plan = _checked_plan(plan_file, sign_key, evaluate_only=False)
    if dry_run:
        if plan is None:
            fail("--dry-run needs a plan file (assure run PLAN --dry-run)")
            raise typer.Exit(EXIT_USAGE)
        _dry_run(plan, as_json, processes)
    if resume is not None:
        from .resume import resume_pipeline

        if launched().world > 1:
            fail("--resume runs in one process: continue the run without torchrun or accelerate launch "
                 "(its fine-tune restarts from the checkpoint rank 0 saved)")
            raise typer.Exit(EXIT_USAGE)

        def resume_work(progress):
            return resume_pipeline(resume, plan=plan, plan_path=plan_file, store_url=db, progress=progress,
                                   sign_key=sign_key), None

        raise typer.Exit(_execute(resume_work, quiet=quiet, as_json=as_json, resumed=True))
    if plan is None:
        fail("give a plan file (assure run PLAN), or a run to continue (assure run --resume RUN_ID)")
        raise typer.Exit(EXIT_USAGE)

    raise typer.Exit(_execute(_pipeline_work(plan, plan_file, db, sign_key), quiet=quiet, as_json=as_json))


@app.command()
def evaluate(
    plan_file: Path = typer.Argument(..., help="The run plan (YAML); its finetune section is not run."),
    db: str | None = DbOpt,
    sign_key: Path | None = typer.Option(None, "--sign-key", help="Ed25519 private key (PEM) to sign the manifest."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
    dry_run: bool = DryRunOpt,
    processes: int | None = ProcessesOpt,
) -> None:
    """Evaluate and gate a supplied model without fine-tuning it: the plan's `target` (a model folder, a base
    model with a PEFT adapter, or an OpenAI-compatible endpoint; default: `model`), and its `baseline` if any.
    Same plan, ledger, verdict, packs and exit codes as `run` (0 PASS, 1 FAIL, 2 bad input, 3 error)."""
    _processes_need_dry_run(processes, dry_run)
    plan = _checked_plan(plan_file, sign_key, evaluate_only=True)
    if dry_run:
        _dry_run(plan, as_json, processes)
    raise typer.Exit(_execute(_pipeline_work(plan, plan_file, db, sign_key), quiet=quiet, as_json=as_json))


def _processes_need_dry_run(processes: int | None, dry_run: bool) -> None:
    if processes is not None and not dry_run:
        fail("--processes only goes with --dry-run: a real run's processes are the launcher's "
             "(torchrun --nproc_per_node N -m assurance.cli run PLAN)")
        raise typer.Exit(EXIT_USAGE)


def _checked_plan(plan_file: Path | None, sign_key: Path | None, *, evaluate_only: bool):
    """The plan (None without a file) and the signing key, both checked before anything is written: exit 2
    with one line otherwise."""
    from .evidence.seal import SigningKeyError, check_signing_key
    from .plan import PlanError, load_plan

    try:
        plan = load_plan(plan_file, evaluate_only=evaluate_only) if plan_file is not None else None
        if sign_key is not None:
            check_signing_key(sign_key)
    except (PlanError, SigningKeyError) as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    return plan


def _pipeline_work(plan, plan_file: Path | None, db: str | None, sign_key: Path | None):
    """What ``_execute`` runs for a new run of ``plan``."""

    def work(progress):
        from .pipeline import run_pipeline

        return run_pipeline(plan, store_url=db, plan_path=plan_file, progress=progress, sign_key=sign_key), None

    return work


@app.command()
def demo(db: str | None = DbOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """The whole story on the built-in tiny models and data, no downloads: a firm's downstream fine-tune
    through the pipeline three times (a fictional bank's profile and its FCA pack, a fictional NHS trust's and
    its NHS pack, no profile and all three packs), then the papers' two comparisons over seeds (written to
    demo-results.json/.md).

    Exits 0 when its runs complete, whatever their verdicts (the verdict is part of the story;
    use `assure run` to gate), and 3 when it fails.
    """
    from .demo import run_demo

    def work(progress):
        return run_demo(progress, store_url=db)

    code = _execute(work, quiet=quiet, as_json=as_json, story=True)
    raise typer.Exit(EXIT_PASS if code in (EXIT_PASS, EXIT_FAIL) else code)


@app.command()
def show(
    run_id: str | None = typer.Argument(None, help="Run id or unique prefix (default: latest)."),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A readable summary of a run: models and digests, settings, scores before and after, verdict."""
    from .console import show_run

    store, rid = open_run(db, run_id)
    records = store.records(rid)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records if r.kind != "sample"], indent=1))
        return
    show_run(records, out_console)


@app.command()
def runs(db: str | None = DbOpt) -> None:
    """List the runs in the evidence store, oldest first."""
    from rich.table import Table

    from .evidence.records import RunStarted, VerdictRecord

    store = open_store(db)
    table = Table(title="Runs, oldest first")
    table.add_column("run id", no_wrap=True, style="cyan")
    table.add_column("name")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for rid in store.run_ids():
        recs = store.records(rid, kinds=("run_started", "verdict"))
        started = recs[0]
        assert isinstance(started, RunStarted), "the ledger opens every run with its run_started record"
        verdicts = [r for r in recs if isinstance(r, VerdictRecord)]
        table.add_row(rid, plain(started.plan.get("name", "")), started.started_at[:19].replace("T", " "),
                      verdicts[-1].status if verdicts else "unsealed")
    out_console.print(table)


@app.command()
def render(
    run_id: str = typer.Argument(..., help="Run id or unique prefix."),
    regime: Regime = typer.Option(..., "--regime", help=REGIME_HELP),
    out: Path | None = typer.Option(None, "--out", help="Folder for the PDF (default: the run's packs folder)."),
    db: str | None = DbOpt,
    sign_key: Path | None = typer.Option(
        None, "--sign-key", help="Ed25519 private key (PEM) to sign the new packs seal; required, and must be the "
                                 "same key, when the run's seals are signed (exit 2, nothing written, otherwise)."),
    no_redact: bool = typer.Option(False, "--no-redact", help="Show model outputs in full (default: redacted)."),
    profile: Path | None = typer.Option(
        None, "--profile", help="Record this organisation profile (YAML) for the run first, so its packs carry the "
                                "organisation's part without re-running; checked as `assure profile check` does "
                                "(exit 2, nothing recorded, when it is not valid)."),
) -> None:
    """Re-render a pack from the evidence store alone, as a new version, then seal the packs again; no model
    needed."""
    from .evidence.seal import SigningKeyError, key_for_run
    from .evidence.store import runs_home
    from .pipeline import render_packs
    from .profile_file import ProfileError, load_profile

    store, rid = open_run(db, run_id)
    seals = store.records(rid, kinds=["manifest"])
    try:
        problem = (f"run {rid} was never sealed; `assure run --resume {rid}` finishes it" if not seals
                   else key_for_run(seals, sign_key))
    except SigningKeyError as err:
        problem = str(err)
    if problem:
        fail(problem)
        raise typer.Exit(EXIT_USAGE)
    if profile is not None:
        try:
            loaded = load_profile(profile)
        except ProfileError as err:
            fail(str(err))
            raise typer.Exit(EXIT_USAGE) from None
        store.append(rid, loaded.records("render"))
    path = render_packs(store, rid, [regime], out or runs_home() / rid / "packs",
                        redact=False if no_redact else None, key_path=sign_key)[regime]
    print(path)


@app.command()
def digest(path: Path = typer.Argument(..., help="A file or a model folder."), as_json: bool = JsonOpt) -> None:
    """Print the SHA-256 digest of a file, or the directory digest of a folder (OpenSSF model-signing compatible)."""
    from .evidence.hashing import tree_digest

    if not path.exists():
        fail(f"{path}: no such file or folder")
        raise typer.Exit(EXIT_USAGE)
    d = tree_digest(path)
    if as_json:
        print(json.dumps({"path": str(path), "digest": d.digest, "is_dir": d.is_dir, "size_bytes": d.size_bytes,
                          "files": d.files}, indent=1))
    else:
        print(f"{d.digest}  {path}")


@app.command()
def schema(out: Path = typer.Option(Path("evidence/schema"), "--out", help="Folder for the JSON Schemas.")) -> None:
    """Write JSON Schemas of the plan and of every evidence record."""
    from .schemas import write_schemas

    for p in write_schemas(out):
        print(p)


for command in EVIDENCE_COMMANDS:  # registered after the run commands, so `assure --help` lists those first
    app.command()(command)


DEBUG_ENV = "ASSURE_DEBUG"
"""Set to 1 to let an unexpected exception through with its traceback (for developers)."""


def main() -> None:
    """The `assure` console script: the app, with any unexpected exception as one line and exit 3.

    A traceback ends a process with exit 1, which a pipeline reads as a FAIL verdict; an error in this tool
    is never a verdict. Usage errors and the commands' own exits (typer.Exit, SystemExit) and Ctrl-C pass
    through unchanged."""
    try:
        app()
    except Exception as err:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        message = " ".join(str(err).split()) or "(no message)"
        fail(f"internal error: {type(err).__name__}: {message}; please report it "
             f"({DEBUG_ENV}=1 shows the traceback)")
        raise SystemExit(EXIT_ERROR) from None


if __name__ == "__main__":  # pragma: no cover
    main()
