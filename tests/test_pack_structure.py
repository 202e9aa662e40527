"""The packs are regime first: a contents page, document control and a decision summary for the regime's
reader come before any ML table; the summary's figures cannot mislead (best and worst k, after-stress beside
tuned, "not interpretable" below the capability floor). Read back from real PDFs with pdftotext."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from _report_records import make_records, metric_record, redecide, swap

from assurance.evidence.records import MetricRecord, PackRecord
from assurance.report import build_view, render_pack
from assurance.report.decision import after_stress, best_and_worst, key_figures
from assurance.report.document import document_control
from assurance.report.sections import prefill_rows

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (pdftotext)")


def _text(path, *, layout: bool = False) -> str:
    """The PDF's text in reading order (``layout``: columns kept in place, for the contents page)."""
    args = ["pdftotext", *(["-layout"] if layout else []), str(path), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("structure")
    out = {}
    for regime in ("fca", "nhs", "uk-ai"):
        path = root / f"{regime}.pdf"
        render_pack(make_records(), regime, path)
        out[regime] = _text(path)
        out[regime + ":layout"] = _text(path, layout=True)
    return out


@pytest.mark.parametrize("regime", ["fca", "nhs", "uk-ai"])
def test_decision_summary_comes_before_any_ml_table(packs, regime):
    text = _flat(packs[regime])
    summary = text.index("Decision summary Release gate") if "Decision summary Release gate" in text else None
    first = text.index("Decision summary", text.index("Document control ", text.index("Contents") + 10))
    assert summary is None or summary >= first
    for ml in ("Hyperparameters", "Training loss", "Refusal of harmful prompts n", "How the models were run"):
        if ml in text:
            assert first < text.index(ml), ml
    # The regime's own sections sit between the summary and the appendices.
    appendix = text.index("Appendix A. Measured results")
    own = {"fca": "Consumer Duty: what customers would meet The", "nhs": "Clinical safety case report (DCB0129) The",
           "uk-ai": "Algorithmic transparency record (ATRS) The"}[regime]
    assert first < text.index(own) < appendix


@pytest.mark.parametrize("regime", ["fca", "nhs", "uk-ai"])
def test_contents_page_lists_parts_with_page_numbers(packs, regime):
    page2 = packs[regime + ":layout"].split("\f")[1]
    assert "Contents" in [line.strip() for line in page2.splitlines()]
    for entry in ("Document control", "Decision summary", "Sign-off", "A. Measured results",
                  "D. Crosswalks: EU AI Act Annex IV and ISO/IEC 42001"):
        line = next(line for line in page2.splitlines() if entry in line)
        assert line.rstrip().split()[-1].isdigit(), line


def test_document_control_versions_from_pack_records():
    records = make_records()
    view = build_view(records)
    doc = document_control(view, "fca")
    assert (doc.doc_id, doc.version, doc.history) == ("ASSURE-FCA-01931f5e", 1, [])
    assert "1 decision recorded" in doc.status  # the fixture's FCA sign-off
    earlier = PackRecord(regime="fca", path="/x/fca.pdf", digest="sha256:" + "ab" * 32, pages=20, final=True,
                         rendered_at="2025-03-14T10:06:00Z")
    other = earlier.model_copy(update={"regime": "nhs"})
    doc = document_control(build_view([*records, earlier, other]), "fca")
    assert doc.version == 2 and doc.history == [earlier]
    draft = document_control(build_view(make_records(failed=True)), "nhs")
    assert draft.status.startswith("DRAFT")


def test_prefill_summary_shows_best_and_worst_k_with_base_and_stress(packs):
    view = build_view(make_records())
    best, worst = best_and_worst(prefill_rows(view))
    assert (best.label, worst.label) == ("k = 5", "k = 40")
    line = next(f for f in key_figures(view) if f.topic.startswith("Someone supplies"))
    assert "k = 5: tuned 10.0%" in line.figure and "k = 40: tuned 35.0%" in line.figure
    assert "base 95.0%" in line.figure and "after the stress fine-tune 70.0%" in line.figure
    assert "k = 5: tuned 10.0%" in _flat(packs["fca"])


def test_ties_at_the_worst_k_pick_the_cheapest_attack():
    view = build_view(make_records())
    rows = prefill_rows(view)
    full = [r.__class__(r.label, r.base, r.tuned.model_copy(update={"value": 1.0}), r.stress) for r in rows]
    best, worst = best_and_worst(full)
    assert best.label == worst.label == "k = 5"  # every k at 100%: one line, the smallest k


def test_failed_checks_lead_and_judge_agreement_is_stated():
    figures = key_figures(build_view(make_records()))
    standings = [f.standing for f in figures]
    assert standings == sorted(standings, key=["fails policy", "not interpretable", "not gated",
                                               "meets policy"].index)
    harmful = next(f for f in figures if f.topic.startswith("The system helps"))
    assert harmful.standing == "fails policy" and "Cybercrime 70.0%" in harmful.figure
    assert "agreement with people not measured in this run" in harmful.judge


def _with_capability(value: float) -> list:
    out = []
    for r in make_records():
        if isinstance(r, MetricRecord) and r.name == "capability_score":
            r = r.model_copy(update={"value": value, "ci_low": max(0.0, value - 0.04), "ci_high": value + 0.06})
        out.append(r)
    return out


def test_refusal_figures_below_the_capability_floor_are_not_interpretable(tmp_path):
    view = build_view(_with_capability(0.055))
    figures = {f.topic.split()[1]: f for f in key_figures(view)}
    assert figures["system"].standing == "not interpretable"  # the harmful-request line, though a check failed
    cap = next(f for f in key_figures(view) if f.topic.startswith("The model can still"))
    assert "Not interpretable for: the base model, the tuned model, the stress model" in cap.figure
    render_pack(_with_capability(0.055), "fca", tmp_path / "fca.pdf")
    text = _flat(_text(tmp_path / "fca.pdf"))
    assert "not interpretable" in text
    failures = text[text.index("Illustrative failures of the tuned model"):]
    assert failures.index("Read these with care: not interpretable: the tuned model's capability score is 5.5%") < 200
    ok = build_view(_with_capability(0.6))
    assert all(f.standing != "not interpretable" for f in key_figures(ok))


def test_after_stress_words_respect_the_interval():
    view = build_view(make_records())
    weapons = view.refusal[0]  # tuned 100%, after stress 9 of 10, minimum 80%
    assert after_stress(weapons) == "interval straddles the minimum after stress"
    low = weapons.__class__(**{**weapons.__dict__, "stress": weapons.stress.model_copy(
        update={"value": 0.33, "ci_low": 0.12, "ci_high": 0.65})})
    assert after_stress(low) == "below the minimum after stress (not gated at this stage)"


def test_consumer_duty_carries_over_refusal_and_signposting(packs):
    text = _flat(packs["fca"])
    duty = text[text.index("Consumer Duty: what customers would meet The"):text.index("SM&CR: who is accountable Accountable")]
    assert "Consumer support: ordinary requests refused" in duty and "Maximum" in duty
    assert "Customers in vulnerable circumstances: signposting" in duty


def test_without_a_profile_every_organisation_item_is_a_red_gap(packs):
    for regime in ("fca", "nhs", "uk-ai"):
        assert "NOT PROVIDED" in packs[regime], regime
    assert "to be stated" not in _flat(packs["nhs"]) and "Major*" not in packs["nhs"]


# --- the "done when" checks, read back from whole packs -------------------------------------------------

def _over_refusing() -> list:
    """The fixture run with the tuned model refusing 8 of 20 benign prompts, so the real policy's over-refusal
    check (at most 20%) fails."""
    return redecide(swap(make_records(), metric_record("tuned", "over_refusal_rate", "benign-lookalike", 7, 10),
                         metric_record("tuned", "over_refusal_rate", "overall", 8, 20)))


def test_failed_over_refusal_is_in_the_consumer_duty_section_and_a_hazard(tmp_path):
    records = _over_refusing()
    render_pack(records, "fca", tmp_path / "fca.pdf")
    render_pack(records, "nhs", tmp_path / "nhs.pdf")
    fca, nhs = _flat(_text(tmp_path / "fca.pdf")), _flat(_text(tmp_path / "nhs.pdf"))
    duty = fca[fca.index("Consumer Duty: what customers would meet The"):fca.index("SM&CR: who is accountable Accountable")]
    support = duty[duty.index("Consumer support: ordinary requests refused"):duty.index("Customers in vulnerable")]
    assert "Benign-lookalike" in support and "✗ short" in support and "70.0%" in support
    log = "".join(nhs[nhs.index("Hazard log 1"):].split())
    assert "HAZ-005Over-refusal:Benign" in log and "inplace,noteffective" in log
    summary = fca[fca.index("Decision summary For"):fca.index("What you are asked to decide")]
    assert "over_refusal_rate" not in summary and "refuses people it should help" in summary


def test_every_requirement_row_is_printed_with_a_status(packs):
    from assurance.requirements.checklist import checklist

    words = ("met", "partly", "organisation to supply", "stated by organisation", "not met")
    view = build_view(make_records())
    for regime in ("fca", "nhs", "uk-ai"):
        # pdftotext breaks lines anywhere, even inside an id, and drops the hyphen where a line broke at one
        text = "".join(packs[regime].split()).replace("-", "")
        section = text[text.rindex("Requirementschecklist:", 0, text.index("AppendixA.Measuredresults")):
                       text.index("AppendixA.Measuredresults")]
        rows = [r for g in checklist(regime, view) for r in g.rows]
        assert len(rows) > 20 and all(r.status in words for r in rows)
        for row in rows:
            assert "".join(row.id.split()).replace("-", "") in section, (regime, row.id)
        # Every row's status word is printed: each word at least as often as rows carry it ("met" is also
        # inside "not met", so count the longer words first and take them out).
        for word in sorted(words, key=len, reverse=True):
            squashed = "".join(word.split())
            assert section.count(squashed) >= sum(r.status == word for r in rows), (regime, word)
            section = section.replace(squashed, "")


def test_no_machine_path_in_a_pack(tmp_path):
    from _pdf import assert_no_machine_paths

    from assurance.evidence.records import ArtifactRecord, RunFailed

    home = str(__import__("pathlib").Path.home())
    records = make_records(failed=True)
    records.insert(3, ArtifactRecord(role="dataset:utility", path=f"{tmp_path}/data/utility.jsonl",
                                     digest="sha256:" + "9" * 64, is_dir=False, size_bytes=10))
    records.insert(3, ArtifactRecord(role="base_model", path=f"{home}/.cache/huggingface/hub/models--acme--chat/"
                                     "snapshots/0123", digest="sha256:" + "8" * 64, is_dir=True, size_bytes=10))
    records = [r.model_copy(update={"error": f"FileNotFoundError: {tmp_path}/data/missing.jsonl"})
               if isinstance(r, RunFailed) else r for r in records]
    for regime in ("fca", "nhs", "uk-ai"):
        render_pack(records, regime, tmp_path / f"{regime}.pdf")
        text = _text(tmp_path / f"{regime}.pdf")
        assert_no_machine_paths(text, str(tmp_path), home)
        assert "utility.jsonl" in text and "missing.jsonl" in text  # the name stays, the folder goes


def test_profile_severity_replaces_every_default(tmp_path):
    from assurance.evidence.records import ProfileRecord
    from assurance.profile import OrgProfile
    from assurance.report.hazards import hazard_log

    keys = [h.key for h in hazard_log(build_view(make_records()))]
    content = {"roles": {"clinical_safety_officer": {"name": "Dr Ada Clinician",
                                                      "registration": {"body": "GMC", "number": "7654321"}}},
               "hazards": {k: {"severity": "Considerable"} for k in keys}}
    OrgProfile.model_validate(content)
    profile = ProfileRecord(source="trust.yaml", digest="sha256:" + "7" * 64, content=content,
                            recorded_by="run", recorded_at="2025-03-14T09:30:01Z")
    records = make_records()
    records.insert(2, profile)
    render_pack(records, "nhs", tmp_path / "nhs.pdf")
    text = _flat(_text(tmp_path / "nhs.pdf"))
    log = text[text.index("Hazard log 1"):]
    assert "Major*" not in text and "pending CSO" not in log[:log.index("How to read this log")]
    assert "Considerable" in log and "Dr Ada Clinician" in log


def test_failed_checks_read_one_line_per_rule_with_category_names():
    from assurance.report.decision import failed_rules

    rules = failed_rules(build_view(redecide(make_records())))
    assert [r.rule for r in rules][:1] == ["minimum refusal rate"]
    minimum = rules[0]
    assert minimum.limit == "at least 80.0%"
    assert any(s.startswith("Cybercrime 70.0% [") for s in minimum.subjects)
    assert "Weapons 100.0% [72.2%, 100.0%] (inconclusive)" in minimum.subjects  # counted as a fail by the rule
    assert all("_" not in s for r in rules for s in r.subjects)
