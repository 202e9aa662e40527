"""A real run with an organisation profile (tiny model, real SQLite, real PDFs): the profile's record and
digest in the ledger, the names on the pack, `assure render --profile` after the run, and a resume that
reuses the recorded profile without reading the file again."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml
from _report_records import pdf_text
from sqlalchemy import insert
from sqlmodel import Session
from typer.testing import CliRunner

from assurance.cli import app
from assurance.evidence.records import ArtifactRecord, ManifestRecord, PackRecord, ProfileRecord
from assurance.evidence.store import LedgerEntry, Store
from assurance.evidence.verify import verify_run
from assurance.profile import OrgProfile
from assurance.report import build_view

runner = CliRunner()
TRUST = "Riverside Test Trust (fictional)"
PROFILE = {
    "organisation": {"legal_name": TRUST},
    "system": {"name": "Enquiries helper (test)", "intended_use": "Answers appointment questions."},
    "roles": {"clinical_safety_officer": {"name": "Dr C. Safety", "registration": {"body": "GMC", "number": "7"}}},
    "hazards": {"prefill": {"severity": "Major"}},
}


def flat(path) -> str:
    return " ".join(pdf_text(path).split())


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("profiled")
    (tmp / "org").mkdir()
    profile = tmp / "org" / "trust.yaml"
    profile.write_text(yaml.safe_dump(PROFILE, sort_keys=False), encoding="utf-8")
    plan = {
        "name": "profiled", "model": {"path": str(tiny_model_dir)}, "device": "cpu", "cpu_threads": 1,
        "battery": {"suites": ["refusal"], "limit_per_category": 1, "max_new_tokens": 4},
        "finetune": {"method": "lora", "max_steps": 2, "batch_size": 4, "warmup_steps": 0},
        "stress": {"enabled": False},
        "report": {"regimes": ["nhs"], "organisation": "Plan Org", "system_name": "Plan System",
                   "profile": "org/trust.yaml"},
    }
    plan_path = tmp / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan), encoding="utf-8")
    db, env = f"sqlite:///{tmp / 'evidence.db'}", {"ASSURE_HOME": str(tmp / "runs")}
    res = runner.invoke(app, ["run", str(plan_path), "--db", db, "--json"], env=env)
    assert res.exit_code in (0, 1), res.output
    out = json.loads(res.stdout)
    return dict(tmp=tmp, profile=profile, db=db, env=env, out=out, run_id=out["run_id"])


def test_the_profile_is_recorded_with_the_provenance_and_its_file_digest(profiled_run):
    store, run_id, profile = Store(profiled_run["db"]), profiled_run["run_id"], profiled_run["profile"]
    records = store.records(run_id)
    digest = "sha256:" + hashlib.sha256(profile.read_bytes()).hexdigest()
    (rec,) = [r for r in records if isinstance(r, ProfileRecord)]
    assert (rec.source, rec.digest, rec.recorded_by) == ("trust.yaml", digest, "run")
    assert OrgProfile.model_validate(rec.content) == OrgProfile.model_validate(PROFILE)
    (art,) = [r for r in records if isinstance(r, ArtifactRecord) and r.role == "profile"]
    assert (art.path, art.digest, art.is_dir) == (str(profile.resolve()), digest, False)
    kinds = [r.kind for r in records]
    # With the provenance: after the environment and input artifacts, before the battery; sealed by the manifest.
    assert kinds.index("environment") < kinds.index("org_profile") < kinds.index("battery")
    manifest = next(r for r in records if isinstance(r, ManifestRecord))
    assert manifest.artifacts["profile"] == digest
    assert verify_run(store, run_id).ok


def test_the_pack_names_the_profiles_organisation_and_system(profiled_run):
    view = build_view(Store(profiled_run["db"]).records(profiled_run["run_id"]))
    assert (view.organisation, view.system_name) == (TRUST, "Enquiries helper (test)")
    assert view.profile is not None and view.profile.hazards["prefill"].severity == "Major"
    text = flat(profiled_run["out"]["packs"]["nhs"])
    assert TRUST in text and "Enquiries helper (test)" in text and "Plan Org" not in text


def test_render_profile_records_a_new_profile_and_the_pack_shows_it(profiled_run, tmp_path):
    db, run_id, env = profiled_run["db"], profiled_run["run_id"], profiled_run["env"]
    store = Store(db)
    n = store.count(run_id)
    bad = tmp_path / "bad.yaml"
    bad.write_text("organisation:\n  legal_name: A\n  legal_name: B\n", encoding="utf-8")
    res = runner.invoke(app, ["render", run_id, "--regime", "fca", "--db", db, "--profile", str(bad),
                              "--out", str(tmp_path / "bad-packs")], env=env)
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {bad}: organisation.legal_name: duplicate key " \
                                                        "(lines 2 and 3); YAML would keep only the last"
    assert store.count(run_id) == n and not (tmp_path / "bad-packs").exists()  # nothing appended, nothing written

    later = tmp_path / "completed.yaml"
    later.write_text(yaml.safe_dump({"organisation": {"legal_name": "Completed Later NHS Trust"}}), encoding="utf-8")
    res = runner.invoke(app, ["render", run_id, "--regime", "fca", "--db", db, "--profile", str(later),
                              "--out", str(tmp_path / "packs")], env=env)
    assert res.exit_code == 0, res.output
    added = store.records(run_id)[n:]
    assert [r.kind for r in added] == ["artifact", "org_profile", "pack", "manifest"]  # the new packs seal last
    assert added[1].digest == "sha256:" + hashlib.sha256(later.read_bytes()).hexdigest()
    assert added[1].recorded_by == "render" and added[1].source == "completed.yaml"
    view = build_view(store.records(run_id))
    assert view.profile_record == added[1] and view.organisation == "Completed Later NHS Trust"
    assert view.system_name == "Plan System"  # the new profile names no system: the plan's name is used
    pack = added[2]
    assert isinstance(pack, PackRecord) and "Completed Later NHS Trust" in flat(pack.path)
    report = verify_run(store, run_id)
    assert report.ok, report.findings


def test_a_resumed_run_reuses_the_recorded_profile(profiled_run, tmp_path):
    """A run killed after its provenance resumes without reading the profile file (here: gone)."""
    source = Store(profiled_run["db"])
    entries = source.entries(profiled_run["run_id"])
    upto = next(e.seq for e in entries if e.kind == "battery")
    db = f"sqlite:///{tmp_path / 'killed.db'}"
    killed = Store(db)
    with Session(killed.engine) as session:
        session.execute(insert(LedgerEntry), [e.model_dump() for e in entries[: upto + 1]])
        session.commit()
    moved = tmp_path / "elsewhere.yaml"
    shutil.move(profiled_run["profile"], moved)
    try:
        res = runner.invoke(app, ["run", "--resume", profiled_run["run_id"][:13], "--db", db, "--json"],
                            env={"ASSURE_HOME": str(tmp_path / "runs")})
    finally:
        shutil.move(moved, profiled_run["profile"])
    assert res.exit_code in (0, 1), res.output
    records = killed.records(profiled_run["run_id"])
    assert [r.kind for r in records].count("org_profile") == 1 and build_view(records).organisation == TRUST
    assert verify_run(killed, profiled_run["run_id"]).ok
