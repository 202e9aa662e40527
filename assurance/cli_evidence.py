"""The evidence commands of `assure`: verify, gate, signoff, keygen, attest and export.

They read (and, for signoff, append to) the ledger; none needs a model, so each imports what it uses
inside its body and starts without torch, transformers or WeasyPrint (tests/test_fast_imports.py).
`cli.py` registers them on the one `assure` app, in ``EVIDENCE_COMMANDS`` order.

Exit codes: verify 0 intact, 1 findings, 2 usage; gate 0 PASS, 1 FAIL, 2 usage, 3 incomplete run,
4 awaiting approval; signoff 0 signed, 2 refused (nothing recorded); attest 0 written, 1 the ledger does
not verify, 2 usage; export 0 written, 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from .cli_common import DbOpt, JsonOpt, open_run
from .console import fail, out_console
from .exit_codes import EXIT_USAGE
from .regimes import Regime

if TYPE_CHECKING:
    from .evidence.store import Store


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
        False, "--require-signed", help="An unsigned seal is a finding (a stripped signature then fails); "
                                        "also set by a --signers roster with require_signatures: true."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-check, offline, the hash chain of every record and the digest of every artifact still on disk.
    Given a pack PDF instead of a run, check the pack on its own, with no ledger (exit 2: no evidence in it)."""
    if run_id and run_id.lower().endswith(".pdf") and Path(run_id).is_file():
        _verify_pack(Path(run_id), trusted_key, as_json)
    from .evidence.verify import signing_line, verify_run

    roster = _roster(signers)
    store, rid = open_run(db, run_id)
    report = verify_run(store, rid, check_files=not no_files, trusted_key=trusted_key, require_signed=require_signed,
                        roster=roster)
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

    store, rid = open_run(db, run_id)
    try:
        written = export_run(store, rid, fmt, out, unredacted=unredacted)
    except ExportError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    for path in written:  # on stderr: a pipe reading the export from stdout gets the rows only
        print(f"exported: run {rid} -> {path}", file=sys.stderr)


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

    store, rid = open_run(db, run_id)
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
    from .evidence.signoff import decision_text, key_fingerprint
    from .signing import Request, SignoffError, record_signoff, statement_file

    store, rid = open_run(db, run_id)
    req = Request(name=name, role=role, decision=decision, key=key, cert=cert, regime=regime, conditions=conditions,
                  note=note, accept_risk=accept_risk, sign_pack=sign_pack)
    try:
        rec, digest = record_signoff(store, rid, req)
    except SignoffError as err:
        fail(str(err))
        raise typer.Exit(EXIT_USAGE) from None
    if out is not None:
        out.write_text(statement_file(rec, rid, digest), encoding="utf-8")
    print(f"signed: {name} ({role}) {decision_text(rec)} run {rid} with key {key_fingerprint(rec.public_key)}")
    if rec.signed_pack_path:
        print(f"signed pack: {rec.signed_pack_path}")


def keygen(path: Path = typer.Argument(..., help="Where to write the new Ed25519 private key (PEM).")) -> None:
    """Make an Ed25519 key for `run --sign-key` or `signoff --key`; prints the public key for
    `verify --trusted-key` or a signer roster's `public_key`."""
    from .evidence.seal import generate_key

    if path.exists():
        fail(f"{path}: already exists; not overwritten")
        raise typer.Exit(EXIT_USAGE)
    if not path.parent.is_dir():
        fail(f"{path}: no folder {path.parent} to write the key into; make it first")
        raise typer.Exit(EXIT_USAGE)
    try:
        public = generate_key(path)
    except OSError as err:  # a read-only folder, a full disk
        fail(f"{path}: cannot write the key: {err.strerror or err}")
        raise typer.Exit(EXIT_USAGE) from None
    print(public)


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
        store, rid = open_run(db, run_id)
        text = write_envelope(attest_run(store, rid, signing_key), out)
    except AttestError as err:
        fail(str(err))
        raise typer.Exit(err.exit_code) from None
    if out is None:
        print(text, end="")
    else:
        print(f"attested: run {rid} -> {out}")


EVIDENCE_COMMANDS = (verify, gate, signoff, keygen, attest, export)
