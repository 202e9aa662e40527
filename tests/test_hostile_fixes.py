"""Fixes for the hostile tester's findings (issue 10, item 7), each through the command a user types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.store import Store

runner = CliRunner()


def _plan(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    path = tmp_path / "plan.yaml"
    path.write_text("name: t\nmodel:\n  path: ./m\n")
    return path


def _bad_keys(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notpem.pem"
    text.write_text("this is not a key\n")
    ec = tmp_path / "ec.pem"
    ec.write_bytes(generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"missing": tmp_path / "nokey.pem", "not PEM": text, "not Ed25519": ec, "a folder": tmp_path}


@pytest.mark.parametrize("which", ["missing", "not PEM", "not Ed25519", "a folder"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_bad_sign_key_is_refused_before_anything_is_written(tmp_path, which, resume):
    plan = _plan(tmp_path)
    key = _bad_keys(tmp_path)[which]
    db = f"sqlite:///{tmp_path / 'ev.db'}"
    args = ["run", "--resume", "0190", "--db", db] if resume else ["run", str(plan), "--db", db]
    res = runner.invoke(app, [*args, "--sign-key", str(key)], terminal_width=400)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(key) in lines[0] and "Ed25519" in lines[0], res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "ev.db").exists() or Store(db).run_ids() == []


def test_a_good_sign_key_passes_the_check(tmp_path):
    from assurance.evidence.seal import check_signing_key

    key = tmp_path / "k.pem"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    check_signing_key(key)  # raises on a key it cannot sign with


def _sealed(tmp_path: Path, status: str, *, complete: bool = True, failed: bool = False) -> tuple[Store, str]:
    """A real ledger: started, one metric, a verdict (after a RunFailed when ``failed``), the two seals."""
    from _ledger_writers import metric, started

    from assurance.evidence.records import RunFailed, VerdictRecord
    from assurance.evidence.seal import seal_run

    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    run_id = "0190aaaa-0000-7000-8000-000000000001"
    store.append(run_id, [started(run_id), metric(1)])
    if failed:
        store.append(run_id, [RunFailed(stage="seal", error="ValueError: bad key", failed_at="2026-01-01T00:00:01Z")])
    store.append(run_id, [VerdictRecord(status=status, checks=[], reasons=[] if status == "PASS" else ["r"])])
    seal_run(store, run_id, complete=complete)
    seal_run(store, run_id, complete=complete, scope="packs")  # a run with no packs: the packs seal lists none
    return store, run_id


def _key(store: Store) -> Path:
    """The signer's key, made once beside the ledger (a sign-off is signed)."""
    from assurance.evidence.seal import generate_key

    path = Path(store.url.removeprefix("sqlite:///")).parent / "signer.pem"
    if not path.exists():
        generate_key(path)
    return path


def _signoff(store: Store, run_id: str, decision: str, *extra: str):
    return runner.invoke(app, ["signoff", run_id, "--db", store.url, "--name", "J. Smith", "--role", "SMF24",
                               "--decision", decision, "--key", str(_key(store)), *extra], terminal_width=400)


@pytest.mark.parametrize("how", ["sealed incomplete", "RunFailed, sealed complete", "ERROR, sealed complete"])
def test_an_error_run_is_never_complete_and_cannot_be_approved(tmp_path, how):
    store, run_id = _sealed(tmp_path, "ERROR", complete=how != "sealed incomplete", failed=how.startswith("RunFailed"))
    res = runner.invoke(app, ["verify", run_id, "--db", store.url, "--no-files"], terminal_width=400)
    assert "run complete" not in res.output and "run INCOMPLETE" in res.output, res.output
    js = runner.invoke(app, ["verify", run_id, "--db", store.url, "--no-files", "--json"])
    assert '"complete": false' in js.output
    shown = runner.invoke(app, ["show", run_id, "--db", store.url], terminal_width=400)
    assert "sealed, INCOMPLETE" in shown.output and "sealed, complete" not in shown.output
    before = store.count(run_id)
    for decision in ("approve", "approve-with-conditions"):
        res = _signoff(store, run_id, decision, "--accept-risk", "we know")
        assert res.exit_code == 2 and "cannot be approved" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    assert store.count(run_id) == before
    assert _signoff(store, run_id, "reject").exit_code == 0
    assert [r.decision for r in store.records(run_id, kinds=["signoff"])] == ["reject"]


def test_approving_a_fail_run_needs_accept_risk_recorded_as_a_risk_acceptance(tmp_path):
    store, run_id = _sealed(tmp_path, "FAIL")
    res = _signoff(store, run_id, "approve")
    assert res.exit_code == 2 and "--accept-risk" in res.output and len(res.output.strip().splitlines()) == 1
    assert store.records(run_id, kinds=["signoff"]) == []
    assert _signoff(store, run_id, "reject").exit_code == 0
    ok = _signoff(store, run_id, "approve-with-conditions", "--accept-risk", "compensating control X",
                  "--conditions", "review in 30 days")
    assert ok.exit_code == 0, ok.output
    signed = store.records(run_id, kinds=["signoff"])
    assert [(s.accepted_risk, s.conditions) for s in signed] == [
        (None, None), ("compensating control X", "review in 30 days")]
    verified = runner.invoke(app, ["verify", run_id, "--db", store.url, "--no-files"], terminal_width=400)
    assert verified.exit_code == 0 and "run complete" in verified.output


def test_a_pass_run_is_complete_and_approvable(tmp_path):
    store, run_id = _sealed(tmp_path, "PASS")
    assert "run complete" in runner.invoke(app, ["verify", run_id, "--db", store.url, "--no-files"]).output
    assert _signoff(store, run_id, "approve").exit_code == 0


def test_a_re_render_writes_a_new_version_and_the_old_pack_still_verifies(tmp_path):
    from _report_records import make_records, pdf_text

    from assurance.evidence.records import PackRecord
    from assurance.evidence.seal import seal_run

    store = Store(f"sqlite:///{tmp_path / 'ev.db'}")
    records = make_records(verdict="PASS", manifest=False)
    run_id = records[0].run_id
    store.append(run_id, records)
    seal_run(store, run_id, complete=True)
    out = tmp_path / "packs"
    paths = []
    for _ in range(2):
        res = runner.invoke(app, ["render", run_id, "--regime", "fca", "--db", store.url, "--out", str(out)])
        assert res.exit_code == 0, res.output
        paths.append(Path(res.stdout.strip()))
        if len(paths) == 1:
            first = paths[0].read_bytes()
    stem = f"fca-assurance-pack-{run_id[:8]}"
    assert [p.name for p in paths] == [f"{stem}.pdf", f"{stem}-v2.pdf"]
    assert paths[0].read_bytes() == first  # the recorded version 1 was not overwritten
    packs = store.records(run_id, kinds=["pack"])
    assert all(isinstance(p, PackRecord) for p in packs)
    assert [Path(p.path) for p in packs] == [p.resolve() for p in paths]
    res = runner.invoke(app, ["verify", run_id, "--db", store.url, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["ok"] and report["files_checked"] == 2, report  # both packs (the artifacts are not on disk)
    assert not [f for f in report["findings"] if "pack" in f["message"]], report
    assert "Version 2" in pdf_text(paths[1]) or "version 2" in pdf_text(paths[1]).lower()


def test_four_concurrent_signoff_commands_all_land(tmp_path):
    """Four `assure signoff` processes at once on one run: no IntegrityError, every decision in one intact chain."""
    import os
    import subprocess
    import sys

    store, run_id = _sealed(tmp_path, "PASS")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "assurance.cli", "signoff", run_id, "--db", store.url,
                               "--name", f"signer {i}", "--role", "SMF24", "--decision", "approve",
                               "--key", str(_key(store))],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(4)]
    outs = [(p.wait(timeout=300), p.stdout.read() if p.stdout else "") for p in procs]
    assert all(code == 0 for code, _ in outs), outs
    assert not any("Traceback" in out or "IntegrityError" in out for _, out in outs), outs
    names = sorted(s.name for s in store.records(run_id, kinds=["signoff"]))
    assert names == [f"signer {i}" for i in range(4)]
    res = runner.invoke(app, ["verify", run_id, "--db", store.url, "--no-files"])
    assert res.exit_code == 0 and "INTACT" in res.output, res.output


def test_a_checkpoint_is_hashed_when_written_and_refused_when_changed(tmp_path):
    import torch

    from assurance.finetune import checkpoint as ckpt
    from assurance.resume import ResumeError, check_checkpoints

    root = tmp_path / "run" / "model" / "checkpoints"
    path = ckpt.save(root, 4, {"step": 4, "weights": {"w": torch.ones(3)}}, {"step": 4}, keep=2)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["state_sha256"] == ckpt.state_digest(path) and meta["step"] == 4
    assert ckpt.load(path)["step"] == 4
    check_checkpoints(tmp_path / "run")  # intact: no error

    state = path / "state.pt"
    original = state.read_bytes()
    torch.save({"step": 4, "weights": {"w": torch.zeros(3)}}, state)  # a well-formed but different state
    with pytest.raises(ckpt.CheckpointError, match="state.pt has digest"):
        ckpt.load(path)
    with pytest.raises(ResumeError, match=f"cannot resume: checkpoint {path}"):
        check_checkpoints(tmp_path / "run")

    state.write_bytes(original)
    (path / "meta.json").write_text(json.dumps({"step": 4}))  # as older code wrote it: nothing to check against
    with pytest.raises(ckpt.CheckpointError, match="no state_sha256"):
        ckpt.load(path)


def test_resume_from_a_changed_checkpoint_exits_2_and_appends_nothing(killed):
    """The campaign's edit: the optimizer/weights state changed between the kill and --resume."""
    import torch

    from assurance.finetune import checkpoint as ckpt

    db, run_id = killed["db"], killed["run_id"]
    store = Store(db)
    n = store.count(run_id)
    latest = ckpt.latest(killed["run_dir"] / "model" / "checkpoints")
    assert latest is not None
    state = torch.load(latest / "state.pt", weights_only=True)
    first = next(iter(state["weights"]))
    state["weights"][first] = state["weights"][first] * 1.01
    torch.save(state, latest / "state.pt")
    res = runner.invoke(app, ["run", "--resume", run_id, "--db", db], env={"ASSURE_HOME": str(killed["tmp"] / "runs")},
                        terminal_width=400)
    assert res.exit_code == 2, res.output
    assert "cannot resume" in res.output and str(latest) in res.output and "changed" in res.output
    assert store.count(run_id) == n
