"""The `assure` command line. Each command is a typed function.

Exit codes (documented in the README):
  run / demo / gate: 0 PASS, 1 FAIL, 2 bad input or usage, 3 error (run incomplete)
  gate:              4 awaiting approval (policy.require_signoff roles have not all approved)
  verify:            0 intact, 1 findings, 2 usage
  signoff:           0 signed and recorded, 2 refused (nothing recorded)
  render:            0 rendered and sealed, 2 usage (unsealed run, missing or other --sign-key; nothing written)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub look-ups, ever: models are local
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer

# Only light modules at the top: `digest`, `verify`, `gate`, `show` and `runs` must start without torch,
# transformers or WeasyPrint (tests/test_fast_imports.py); each command imports what it needs.
from .cli_judge import judge_app
from .cli_profile import profile_app
from .console import err_console, fail, out_console
from .exit_codes import EXIT_FAIL, EXIT_PASS, EXIT_USAGE
from .regimes import REGIMES, Regime

if TYPE_CHECKING:
    from .evidence.store import Store

app = typer.Typer(
    help="assurance: auditable safety fine-tuning, evidence ledgers and UK assurance packs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(judge_app, name="judge")
app.add_typer(profile_app, name="profile")

DbOpt = typer.Option(None, "--db", help="Evidence store URL (default: $ASSURE_DB or sqlite:///assure-runs/evidence.db).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress output.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout.")
REGIME_HELP = " or ".join(REGIMES) + "."


def _input_errors() -> tuple[type[BaseException], ...]:
    from .battery.items import BatteryError
    from .evidence.store import StoreError
    from .finetune.chat_data import DataError
    from .models.loading import ModelLoadError
    from .plan import PlanError

    return (PlanError, DataError, ModelLoadError, BatteryError, StoreError)


def _open_store(db: str | None, *, must_exist: bool = True) -> Store:
    from .evidence.store import Store, StoreError

    try:
        return Store(db, create=not must_exist)
    except StoreError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None


def _open_run(db: str | None, run_id: str | None) -> tuple[Store, str]:
    """The store and the full run id for a prefix (latest when None); a usage error otherwise."""
    from .evidence.store import StoreError

    store = _open_store(db)
    try:
        return store, store.resolve(run_id)
    except StoreError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None


def _execute(work, *, quiet: bool, as_json: bool, story: bool = False, resumed: bool = False) -> int:
    """Run ``work(progress) -> (result, comparison)`` and report the finished run the same way for
    ``run``, ``run --resume`` and ``demo``; bad input is exit 2 with nothing written."""
    from .console import RichProgress, show_run, verdict_style
    from .evidence.store import Store
    from .inputs import SilentProgress

    start = time.perf_counter()
    progress = SilentProgress() if (quiet or as_json) else RichProgress()
    try:
        result, comparison = work(progress)
    except _input_errors() as err:
        fail(str(err))
        return EXIT_USAGE
    wall = time.perf_counter() - start
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
) -> None:
    """Run the plan: provenance, evaluate, safety fine-tune, evaluate, verdict, seal, packs."""
    from .plan import PlanError, load_plan

    plan = None
    if plan_file is not None:
        try:
            plan = load_plan(plan_file)
        except PlanError as err:
            fail(str(err))
            raise typer.Exit(EXIT_USAGE) from None
    if sign_key is not None:
        from .evidence.seal import SigningKeyError, check_signing_key

        try:
            check_signing_key(sign_key)
        except SigningKeyError as err:
            fail(str(err))
            raise typer.Exit(EXIT_USAGE) from None
    if resume is not None:
        from .resume import resume_pipeline

        def resume_work(progress):
            return resume_pipeline(resume, plan=plan, plan_path=plan_file, store_url=db, progress=progress,
                                   sign_key=sign_key), None

        raise typer.Exit(_execute(resume_work, quiet=quiet, as_json=as_json, resumed=True))
    if plan is None:
        fail("give a plan file (assure run PLAN), or a run to continue (assure run --resume RUN_ID)")
        raise typer.Exit(EXIT_USAGE)

    def work(progress):
        from .pipeline import run_pipeline

        return run_pipeline(plan, store_url=db, plan_path=plan_file, progress=progress, sign_key=sign_key), None

    raise typer.Exit(_execute(work, quiet=quiet, as_json=as_json))


@app.command()
def evaluate(
    plan_file: Path = typer.Argument(..., help="The run plan (YAML); its finetune section is not run."),
    db: str | None = DbOpt,
    sign_key: Path | None = typer.Option(None, "--sign-key", help="Ed25519 private key (PEM) to sign the manifest."),
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate and gate a supplied model without fine-tuning it: the plan's `target` (a model folder, a base
    model with a PEFT adapter, or an OpenAI-compatible endpoint; default: `model`), and its `baseline` if any.
    Same plan, ledger, verdict, packs and exit codes as `run` (0 PASS, 1 FAIL, 2 bad input, 3 error)."""
    from .plan import PlanError, load_plan

    try:
        plan = load_plan(plan_file, evaluate_only=True)
    except PlanError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    if sign_key is not None:
        from .evidence.seal import SigningKeyError, check_signing_key

        try:
            check_signing_key(sign_key)
        except SigningKeyError as err:
            fail(str(err))
            raise typer.Exit(EXIT_USAGE) from None

    def work(progress):
        from .pipeline import run_pipeline

        return run_pipeline(plan, store_url=db, plan_path=plan_file, progress=progress, sign_key=sign_key), None

    raise typer.Exit(_execute(work, quiet=quiet, as_json=as_json))


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
def verify(
    run_id: str | None = typer.Argument(None, help="Run id or unique prefix (default: latest)."),
    db: str | None = DbOpt,
    no_files: bool = typer.Option(False, "--no-files", help="Check the ledger only, not files on disk."),
    trusted_key: str | None = typer.Option(
        None, "--trusted-key", help="Base64 Ed25519 public key the manifest must be signed with."),
    signers: Path | None = typer.Option(None, "--signers", help="Signer roster (YAML): a sign-off by a key not on it, "
                                                                "or under another name or role, is an error."),
    against: Path | None = typer.Option(
        None, "--against", help="A pack PDF, attestation or signed sign-off statement holding a later ledger head: "
                                "report ledger rows missing (truncated) or differing."),
    require_signed: bool = typer.Option(
        False, "--require-signed", help="An unsigned seal is a finding (a stripped signature then fails)."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-check, offline, the hash chain of every record and the digest of every artifact still on disk.
    Given a pack PDF instead of a run, check the pack on its own, with no ledger (exit 2: no evidence in it)."""
    if run_id and run_id.lower().endswith(".pdf") and Path(run_id).is_file():
        _verify_pack(Path(run_id), trusted_key, as_json)
    from .evidence.verify import signing_line, verify_run

    roster = _roster(signers)
    store, rid = _open_run(db, run_id)
    report = verify_run(store, rid, check_files=not no_files, trusted_key=trusted_key, require_signed=require_signed)
    if roster is not None:
        from .evidence.signoff import roster_findings
        from .evidence.store import parse_payload

        rows = [(e, parse_payload(e.payload)) for e in store.entries(rid) if e.kind == "signoff"]
        report.findings += roster_findings(rows, roster)
    if against is not None:
        report.findings += _against(store, rid, against)
    if as_json:
        out_console.print_json(json.dumps({
            "run_id": rid, "ok": report.ok, "records": report.n_records, "complete": report.complete,
            "files_checked": report.files_checked, "signed": report.signed, "signer_key": report.signer_key,
            "key_trusted": report.key_trusted,
            "findings": [f.__dict__ for f in report.findings],
        }))
    else:
        for f in report.findings:
            print(f.line())
        print(signing_line(report))
        state = "complete" if report.complete else "INCOMPLETE"
        word = "INTACT" if report.ok else "FAILED"
        print(f"{word}: run {rid}: {report.n_records} records, chain checked, {report.files_checked} artifacts "
              f"re-hashed, run {state}")
    raise typer.Exit(0 if report.ok else 1)


def _verify_pack(path: Path, trusted_key: str | None, as_json: bool) -> None:
    """``assure verify PACK.pdf``: exit 0 intact, 1 findings, 2 not a pack with its evidence."""
    from .evidence.pack_verify import NotAPack, verify_pack

    try:
        report = verify_pack(path, trusted_key=trusted_key)
    except NotAPack as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    signed = f"signed by {report.public_key}" if report.signed else "UNSIGNED"
    if as_json:
        out_console.print_json(json.dumps({
            "pack": str(path), "run_id": report.run_id, "ok": report.ok, "records": report.n_records,
            "head": report.head, "signed": report.signed, "public_key": report.public_key,
            "pages_compared": report.pages_compared, "findings": [f.__dict__ for f in report.findings]}))
    else:
        for f in report.findings:
            print(f.line())
        word = "INTACT" if report.ok else "FAILED"
        print(f"{word}: pack {path.name}: run {report.run_id}, {report.n_records} attached records, chain checked, "
              f"seal {signed}, {report.pages_compared} pages match a re-rendering from the attached records")
    raise typer.Exit(0 if report.ok else 1)


def _against(store: Store, run_id: str, path: Path) -> list:
    """Findings of ``--against``; a file holding no head is a usage error (exit 2)."""
    from .evidence.against import NoHead, check_against

    try:
        return check_against(store, run_id, path)
    except (NoHead, OSError) as err:
        fail(f"--against {path}: {err}" if isinstance(err, OSError) else str(err))
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def show(
    run_id: str | None = typer.Argument(None, help="Run id or unique prefix (default: latest)."),
    db: str | None = DbOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A readable summary of a run: models and digests, settings, scores before and after, verdict."""
    from .console import show_run

    store, rid = _open_run(db, run_id)
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

    store = _open_store(db)
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
        table.add_row(rid, started.plan.get("name", ""), started.started_at[:19].replace("T", " "),
                      verdicts[-1].status if verdicts else "unsealed")
    out_console.print(table)


@app.command()
def export(
    run_id: str = typer.Argument(..., help="Run id or unique prefix (latest: the newest run)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, csv, parquet (needs pyarrow) or inspect (Inspect "
                                                        "eval logs, one per stage, into the --out folder)."),
    out: Path | None = typer.Option(None, "--out", help="File to write (a folder for inspect; default: stdout)."),
    unredacted: bool = typer.Option(False, "--unredacted", help="Model outputs and prompts in full (default: "
                                                                "outputs masked as in the packs, prompts left out)."),
    db: str | None = DbOpt,
) -> None:
    """One row per sample: stage, suite, item, variant, prompt digest, output and every judge's verdict.
    Exit 0 written, 2 usage (unknown run or format, no --out for parquet/inspect, pyarrow missing)."""
    from .export import ExportError, export_run

    store, rid = _open_run(db, run_id)
    try:
        written = export_run(store, rid, fmt, out, unredacted=unredacted)
    except ExportError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    for path in written:  # on stderr: a pipe reading the export from stdout gets the rows only
        print(f"exported: run {rid} -> {path}", file=sys.stderr)


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

    store, rid = _open_run(db, run_id)
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


@app.command()
def gate(
    run_id: str | None = typer.Argument(None, help="Run id or unique prefix (default: latest)."),
    db: str | None = DbOpt,
    policy_file: Path | None = typer.Option(None, "--policy", help="Re-apply this plan's policy to the run's metrics."),
    signers: Path | None = typer.Option(None, "--signers", help="Signer roster (YAML): only its people's approvals, "
                                                                "in their roles, count."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML (one test per policy check and "
                                                            "per required approval)."),
    as_json: bool = JsonOpt,
) -> None:
    """The release gate: exit 0 PASS, 1 FAIL, 3 when the run is incomplete or failed, 4 awaiting approval
    (policy.require_signoff), 2 usage."""
    from .console import decision_rule_text
    from .evidence.store import parse_payload
    from .gate import approvals, gate_outcome, gate_verdict, junit_xml, required_roles
    from .plan import PlanError, load_plan

    store, rid = _open_run(db, run_id)
    policy = None
    if policy_file is not None:
        try:
            policy = load_plan(policy_file).policy
        except PlanError as err:
            fail(str(err))
            raise typer.Exit(EXIT_USAGE) from None
    roster = _roster(signers)
    rows = [(e, parse_payload(e.payload)) for e in store.entries(rid)]
    records = [r for _, r in rows]
    verdict, code = gate_verdict(records, policy)
    approval = approvals(rows, required_roles(records, policy), roster)
    status, code, reasons = gate_outcome(verdict, code, approval)
    if junit is not None:
        junit.write_text(junit_xml(records, verdict, approval), encoding="utf-8")
    if as_json:
        print(json.dumps({"run_id": rid, "status": status, "verdict": verdict.status, "exit_code": code,
                          "reasons": reasons, "decision_rule": verdict.decision_rule,
                          "required_roles": approval.required, "awaiting_roles": approval.awaiting,
                          "approvals": {role: [s.name for s in got] for role, got in approval.approved.items()},
                          "rejected_by": [f"{s.name} ({s.role})" for s in approval.rejected],
                          "risk_accepted": [{"name": s.name, "role": s.role, "reason": s.accepted_risk}
                                            for s in approval.risk_accepted],
                          "checks": [_check_json(c) for c in verdict.checks]}, indent=1))
    else:
        print(f"{status} {rid}")
        if status != verdict.status:
            print(f"  verdict: {verdict.status}")
        print(f"  decision rule: {decision_rule_text(verdict)}")
        for role, got in approval.approved.items():
            print(f"  approved as {role}: " + ", ".join(s.name for s in got))
        for reason in reasons:
            print(f"  - {reason}")
    raise typer.Exit(code)


def _roster(path: Path | None):
    """The signer roster, or None; a roster that does not load is a usage error naming the file and entry."""
    if path is None:
        return None
    from .evidence.roster import RosterError, load_roster

    try:
        return load_roster(path)
    except RosterError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None


def _check_json(check) -> dict:
    # Scripts written against the untyped checks read "category" and "passed": keep both beside the typed fields.
    return {**check.model_dump(mode="json"), "category": check.subject, "passed": check.passed}


@app.command()
def signoff(
    run_id: str = typer.Argument(..., help="Run id or unique prefix."),
    name: str = typer.Option(..., "--name", help="Who signs."),
    role: str = typer.Option(..., "--role", help="Their role, e.g. 'SMF24 Chief Operations Officer'."),
    decision: Literal["approve", "reject", "approve-with-conditions"] = typer.Option(..., "--decision"),
    key: Path | None = typer.Option(None, "--key", help="Your Ed25519 private key (PEM), as `assure keygen` makes."),
    cert: Path | None = typer.Option(None, "--cert", help="Your X.509 certificate (PEM) for that key, where a PKI "
                                                          "issues keys; its fingerprint is recorded."),
    regime: Regime | None = typer.Option(None, "--regime", help="The pack decided on (default: the first rendered)."),
    conditions: str | None = typer.Option(None, "--conditions", help="The conditions (approve-with-conditions)."),
    note: str = typer.Option("", "--note", help="Comments."),
    accept_risk: str | None = typer.Option(
        None, "--accept-risk", metavar="REASON",
        help="Needed to approve a run whose verdict is FAIL: why the risk is accepted (a risk acceptance, "
             "not an approval; the gate still fails)."),
    sign_pack: bool = typer.Option(True, "--sign-pack/--no-sign-pack",
                                   help="Also write <pack>-signed-<n>.pdf, the pack with your PAdES signature."),
    out: Path | None = typer.Option(None, "--out", help="Also write the signed statement (JSON) here."),
    db: str | None = DbOpt,
) -> None:
    """Sign a decision on a sealed run (Ed25519, appended to its chain) and the pack decided on (PAdES).

    An unsealed run cannot be signed off; an incomplete (ERROR) run can only be rejected; approving
    a FAIL run needs --accept-risk REASON. Refusals exit 2 and record nothing."""
    from .evidence.signoff import key_fingerprint
    from .signing import Request, SignoffError, record_signoff, statement_file

    store, rid = _open_run(db, run_id)
    req = Request(name=name, role=role, decision=decision, key=key, cert=cert, regime=regime, conditions=conditions,
                  note=note, accept_risk=accept_risk, sign_pack=sign_pack)
    try:
        rec, digest = record_signoff(store, rid, req)
    except SignoffError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    if out is not None:
        out.write_text(statement_file(rec, rid, digest), encoding="utf-8")
    what = "RISK ACCEPTED (verdict FAIL)" if rec.accepted_risk else decision
    print(f"signed: {name} ({role}) {what} run {rid} with key {key_fingerprint(rec.public_key)}")
    if rec.signed_pack_path:
        print(f"signed pack: {rec.signed_pack_path}")


@app.command()
def keygen(path: Path = typer.Argument(..., help="Where to write the new Ed25519 private key (PEM).")) -> None:
    """Make an Ed25519 key for `run --sign-key` or `signoff --key`; prints the public key for
    `verify --trusted-key` or a signer roster's `public_key`."""
    from .evidence.seal import generate_key

    if path.exists():
        fail(f"{path}: already exists; not overwritten")
        raise typer.Exit(EXIT_USAGE)
    print(generate_key(path))


@app.command()
def attest(
    run_id: str = typer.Argument(..., help="Run id or unique prefix."),
    out: Path | None = typer.Option(None, "--out", help="Write the envelope here (default: print it)."),
    key: Path | None = typer.Option(None, "--key", help="The run's Ed25519 private key (PEM), as for run --sign-key."),
    db: str | None = DbOpt,
) -> None:
    """A signed in-toto attestation (DSSE envelope) of a sealed run: exit 0 written, 1 ledger does not verify,
    2 usage (no or bad --key, unknown or unsealed run)."""
    from .evidence.attest import AttestError, attest_run, load_key, write_envelope

    try:
        if key is None:
            raise AttestError("an attestation must be signed: give the run's Ed25519 private key with --key KEY.pem")
        signing_key = load_key(key)
        store, rid = _open_run(db, run_id)
        text = write_envelope(attest_run(store, rid, signing_key), out)
    except AttestError as err:
        fail(str(err))
        raise typer.Exit(err.exit_code) from None
    if out is None:
        print(text, end="")
    else:
        print(f"attested: run {rid} -> {out}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
