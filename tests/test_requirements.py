"""Requirement maps, evidence findings, checklists, crosswalks and their template partials."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _report_records import make_records, metric_record
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from assurance.evidence.records import JudgeValidationRecord, VerdictRecord
from assurance.profile import PROFILE_FIELDS, OrgProfile
from assurance.regimes import REGIMES
from assurance.report.view import build_view
from assurance.requirements.checklist import (
    STATUSES,
    checklist,
    context,
    crosswalk,
    gaps,
    org_rows,
    status,
)
from assurance.requirements.evidence import EVIDENCE, find
from assurance.requirements.fields import FieldValue
from assurance.requirements.finding import Finding
from assurance.requirements.maps import DATA_DIR, MapError, all_maps, load_map, regime_map

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

FULL_PROFILE = {
    "organisation": {"legal_name": "Example Bank plc", "registration": "FRN 123456", "contact": "ai@example.test"},
    "system": {"name": "Credit Assistant", "intended_use": "Answers retail customers' questions about credit cards.",
               "users": "Retail customers", "affected_people": "Customers, including those in vulnerable circumstances",
               "deployment_context": "Web chat, about 2,000 conversations a day", "out_of_scope": ["credit decisions"],
               "human_oversight": "Agents review escalated chats", "benefits": "Faster answers; chosen over FAQ search",
               "phase": "pilot", "change_management": "Model change board", "monitoring": "Monthly outcome testing",
               "contestability": "Complaints route via the FCA-regulated complaints process"},
    "model_risk": {"inventory_id": "MRM-0042", "risk_tier": "Tier 2", "tiering_rationale": "Customer-facing",
                   "base_model": {"name": "Acme AI Ltd", "model": "acme-chat-1b", "licence": "Apache-2.0"}},
    "roles": {"model_owner": {"name": "Alex Smith", "title": "Head of Digital"},
              "model_developer": {"name": "Sam Lee"},
              "validator": {"name": "Pat Kim", "independent": True},
              "accountable_smf": {"name": "Jane Doe", "smf": "SMF24"},
              "manufacturer": "Example Bank plc", "deploying_organisation": "Example Bank plc",
              "clinical_safety_officer": {"name": "Dr R. Patel", "registration": {"body": "GMC", "number": "7654321"}},
              "senior_responsible_owner": {"name": "Chris Doe"}, "team": "Digital Assist",
              "document_author": {"name": "Lee Ray"}, "reviewers": [{"name": "Kim Ode"}]},
    "clinical": {"dcb0129_applies": False, "dcb0160_applies": False, "mhra_device_status": "not a medical device",
                 "clinical_context": "none"},
    "assessments": {"dpia": {"reference": "DPIA-7"}, "eqia": {"reference": "EQIA-3"},
                    "clinical_risk_management_plan": {"reference": "n/a", "status": "not required"},
                    "security": {"reference": "PEN-2025-01"}},
    "transparency": {"atrs_tier": "tier 1 and 2", "public_summary": "A chat assistant.",
                     "website": "https://example.test/ai"},
}


def _view(**kw):
    return build_view(make_records(**kw))


def _with_checks(records, checks):
    """The records with their verdict's checks replaced (typed, as today's policy writes them)."""
    out = [r for r in records if not isinstance(r, VerdictRecord)]
    at = next(i for i, r in enumerate(records) if isinstance(r, VerdictRecord))
    out.insert(at, VerdictRecord(status="FAIL", checks=checks, reasons=["over-refusal too high"]))
    return out


def _over_refusal_failing():
    recs = make_records()
    legacy = next(r for r in recs if isinstance(r, VerdictRecord)).checks
    checks = [c.model_dump() for c in legacy]
    for c in checks:
        if c["name"] == "max_over_refusal_rate":
            c.update(observed=0.383, threshold=0.2, outcome="fail", counted_as="fail",
                     reason="benign prompts refused 38.3% against a maximum of 20.0%")
    return build_view(_with_checks(recs, checks))


def _rows(groups):
    return {r.id: r for g in groups for r in g.rows}


# --- the maps --------------------------------------------------------------------------------


def test_every_map_loads_and_names_its_file():
    paths = all_maps()
    assert {p.stem for p in paths} >= {*REGIMES, "eu-ai-act-annex-iv", "iso-42001"}
    for path in paths:
        m = load_map(path)
        assert m.name == path.stem
        assert all(s.version for s in m.sources)
        for group in m.groups:
            for req in group.requirements:
                assert set(req.evidence) <= set(EVIDENCE)
                assert set(req.profile) <= set(PROFILE_FIELDS)
                assert req.text.count(". ") == 0, f"{req.id}: one sentence"  # one sentence, our words
        for name in m.crosswalks:
            assert (DATA_DIR / "crosswalks" / f"{name}.yaml").is_file()


def test_every_evidence_kind_is_used_by_some_map():
    used = {k for p in all_maps() for r in load_map(p).requirements() for k in r.evidence}
    assert used == set(EVIDENCE)


def _ids(name, crosswalk_map=False):
    path = DATA_DIR / ("crosswalks" if crosswalk_map else "") / f"{name}.yaml"
    return {r.id for r in load_map(path).requirements()}


def test_coverage_of_the_standards():
    fca = _ids("fca")
    subs = {1: 3, 2: 6, 3: 6, 4: 5, 5: 3}
    assert {f"SS1/23 P{p}.{s}" for p, n in subs.items() for s in range(1, n + 1)} <= fca
    assert {"PRIN 2A.3", "PRIN 2A.4", "PRIN 2A.5", "PRIN 2A.6"} <= fca  # the four outcomes
    assert {"PRIN 2A.2.1R", "PRIN 2A.2.8R", "PRIN 2A.2.14R"} <= fca  # cross-cutting rules
    assert any(i.startswith("FG21/1") for i in fca) and any(i.startswith("SM&CR") for i in fca)
    nhs = _ids("nhs")
    assert {"DTAC C1.1", "DTAC C1.2", "DTAC C1.3", "DTAC C2", "DTAC C3", "DTAC C4", "DTAC D1"} <= nhs
    assert {"CSCR scope", "CSCR hazards", "CSCR residual risk", "CSCR declaration", "DCB0129 hazard log",
            "DCB0160 applicability", "MHRA status"} <= nhs
    ukai = load_map(DATA_DIR / "uk-ai.yaml")
    assert {f"Principle {i}" for i in range(1, 6)} <= {r.id for r in ukai.requirements()}
    titles = {g.title for g in ukai.groups}
    for heading in ("owner and responsibility", "description and rationale", "decision-making process",
                    "tool specification", "risks, mitigations and impact assessments"):
        assert any(heading in t for t in titles), heading
    assert {"ATRS 1.1", "ATRS 1.2", "ATRS 1.3", "ATRS 1.4", "ATRS 2.1.3", "ATRS 2.3.4", "ATRS 2.5.1"} <= _ids("uk-ai")
    assert {f"Annex IV §{i}" for i in range(1, 10)} == _ids("eu-ai-act-annex-iv", True)
    iso = load_map(DATA_DIR / "crosswalks" / "iso-42001.yaml")
    assert [g.title.split()[0] for g in iso.groups] == [f"A.{i}" for i in range(2, 11)]


def test_over_refusal_and_signposting_sit_in_consumer_duty_and_vulnerability_rows():
    fca = {r.id: r for r in regime_map("fca").requirements()}
    for rid in ("PRIN 2A.2.8R", "PRIN 2A.6", "FG21/1 action"):
        assert {"over_refusal_policy", "signposting"} <= set(fca[rid].evidence), rid


# --- malformed and new maps ------------------------------------------------------------------


def _write(path: Path, req: dict) -> Path:
    doc = {"name": path.stem, "title": "Acme regime",
           "sources": [{"id": "acme", "title": "Acme Standard", "publisher": "Acme", "version": "v1"}],
           "groups": [{"id": "g", "title": "Group", "source": "acme", "requirements": [req]}]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("bad, words", [
    ({"evidence": ["telepathy"]}, "unknown evidence kind 'telepathy'"),
    ({"profile": ["system.colour"]}, "unknown profile field 'system.colour'"),
    ({"owner": "roles.astrologer"}, "unknown owner role"),
    ({"colour": "red"}, "unknown field"),
])
def test_a_malformed_map_gives_one_error_naming_file_and_requirement(tmp_path, bad, words):
    req = {"id": "ACME 7.1", "title": "T", "text": "Something is done.", "owner": "roles.model_owner", **bad}
    path = _write(tmp_path / "acme.yaml", req)
    with pytest.raises(MapError) as err:
        load_map(path)
    msg = str(err.value)
    assert str(path) in msg and "ACME 7.1" in msg and words in msg


def test_a_map_that_is_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("groups: [\n", encoding="utf-8")
    with pytest.raises(MapError, match="broken.yaml"):
        load_map(path)


def test_a_new_regime_is_a_data_change_only(tmp_path):
    (tmp_path / "crosswalks").mkdir()
    req = {"id": "ACME 1", "title": "Inventory", "text": "The model is in the inventory.",
           "evidence": ["model_identity"], "profile": ["model_risk.inventory_id"], "owner": "roles.model_owner"}
    _write(tmp_path / "acme.yaml", req)
    view = _view()
    rows = _rows(checklist("acme", view, None, data_dir=tmp_path))
    assert rows["ACME 1"].status == "partly"  # measured identity, inventory id not provided
    assert rows["ACME 1"].citation == "Acme Standard, ACME 1"
    full = OrgProfile.model_validate(FULL_PROFILE)
    assert _rows(checklist("acme", view, full, data_dir=tmp_path))["ACME 1"].status == "met"
    ctx = context("acme", view, None, data_dir=tmp_path)
    assert [o.required_by for o in ctx["org_rows"]] == [["ACME 1"], ["ACME 1"]]  # the field and the owner role


# --- statuses --------------------------------------------------------------------------------


def _f(state):
    return Finding(state, "x")


def _fv(present):
    return FieldValue("system.name", "System name", "Acme" if present else None)


@pytest.mark.parametrize("findings, fields, expected", [
    ([_f("met"), _f("not met")], [_fv(True)], "not met"),
    ([_f("met")], [_fv(True)], "met"),
    ([], [_fv(True), _fv(True)], "stated by organisation"),
    ([_f("not measured")], [_fv(False)], "organisation to supply"),
    ([], [], "organisation to supply"),
    ([_f("met")], [_fv(False)], "partly"),
    ([_f("partly")], [], "partly"),
    ([], [_fv(True), _fv(False)], "partly"),
])
def test_the_status_rule(findings, fields, expected):
    assert status(findings, fields) == expected


def test_without_a_profile_every_row_has_a_status_and_profile_only_rows_are_for_the_organisation():
    view = _view()
    for regime in REGIMES:
        m = regime_map(regime)
        rows = _rows(checklist(regime, view, None))
        assert set(rows) == {r.id for r in m.requirements()}
        for req in m.requirements():
            row = rows[req.id]
            assert row.status in STATUSES
            if not req.evidence:
                assert row.status == "organisation to supply", req.id
            assert row.owner  # the role's label when no one is named
        missing = org_rows(regime, None)
        assert missing and not any(o.present for o in missing)


def test_over_refusal_failing_is_not_met_in_the_consumer_duty():
    rows = _rows(checklist("fca", _over_refusal_failing(), None))
    for rid in ("PRIN 2A.6", "PRIN 2A.2.8R", "PRIN 2A.2.14R", "FG21/1 action"):
        assert rows[rid].status == "not met", rid
    finding = next(f for f in rows["PRIN 2A.6"].findings if f.kind == "over_refusal_policy")
    assert finding.state == "not met" and "15.0% [5.2–36.0] of 20 benign prompts" in finding.summary
    assert "against a maximum of 20.0%" in finding.summary and "turned away" in finding.summary
    assert finding.records[0] == "verdict" and "metric tuned/over_refusal_rate/overall" in finding.records


def test_a_full_profile_and_one_missing_field():
    view = _view(verdict="PASS")
    full = OrgProfile.model_validate(FULL_PROFILE)
    rows = org_rows("fca", full)
    assert all(o.present for o in rows)
    assert _rows(checklist("fca", view, full))["SS1/23 P1.1"].owner == "Alex Smith (Model owner)"
    less = OrgProfile.model_validate({**FULL_PROFILE, "model_risk": {**FULL_PROFILE["model_risk"],
                                                                     "inventory_id": None}})
    row = next(o for o in org_rows("fca", less) if o.path == "model_risk.inventory_id")
    assert not row.present and row.required_by == ["SS1/23 P1.2"]
    found = gaps("fca", view, less)
    assert [o.path for o in found["missing"]] == ["model_risk.inventory_id"]
    assert _rows(checklist("fca", view, less))["SS1/23 P1.2"].status == "partly"


def test_a_standard_the_organisation_says_does_not_apply_keeps_only_its_applicability_row():
    full = OrgProfile.model_validate(FULL_PROFILE)  # neither DCB0129 nor DCB0160 applies
    groups = {g.id: g for g in checklist("nhs", _view(), full)}
    assert [r.id for r in groups["dcb0129-process"].rows] == ["DCB0129 applicability"]
    assert groups["dcb0129-process"].rows[0].status == "stated by organisation"
    assert groups["dcb0129-cscr"].rows == [] and "DCB0129 applies: no" in groups["dcb0129-cscr"].not_applicable
    assert [r.id for r in groups["dcb0160"].rows] == ["DCB0160 applicability"]
    cso = next(o for o in org_rows("nhs", full) if o.path == "roles.clinical_safety_officer")
    assert cso.required_by == ["DTAC C1.2"]  # DTAC still asks; the DCB rows no longer do
    bare = {g.id: g for g in checklist("nhs", _view(), None)}  # unanswered: every row is listed
    assert len(bare["dcb0129-cscr"].rows) == 7 and bare["dcb0129-cscr"].not_applicable == ""
    html = _env().get_template("sections/checklist.html").render(**context("nhs", _view(), full))
    assert "Not applicable: the organisation states" in html


def test_all_five_statuses_are_reached_on_the_shipped_maps():
    seen = set()
    for profile in (None, OrgProfile.model_validate(FULL_PROFILE)):
        for regime in REGIMES:
            seen |= {r.status for g in checklist(regime, _view(), profile) for r in g.rows}
    assert seen == set(STATUSES)


# --- evidence findings -----------------------------------------------------------------------


def test_attack_findings_give_worst_and_best_and_are_partly_without_a_check():
    f = find("prefill_robustness", _view())
    assert f.state == "partly" and "not gated" in f.summary
    assert "worst at k = 40: 35.0% [18.1–56.7] of 20" in f.summary and "best at k = 5: 10.0%" in f.summary
    assert "metric tuned/prefill:attack_success_rate/overall/prefill-k40" in f.records


def test_persistence_follows_the_verdicts_checks_and_says_when_not_measured():
    assert find("persistence", _view()).state == "not met"  # max_stress_refusal_drop failed
    assert find("persistence", _view(verdict="PASS")).state == "met"
    assert find("persistence", _view(extended=False)).state == "not measured"


def test_signposting_notes_a_category_that_fell_below_the_base_model():
    recs = [r for r in make_records() if not (getattr(r, "name", "") == "signposting_rate" and r.stage == "tuned"
                                             and r.category == "advice_self_harm")]
    recs.append(metric_record("tuned", "signposting_rate", "advice_self_harm", 5, 21, suite="signposting"))
    recs.append(metric_record("base", "signposting_rate", "advice_self_harm", 6, 21, suite="signposting"))
    f = find("signposting", build_view(recs))
    assert f.state == "partly" and "fell below the base model (23.8% [10.6–45.1] of 21 against 28.6%" in f.summary


def test_provenance_findings():
    view = _view()
    assert find("model_identity", view).state == "met"
    assert find("ledger_sealed", view).state == "met"
    assert find("ledger_sealed", _view(failed=True)).state == "not met"
    assert find("signed_manifest", view).state == "partly"
    assert find("release_gate", view).state == "not met"
    assert find("judge_validated", view).state == "not measured"
    assert "Jane Doe" in find("signoffs_recorded", view).summary


def test_a_judge_validated_against_human_labels_is_met_with_its_interval():
    rec = JudgeValidationRecord(judge_id="keyword-refusal", judge_version="1", judge_digest="sha256:" + "44" * 32,
                                labels_file="labels.jsonl", labels_digest="sha256:" + "66" * 32, labels_format="ours",
                                n=200, accuracy=0.915, kappa=0.82, precision=0.9, recall=0.93, f1=0.915,
                                intervals={"accuracy": {"low": 0.87, "high": 0.95}}, confusion={"tp": 90},
                                n_resamples=1000, seed=0, human_refusal_rate=0.5, judge_refusal_rate=0.52)
    f = find("judge_validated", build_view([*make_records(), rec]))
    assert f.state == "met" and "91.5% [87.0–95.0] of 200 rows of labels.jsonl (kappa 0.82)" in f.summary
    assert f.records == ["judge_validation keyword-refusal@1"]


# --- crosswalks and templates ----------------------------------------------------------------


def test_crosswalk_rows_are_measured_profile_or_gap():
    full = OrgProfile.model_validate(FULL_PROFILE)
    annex = crosswalk("eu-ai-act-annex-iv", _view(verdict="PASS"), full)
    cov = {x.row.id: x.coverage for x in annex.rows}
    assert cov["Annex IV §4"] == "measured" and cov["Annex IV §9"] == "profile" and cov["Annex IV §8"] == "gap"
    bare = {x.row.id: x for x in crosswalk("eu-ai-act-annex-iv", _view(), None).rows}
    assert bare["Annex IV §9"].coverage == "gap" and "Monitoring in use" in bare["Annex IV §9"].gap


def _env():
    # As the pack renderer sets it up (render.py): autoescaped, strict, trimmed blocks.
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=lambda x: f"{x * 100:.1f}%", rate=lambda r: str(r))
    return env


def test_partials_render_the_context():
    profile = OrgProfile.model_validate({"system": {"name": "<script>alert(1)</script>"}})
    ctx = context("fca", _over_refusal_failing(), profile)
    org = _env().get_template("sections/org_profile.html").render(**ctx)
    assert '<span class="short">NOT PROVIDED: required by SS1/23 P1.2</span>' in org
    assert "&lt;script&gt;" in org and "<script>" not in org
    check = _env().get_template("sections/checklist.html").render(**ctx)
    assert "PRIN 2A.6" in check and 'class="status st-not-met short">not met<' in check
    assert "organisation to supply" in check and "records: verdict, metric tuned/over_refusal_rate/overall" in check
    cross = _env().get_template("sections/crosswalk.html").render(**ctx)
    assert "Annex IV §9" in cross and "A.10.3" in cross and ">gap<" in cross
    assert cross.count('style="table-layout: fixed; width: 100%;"') == 2


def test_old_ledgers_still_give_a_checklist():
    rows = _rows(checklist("nhs", _view(extended=False), None))
    assert rows["CSCR hazards"].status == "not met"
    assert next(f for f in rows["CSCR hazards"].findings if f.kind == "signposting").state == "not measured"
