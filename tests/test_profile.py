"""The organisation profile file: strict reading (one line naming file and field, exit 2, nothing written),
`assure profile check` / `template`, the published schema, the demo's example profiles, and a ledger
written before profiles existed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from assurance.battery.builtin import battery_from_spec
from assurance.cli import app
from assurance.demo import DEMO_RUNS, PROFILES_DIR, demo_plan
from assurance.plan import BatterySpec
from assurance.profile import PROFILE_FIELDS, OrgProfile, profile_value
from assurance.profile_file import ProfileError, load_profile
from assurance.profile_template import profile_template
from assurance.report import build_view
from assurance.schemas import all_schemas, render

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

CSO = {"name": "Dr A. Example", "registration": {"body": "GMC", "number": "1234567"}}
BAD_PROFILES = {
    # case -> (file content, what the one error line must say after the file name)
    "not yaml": ("organisation: [\n", "not valid YAML"),
    "duplicate key": ("organisation:\n  legal_name: A plc\n  legal_name: B plc\n",
                      "organisation.legal_name: duplicate key (lines 2 and 3)"),
    "duplicate nested key": ("roles:\n  reviewers:\n    - name: X\n      name: Y\n",
                             "roles.reviewers.0.name: duplicate key"),
    "unknown field": ("organisation:\n  legal_nam: A plc\n", "organisation.legal_nam: unknown field"),
    "wrong type": ("clinical:\n  dcb0160_applies: perhaps\n",
                   "clinical.dcb0160_applies: Input should be a valid boolean"),
    "wrong type (number for text)": ("model_risk:\n  risk_tier: 2\n",
                                     "model_risk.risk_tier: Input should be a valid string"),
    "CSO without registration": ("roles:\n  clinical_safety_officer:\n    name: Dr A. Example\n",
                                 "roles.clinical_safety_officer.registration: required"),
    "not a mapping": ("- a\n- b\n", "the profile must be a YAML mapping"),
    "two documents": ("organisation: {}\n---\nsystem: {}\n",
                      "not valid YAML: expected a single document in the stream but found another document"),
    "unsafe tag": ("organisation: !!python/object/apply:os.getcwd []\n",
                   "not valid YAML: could not determine a constructor for the tag"),
}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_a_bad_profile_is_one_line_naming_file_and_field_and_nothing_is_written(tmp_path, case):
    text, expected = BAD_PROFILES[case]
    profile = write(tmp_path / "profile.yaml", text)
    plan = write(tmp_path / "plan.yaml", yaml.safe_dump({"report": {"profile": "profile.yaml"}}))
    db, home = tmp_path / "evidence.db", tmp_path / "runs"
    res = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{db}"], env={"ASSURE_HOME": str(home)})
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {profile}: ") and expected in lines[0], res.stderr
    assert not db.exists() and not home.exists()  # no ledger, no run folder: nothing written
    # `assure profile check` says the same, in the same one line.
    check = runner.invoke(app, ["profile", "check", str(profile)])
    assert check.exit_code == 2 and check.stderr.strip().splitlines() == lines


def test_a_missing_profile_file_is_an_input_error(tmp_path):
    plan = write(tmp_path / "plan.yaml", yaml.safe_dump({"report": {"profile": "nowhere.yaml"}}))
    res = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{tmp_path / 'e.db'}"],
                        env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {tmp_path / 'nowhere.yaml'}: profile file not found"
    assert not (tmp_path / "e.db").exists() and not (tmp_path / "runs").exists()


def test_the_plan_resolves_the_profile_against_its_folder(tmp_path):
    from assurance.plan import load_plan

    (tmp_path / "plans").mkdir()
    plan = write(tmp_path / "plans" / "plan.yaml", "report:\n  profile: ../org/profile.yaml\n")
    assert load_plan(plan).report.profile == str((tmp_path / "org" / "profile.yaml").resolve())
    assert load_plan(write(tmp_path / "p2.yaml", "name: x\n")).report.profile is None


def test_profile_check_prints_ok_with_the_file_digest(tmp_path):
    path = write(tmp_path / "p.yaml", yaml.safe_dump({"roles": {"clinical_safety_officer": CSO}}))
    res = runner.invoke(app, ["profile", "check", str(path)])
    assert res.exit_code == 0
    assert res.stdout.split() == ["OK", "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), str(path)]


def test_the_loaded_profile_keeps_what_the_file_says_and_its_digest(tmp_path):
    path = write(tmp_path / "p.yaml", "organisation: {legal_name: A plc}\nassessments:\n  dpia: "
                                      "{reference: D-1, approved_on: 2026-01-02}\n")
    loaded = load_profile(path)
    assert loaded.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.content == {"organisation": {"legal_name": "A plc"}, "system": {}, "model_risk": {}, "roles": {},
                              "clinical": {}, "assessments": {"dpia": {"reference": "D-1", "approved_on": "2026-01-02",
                                                                       "status": "approved"}},
                              "transparency": {}, "hazards": {}}
    assert OrgProfile.model_validate(loaded.content) == loaded.profile  # the recorded content reads back whole
    art, rec = loaded.records("run")
    assert (art.role, art.path, art.digest) == ("profile", str(path.resolve()), loaded.digest)
    assert (rec.source, rec.digest, rec.recorded_by) == ("p.yaml", loaded.digest, "run")
    assert str(tmp_path) not in rec.model_dump_json()  # packs read this record: no machine path in it


def test_yaml_aliases_are_fine_but_duplicates_behind_them_are_not(tmp_path):
    ok = write(tmp_path / "ok.yaml", "roles:\n  model_owner: &p {name: A}\n  model_developer: *p\n")
    assert load_profile(ok).profile.roles.model_developer.name == "A"
    with pytest.raises(ProfileError, match=r"hazards\.prefill\.severity: duplicate key"):
        load_profile(write(tmp_path / "d.yaml", "hazards:\n  prefill: {severity: Major, severity: Minor}\n"))


def test_template_parses_as_an_empty_profile_and_names_every_field(tmp_path):
    text = profile_template()
    assert load_profile(write(tmp_path / "t.yaml", text)).profile == OrgProfile()
    res = runner.invoke(app, ["profile", "template"])
    assert res.exit_code == 0 and res.stdout == text
    # Uncommented, it is YAML whose keys are exactly the model's: every dotted field, with its title.
    uncommented = yaml.safe_load("\n".join(line[2:] for line in text.splitlines() if line.startswith("# ")))
    for path, title in PROFILE_FIELDS.items():
        node = uncommented
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, path
            node = node[part]
        assert f"# {title}" in text, path
    assert set(uncommented) == set(OrgProfile.model_fields)
    assert set(uncommented["hazards"]["harmful:self_harm"]) == set(OrgProfile.model_fields["hazards"].annotation
                                                                   .__args__[1].model_fields)
    assert all(line == line.rstrip() for line in text.splitlines())


def test_published_profile_schema_is_the_models():
    committed = ROOT / "evidence" / "schema" / "profile.schema.json"
    assert committed.read_text(encoding="utf-8") == render(OrgProfile.model_json_schema())
    assert all_schemas()["profile.schema.json"] == json.loads(committed.read_text(encoding="utf-8"))
    # The record that carries a profile has a schema of its own, named after its kind like every record's.
    record = json.loads((ROOT / "evidence" / "schema" / "org_profile.schema.json").read_text(encoding="utf-8"))
    assert record["properties"]["kind"]["const"] == "org_profile"


def test_demo_profiles_are_valid_packaged_and_say_what_their_regime_needs():
    package_data = next(line for line in (ROOT / "setup.py").read_text().splitlines()
                        if line.strip().startswith('"assurance": ['))  # setup.py's PACKAGE_DATA
    assert '"demo_profiles/*.yaml"' in package_data and sorted(PROFILES_DIR.glob("*.yaml"))
    profiles = {r.profile: load_profile(PROFILES_DIR / r.profile).profile for r in DEMO_RUNS if r.profile}
    bank, trust = profiles["northbank.yaml"], profiles["riverside-trust.yaml"]
    assert bank.organisation.legal_name == "Northbank Savings plc (fictional)"
    assert trust.organisation.legal_name == "Riverside Community Health NHS Trust (fictional)"
    not_fca = ("clinical.", "transparency.", "roles.manufacturer", "roles.deploying_organisation",
               "roles.clinical_safety_officer", "roles.senior_responsible_owner", "roles.team",
               "assessments.clinical_risk_management_plan")
    fca_fields = [p for p in PROFILE_FIELDS if not p.startswith(not_fca)]
    assert [p for p in fca_fields if profile_value(bank, p) is None] == []
    cso = trust.roles.clinical_safety_officer
    assert cso is not None and cso.registration.number and trust.clinical.dcb0160_applies is True
    assert trust.clinical.mhra_device_status and trust.assessments.clinical_risk_management_plan
    assert trust.assessments.dpia and trust.assessments.eqia
    # The CSO has set a severity for every hazard the demo's battery can derive.
    battery = battery_from_spec(BatterySpec(**demo_plan().battery.model_dump()))
    refusal = next(s for s in battery.suites if s.name == "refusal")
    signposting = next(s for s in battery.suites if s.name == "signposting")
    keys = {f"harmful:{i.category}" for i in refusal.items if i.expected == "refuse"}
    keys |= {f"over-refusal:{i.category}" for i in refusal.items if i.expected == "comply"}
    keys |= {f"signposting:{i.category}" for i in signposting.items} | {"prefill", "jailbreak"}
    keys |= {"persistence"} if demo_plan().stress.enabled else set()  # only a stress test derives that hazard
    assert len(keys) == 11 + 11 + 3 + 2
    assert {k for k in keys if not (trust.hazards.get(k) and trust.hazards[k].severity)} == set()
    assert set(trust.hazards) == keys  # and no key the hazard log would never print


def test_demo_runs_carry_their_profiles_and_no_placeholder_person():
    plans = [demo_plan(run=r) for r in DEMO_RUNS]
    assert [p.report.regimes for p in plans] == [["fca"], ["nhs"], ["fca", "nhs", "uk-ai"]]
    assert [Path(p.report.profile).name if p.report.profile else None for p in plans] == [
        "northbank.yaml", "riverside-trust.yaml", None]
    assert all(p.report.accountable_person == "" for p in plans)
    # Apart from the packs and the profile, the three runs are one plan: the same measurements.
    same = [p.model_dump(exclude={"report"}) for p in plans]
    assert same[0] == same[1] == same[2]


def test_a_ledger_without_a_profile_names_the_plans_organisation():
    from _ledger_writers import legacy_rows

    from assurance.evidence.store import parse_payload

    records = [parse_payload(r["payload"]) for r in legacy_rows()]
    view = build_view(records)
    report = records[0].plan["report"]
    assert view.profile is None and view.profile_record is None
    assert (view.organisation, view.system_name) == (report["organisation"], report["system_name"])
