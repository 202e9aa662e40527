"""The category registry (names and legal basis) and the honest wording of packs.

A pack must print human names, not snake_case ids; must cite the UK offences a
category stands for or call it a policy category; must never call hate content
an Equality Act offence; and must say what was measured ("the refusal judge saw
no refusal") unless a harm judge was recorded.
"""

from __future__ import annotations

import json
import re

import pytest
from _report_records import make_records, pdf_text

from assurance.battery.builtin import DATA_DIR
from assurance.battery.categories import category, category_name, prettify, registry
from assurance.evidence.records import BatteryRecord, MetricRecord
from assurance.report import sections
from assurance.report.hazards import hazard_log
from assurance.report.measured import wording
from assurance.report.render import render_html, render_pack
from assurance.report.view import build_view

# The test run's made-up categories, renamed to built-in ids (cybercrime and the advice ids already are).
BUILTIN = {"weapons": "violence_weapons", "self-harm": "self_harm",
           "benign-general": "benign_privacy", "benign-lookalike": "benign_cybercrime"}


def _builtin_ids() -> set[str]:
    ids = set()
    for path in DATA_DIR.glob("assurance-*-v1.jsonl"):
        ids |= {json.loads(line)["category"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    return ids


def _remap(value, key=None):
    if isinstance(value, dict):
        return {k: _remap(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_remap(v, key) for v in value]
    if key in ("category", "subject", "categories") and isinstance(value, str):
        return BUILTIN.get(value, value)
    return value


def builtin_records(**kw):
    """The report tests' run, its categories renamed to built-in ids throughout (metrics, samples, checks)."""
    return [type(r).model_validate(_remap(r.model_dump())) for r in make_records(**kw)]


def test_every_builtin_category_has_an_entry_and_no_stale_ones():
    ids = _builtin_ids()
    assert len(ids) == 29  # 11 harmful, 11 benign, 3 advice, 4 capability
    assert set(registry()) == ids
    for cid, entry in registry().items():
        assert entry.name and entry.name != cid and "_" not in entry.name, cid
        assert entry.description.endswith("."), cid


def test_offence_categories_cite_acts_and_policy_categories_say_policy():
    acts = re.compile(r"^[A-Z][A-Za-z ,()]+ (Act|Regulations) (18|19|20)\d\d$")
    for cid, entry in registry().items():
        for o in entry.offences:
            assert acts.match(o.act), (cid, o.act)
        if entry.basis == "offence":
            assert entry.offences, cid
        if entry.basis == "policy":
            assert entry.description.startswith("Policy category"), cid
            assert entry.basis_text == "policy category (not an offence)"
    # Lawful content tested by choice is a policy category, never an offence category.
    for cid in ("sexual_content", "misinformation", "dangerous_medical"):
        assert registry()[cid].basis == "policy", cid
    assert "lawful" in registry()["sexual_content"].description
    assert "s.179" in registry()["misinformation"].description
    assert {o.act for o in registry()["self_harm"].offences} == {"Suicide Act 1961", "Online Safety Act 2023"}
    assert "Data Protection Act 2018" in {o.act for o in registry()["privacy"].offences}
    hate = {o.act for o in registry()["hate_harassment"].offences}
    assert {"Public Order Act 1986", "Protection from Harassment Act 1997", "Online Safety Act 2023"} <= hate


def test_the_equality_act_is_never_an_offence():
    for cid, entry in registry().items():
        assert all("Equality Act" not in o.act and "Equality Act" not in o.what for o in entry.offences), cid
        if "Equality Act" in entry.description:
            assert "civil" in entry.description and "creates no offence" in entry.description, cid


def test_unknown_categories_are_prettified_and_not_mapped():
    entry = category("unknown_cat")
    assert (entry.name, entry.basis, entry.offences) == ("Unknown cat", "not mapped", ())
    assert prettify("xstest_safe_homonyms") == "Xstest safe homonyms"
    assert category_name("overall") == "overall"  # the total row keeps its styling key
    assert category_name("violence_weapons") == "Violence and weapons"


def test_pack_tables_show_names_and_the_legal_basis(tmp_path):
    records = builtin_records()
    out = tmp_path / "nhs.pdf"
    render_pack(records, "nhs", out)
    text = " ".join(pdf_text(out).split())
    names = ("Violence and weapons", "Cybercrime", "Suicide and self-harm", "Privacy and personal data (benign)",
             "Cybercrime (benign)", "Advice: suicide and self-harm", "Advice: financial")
    for name in names:
        assert name in text, name
    for cid in (*BUILTIN.values(), "advice_self_harm", "advice_medical", "advice_financial"):
        assert cid not in text, cid
    assert "Suicide Act 1961 s.2" in text and "Computer Misuse Act 1990" in text
    assert "completes the harmful answer" not in text and "Equality Act offence" not in text
    assert "the refusal judge saw no refusal" in text


def test_wording_without_a_harm_judge_says_non_refusal():
    view = build_view(builtin_records())
    extra = sections.context(view)
    assert extra["attack_words"].harm_judge is None and extra["refusal_words"].harm_judge is None
    haz = hazard_log(view)
    prefill = next(h for h in haz if h.key == "prefill")
    assert "the refusal judge saw no refusal" in prefill.hazard
    assert "non-refusal rate under attack" in prefill.finding
    assert "harm judge" not in prefill.hazard
    assert "the refusal judge saw no refusal" in haz[0].hazard
    assert haz[0].title == "Violence and weapons" and haz[0].key == "harmful:violence_weapons"


@pytest.mark.parametrize("entry,expected", [
    ({"id": "llama-guard", "version": "3", "digest": "sha256:" + "ab" * 32, "suite": "prefill, jailbreak",
      "measures": "harm", "role": "harm"}, "llama-guard@3"),
    ({"id": "llama-guard", "version": "3", "digest": "sha256:" + "ab" * 32, "suite": "refusal (secondary)",
      "measures": "harm", "role": "secondary"}, None),  # agreement only: no figure of it is shown
])
def test_wording_keys_on_a_recorded_harm_judge(entry, expected):
    records = builtin_records()
    records = [r.model_copy(update={"judges": [*r.judges, entry]}) if isinstance(r, BatteryRecord) else r
               for r in records]
    view = build_view(records)
    words = wording(view, attacks=True)
    assert words.harm_judge == expected
    html = " ".join(render_html(view, "nhs").split())
    if expected:
        assert words.rate_name == "attack success rate"
        assert f"the harm judge ({expected}) judged the answer harmful" in html
    else:
        assert "non-refusal rate under attack" in html and "judged the answer harmful" not in html
    # The refusal suite was still scored by the refusal judge.
    assert wording(view, attacks=False).harm_judge is None
    assert "the system may help with a harmful request (measured: the refusal judge saw no refusal)" in html.lower()


def test_wording_of_a_new_run_scored_by_the_refusal_judge_alone_is_non_refusal():
    # A new run records non_refusal_rate always and attack_success_rate only for a harm judge: the words and
    # the attack tables' labels agree that nothing measured harm.
    records = [r.model_copy(update={"name": "non_refusal_rate"})
               if isinstance(r, MetricRecord) and r.name == "attack_success_rate" else r for r in builtin_records()]
    view = build_view(records)
    assert wording(view, attacks=True).harm_judge is None
    assert [f.metric for f in sections.attack_figures(view)] == ["non_refusal_rate"]
