"""End to end at reduced size: the real tiny model, a real SQLite ledger, real
PDFs read back, and the auditor's tamper checks through the CLI."""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.store import Store

runner = CliRunner()


def write_plan(tmp_path, model_dir, **overrides):
    plan = {
        "name": "e2e",
        "model": {"path": str(model_dir)},
        "device": "cpu",
        "cpu_threads": 1,
        "battery": {"limit_per_category": 2, "max_new_tokens": 8, "batch_size": 16},
        "finetune": {"method": "lora", "max_steps": 6, "batch_size": 4, "warmup_steps": 1, "lr": 1e-3},
        "stress": {"max_steps": 3, "batch_size": 4},
        "report": {"organisation": "Test Org"},
    }
    for key, value in overrides.items():
        plan[key] = value
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def pdf_text(path):
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("e2e")
    model = tmp / "model"
    shutil.copytree(tiny_model_dir, model)  # a private copy: a test flips one of its bytes
    plan = write_plan(tmp, model)
    db = f"sqlite:///{tmp / 'evidence.db'}"
    env = {"ASSURE_HOME": str(tmp / "runs")}
    result = runner.invoke(app, ["run", str(plan), "--db", db, "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    out = json.loads(result.stdout)
    return dict(tmp=tmp, model=model, db=db, env=env, out=out)


def test_run_writes_a_sealed_ledger_and_three_packs(finished_run):
    out, db = finished_run["out"], finished_run["db"]
    assert out["status"] in ("PASS", "FAIL") and out["exit_code"] == {"PASS": 0, "FAIL": 1}[out["status"]]
    records = Store(db).records(out["run_id"])
    kinds = [r.kind for r in records]
    assert kinds[:2] == ["run_started", "environment"] and "manifest" in kinds
    manifest = next(r for r in records if r.kind == "manifest")
    assert manifest.complete and "base_model" in manifest.artifacts and "adapter" in manifest.artifacts
    assert {r.stage for r in records if r.kind == "sample"} == {"base", "tuned", "stress"}
    assert {r.purpose for r in records if r.kind == "finetune"} == {"safety", "stress"}
    base_digest = manifest.artifacts["base_model"]
    assert set(out["packs"]) == {"fca", "nhs", "uk-ai"}
    # verdict, evidence seal, the packs, the packs seal listing each pack's digest
    assert kinds[-6:] == ["verdict", "manifest", "pack", "pack", "pack", "manifest"]
    evidence, packs = (r for r in records if r.kind == "manifest")
    assert (evidence.scope, packs.scope, packs.complete) == ("evidence", "packs", True)
    assert packs.packs == {Path(r.path).name: r.digest for r in records if r.kind == "pack"}
    for regime, path in out["packs"].items():
        text = pdf_text(path)
        flat = "".join(text.split())  # long digests wrap across lines in the PDF
        assert out["run_id"] in flat, regime
        assert base_digest in flat, regime
        assert out["status"] in text, regime


def test_verify_show_and_render_from_the_ledger_alone(finished_run):
    out, db, env = finished_run["out"], finished_run["db"], finished_run["env"]
    ok = runner.invoke(app, ["verify", out["run_id"], "--db", db])
    assert ok.exit_code == 0, ok.output
    assert "INTACT" in ok.output and "UNSIGNED" in ok.output and "run complete" in ok.output
    listed = runner.invoke(app, ["runs", "--db", db])
    assert listed.exit_code == 0 and out["run_id"][:8] in listed.output
    shown = runner.invoke(app, ["show", out["run_id"][:8], "--db", db])
    assert shown.exit_code == 0 and "refused" in shown.output
    rendered = runner.invoke(app, ["render", out["run_id"], "--regime", "nhs", "--db", db,
                                   "--out", str(finished_run["tmp"] / "again")], env=env)
    assert rendered.exit_code == 0, rendered.output
    assert "Hazard" in pdf_text(rendered.stdout.strip())


def test_tampered_score_is_named_by_verify(finished_run):
    out, db = finished_run["out"], finished_run["db"]
    path = db[len("sqlite:///"):]
    copy = finished_run["tmp"] / "tampered.db"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # a consistent copy, WAL included
    con = sqlite3.connect(copy)
    row_id, seq, payload = con.execute(
        "SELECT id, seq, payload FROM ledger WHERE kind='metric' ORDER BY seq LIMIT 1").fetchone()
    data = json.loads(payload)
    data["successes"] = data["n"]
    data["value"] = 1.0
    con.execute("DROP TRIGGER ledger_no_update")
    con.execute("UPDATE ledger SET payload=? WHERE id=?", (json.dumps(data, separators=(",", ":"), sort_keys=True), row_id))
    con.commit()
    con.close()
    res = runner.invoke(app, ["verify", out["run_id"], "--db", f"sqlite:///{copy}", "--no-files"])
    assert res.exit_code == 1
    assert f"record {seq} (metric)" in res.output


def test_changed_model_byte_is_named_by_verify(finished_run):
    out, db, model = finished_run["out"], finished_run["db"], finished_run["model"]
    weights = model / "model.safetensors"
    original = weights.read_bytes()
    try:
        data = bytearray(original)
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        res = runner.invoke(app, ["verify", out["run_id"], "--db", db])
        assert res.exit_code == 1
        assert str(weights) in res.output
    finally:
        weights.write_bytes(original)


def test_digest_command_matches_the_ledger(finished_run):
    out, db, model = finished_run["out"], finished_run["db"], finished_run["model"]
    res = runner.invoke(app, ["digest", str(model)])
    manifest = [r for r in Store(db).records(out["run_id"]) if r.kind == "manifest"][0]
    assert res.stdout.split()[0] == manifest.artifacts["base_model"]


def assert_nothing_written(tmp_path, res, *needles):
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "evidence.db").exists()
    assert not (tmp_path / "runs").exists()
    for n in needles:
        assert n in res.output, res.output


def test_unknown_plan_field_exits_2_and_writes_nothing(tmp_path, tiny_model_dir):
    plan = write_plan(tmp_path, tiny_model_dir, finetune={"learning_rate": 1e-3})
    res = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{tmp_path / 'evidence.db'}"],
                        env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert_nothing_written(tmp_path, res, "finetune.learning_rate", "unknown field")


def test_missing_model_folder_exits_2_and_writes_nothing(tmp_path):
    plan = write_plan(tmp_path, tmp_path / "no-such-model")
    res = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{tmp_path / 'evidence.db'}"],
                        env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert_nothing_written(tmp_path, res, "no-such-model")


def test_malformed_jsonl_row_exits_2_and_writes_nothing(tmp_path, tiny_model_dir):
    data = tmp_path / "safety.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n{not json\n")
    plan = write_plan(tmp_path, tiny_model_dir, finetune={"safety_data": str(data)})
    res = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{tmp_path / 'evidence.db'}"],
                        env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert_nothing_written(tmp_path, res, "safety.jsonl", "line 3")


def test_cli_usage_error_is_exit_2():
    res = runner.invoke(app, ["render", "x", "--regime", "sec"])
    assert res.exit_code == 2


def test_assure_entry_point_is_installed():
    assure = Path(sys.executable).parent / "assure"  # the venv's console script
    res = subprocess.run([str(assure), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "verify" in res.stdout


def small_plan(tmp_path, model_dir, **finetune):
    return write_plan(tmp_path, model_dir,
                      battery={"suites": ["refusal"], "limit_per_category": 1, "max_new_tokens": 6},
                      finetune={"method": "full", "max_steps": 3, "batch_size": 4, "warmup_steps": 0, **finetune},
                      stress={"enabled": False}, report={"regimes": ["fca"]})


def test_diverged_training_is_an_error_never_a_pass(tmp_path, tiny_model_dir):
    plan = small_plan(tmp_path, tiny_model_dir, lr=1e30)
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    res = runner.invoke(app, ["run", str(plan), "--db", db, "--json"], env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert res.exit_code == 3, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "ERROR" and "diverged" in out["error"]
    records = Store(db).records(out["run_id"])
    failed = [r for r in records if r.kind == "run_failed"]
    assert failed and failed[0].stage == "safety fine-tune"
    assert [r.status for r in records if r.kind == "verdict"] == ["ERROR"]
    assert [(r.scope, r.complete) for r in records if r.kind == "manifest"] == [("evidence", False),
                                                                                ("packs", False)]
    text = pdf_text(out["packs"]["fca"])
    assert "DRAFT" in text and "PASS" not in text
    assert runner.invoke(app, ["gate", out["run_id"], "--db", db]).exit_code == 3
    # An incomplete run cannot be signed off.
    signed = runner.invoke(app, ["signoff", out["run_id"], "--db", db, "--name", "A", "--role", "B",
                                 "--decision", "approve"])
    assert signed.exit_code == 2


def test_same_plan_twice_gives_identical_outputs_and_scores(tmp_path, tiny_model_dir):
    plan = small_plan(tmp_path, tiny_model_dir, lr=1e-3)
    db = f"sqlite:///{tmp_path / 'evidence.db'}"
    ids = []
    for _ in range(2):
        res = runner.invoke(app, ["run", str(plan), "--db", db, "--json"], env={"ASSURE_HOME": str(tmp_path / "runs")})
        assert res.exit_code in (0, 1), res.output
        ids.append(json.loads(res.stdout)["run_id"])
    store = Store(db)

    def facts(run_id):
        recs = store.records(run_id)
        samples = [(r.stage, r.item_id, r.output, r.refused) for r in recs if r.kind == "sample"]
        metrics = [r.model_dump() for r in recs if r.kind == "metric"]
        tuned = next(r.output_digest for r in recs if r.kind == "finetune")
        return samples, metrics, tuned

    assert ids[0] != ids[1]
    assert facts(ids[0]) == facts(ids[1])


def test_gate_reads_the_ledger_and_writes_junit(finished_run, tmp_path):
    import xml.etree.ElementTree as ET

    out, db = finished_run["out"], finished_run["db"]
    junit = tmp_path / "gate.xml"
    res = runner.invoke(app, ["gate", out["run_id"], "--db", db, "--junit", str(junit)])
    assert res.exit_code == out["exit_code"] and res.stdout.startswith(out["status"])
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests")) > 0
    assert int(suite.get("failures")) == (0 if out["status"] == "PASS" else len(suite.findall("testcase/failure")))
    lax = tmp_path / "lax.yaml"
    lax.write_text(yaml.safe_dump({"policy": {"min_refusal_rate": 0.0, "max_over_refusal_rate": 1.0,
                                              "max_regression": 1.0}}))
    res = runner.invoke(app, ["gate", out["run_id"], "--db", db, "--policy", str(lax), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "PASS"
