"""Pack rendering of the v2 battery (attacks, signposting, capability, sampled decoding), the
safety recipes and the persistence stress test, from hand-built records (fixtures in _report_records)."""

from __future__ import annotations

import pytest
from _report_records import BATTERY_V2, CONSTRAINED_REF, STRESS_REF, make_records, pdf_text

from assurance.report import build_view, render_pack


def _section(text: str, start: str, end: str) -> str:
    """The part of a pack's text from heading ``start`` to heading ``end``."""
    text = " ".join(text.split())  # line breaks fall anywhere
    i = text.index(start)
    return text[i:text.index(end, i + len(start))]


@pytest.fixture(scope="module")
def new_packs(tmp_path_factory):
    """The three packs of the extended fixture, rendered once for the tests below."""
    root = tmp_path_factory.mktemp("packs")
    out = {}
    for regime in ("fca", "nhs", "uk-ai"):
        path = root / f"{regime}.pdf"
        pages = render_pack(make_records(), regime, path)
        out[regime] = (pages, pdf_text(path), path)
    return out


@pytest.mark.parametrize("regime", ["fca", "nhs", "uk-ai"])
def test_new_sections_appear(new_packs, regime):
    pages, text, _ = new_packs[regime]
    flat = "".join(text.split())
    for heading in ("Attacks", "Prefilling attack", "Jailbreak templates", "Signposting on regulated-advice prompts",
                    "Capability retention", "Sampled decoding across seeds",
                    "Does safety persist after downstream fine-tuning?", "The evaluation battery and its judges",
                    "Persistence stress fine-tune"):
        assert "".join(heading.split()) in flat, heading
    # Per-k prefill table (k, tuned ASR) and the jailbreak template.
    assert "k = 40" in text and "roleplay" in text and "base64" in text
    # The old run's attack figures were keyword-judged: named for what they measured, never "attack success".
    assert "Non-refusalunderattack(refusaljudge:keyword-refusal@1)" in flat and "reportsnoattacksuccessrate" in flat
    # Signposting and capability per category with Wilson intervals.
    assert "Advice: suicide and self-harm" in text and "Capability: arithmetic" in text and "61.9% [40.9–79.2]" in text
    # Sampled decoding: mean, sd, min, max across the seeds.
    assert "Seeds: 0, 1, 2" in text and "4.2 pp" in text and "56.7%" in text and "64.4%" in text
    # Battery: every suite digest and every judge's identity and digest.
    for digest in BATTERY_V2["suite_digests"].values():
        assert digest in flat
    for judge in BATTERY_V2["judges"]:
        assert judge["id"] in flat and judge["digest"] in flat
    # Fine-tuning: objective, augmentation, recipe settings and literature, for both fine-tunes.
    assert "token-wise constrained objective" in text and "deep-alignment safety-recovery examples" in text
    assert "constrained.beta_early" in flat and "deep_alignment.prefilled_examples_seen" in flat
    assert "".join(CONSTRAINED_REF.split()) in flat and "".join(STRESS_REF.split()) in flat
    assert "builtin:benign_stress" in flat
    # Persistence: the policy limit (set) and the one left null.
    persist = _section(text, "Does safety persist", "Illustrative failures")
    assert "drop ≤ 5.0 pp" in persist and "✗ over limit" in persist and "null: measured and reported, not gated" in persist
    assert "-10.0 pp" in persist and "+35.0 pp" in persist  # refusal fell, prefill k=40 ASR rose


def test_regime_sections_cite_new_evidence(new_packs):
    fca, nhs, ukai = (" ".join(new_packs[r][1].split()) for r in ("fca", "nhs", "uk-ai"))
    fca_flat = "".join(fca.split())
    # SS1/23: the checklist's evidence cites the attacks, the judges and the persistence failure.
    ss123 = _section(fca, "SS1/23 Principle 1", "Consumer Duty")
    assert "Prefilling-attack robustness (partly)" in ss123 and "Jailbreak robustness (partly)" in ss123
    assert "persistence checks failed" in ss123
    duty = _section(fca, "Consumer Duty: what customers would meet The", "SM&CR: who is accountable Accountable")
    assert "After stress" in duty and "Consumer support" in duty and "Customers in vulnerable circumstances" in duty
    assert "MoneyHelper" in fca_flat
    # The decision summary leads with the attacks at their best and worst k, after-stress beside tuned.
    summary = _section(fca, "Decision summary For", "What you are asked to decide")
    assert "k = 5: tuned 10.0%" in summary and "k = 40: tuned 35.0%" in summary
    assert "after a benign stress fine-tune 80.0%" in summary
    log = "".join(_section(nhs, "Hazard log 11 hazards", "How to read this log").split())
    assert "11hazardsfromthisrun" in log
    for hazard in ("Prefillingattack", "Jailbreaktemplates", "Safetyerodesafterdownstreamfine-tuning",
                   "Over-refusal", "Signposting"):
        assert hazard in "".join(nhs.split()), hazard
    assert "HAZ-011" in "".join(nhs.split())
    principles = _section(ukai, "UK AI regulatory principles The", "Algorithmic transparency record (ATRS) The")
    assert "Prefilling attack, non-refusal rate under attack" in principles
    assert "signposting-keyword" in ukai and "exact-match" in ukai


def test_main_tables_use_greedy_refusal_suite_only(new_packs):
    view = build_view(make_records())
    weapons = view.refusal[0]
    assert weapons.category == "weapons"
    # The greedy refusal-suite records, not the 77% jailbreak ASR nor the 33.3% sampled refusal.
    assert (weapons.base.value, weapons.tuned.value, weapons.stress.value) == (0.7, 1.0, 0.9)
    for row in view.refusal + view.over_refusal:
        for rec in (row.base, row.tuned, row.stress):
            assert rec is None or (rec.suite == "refusal" and rec.decoding == "greedy" and rec.variant is None)
    # The persistence check (category "overall") belongs to its own section, not to the overall row.
    # The policy gates categories, not the overall row, so the row has no check (and the report
    # never re-applies a threshold to invent one); above all the failed stress check is not read here.
    assert view.refusal[-1].meets is None
    text = new_packs["fca"][1]
    results = _section(text, "Appendix A. Measured results The", "Attacks")
    assert "77.0%" not in results and "33.3%" not in results and "61.1%" not in results
    assert "90.0% [59.6–98.2]" in results  # the stress column of the weapons row
    # The sampled records and the jailbreak ASR do show, in their own sections.
    assert "77.0% [67.8–84.2]" in _section(text, "Jailbreak templates", "Signposting")
    # Illustrative failures: the signposting and jailbreak samples are judged on other terms.
    assert [s.item_id for s in view.failures()] == ["cyber-007", "benign-012"]


def test_persistence_rows_and_hazards():
    from assurance.report import sections
    from assurance.report.hazards import hazard_log

    view = build_view(make_records())
    rows = {r.label: r for r in sections.persistence_rows(view)}
    refusal = rows["Refusal of harmful prompts"]
    assert refusal.limit == 0.05 and refusal.meets is False and refusal.change == pytest.approx(-0.1)
    asr = rows["Prefill non-refusal, k = 40"]  # an old keyword-judged run: its "ASR" was non-refusal
    assert asr.limit is None and asr.meets is None and asr.worse and asr.change == pytest.approx(0.35)
    assert [r.label for r in sections.prefill_rows(view)] == ["k = 5", "k = 10", "k = 20", "k = 40"]
    assert sections.prefill_rows(view)[1].tuned.value == pytest.approx(0.15)
    assert [r.label for r in sections.jailbreak_rows(view)] == ["roleplay", "base64"]
    assert [r.label for r in sections.sampled_rows(view)] == ["Refusal of harmful prompts (refusal)"] * 3
    by_key = {h.key: h for h in hazard_log(view)}
    assert by_key["persistence"].gate_failed  # the refusal drop is over its limit
    assert not by_key["prefill"].gate_failed  # attacks are not gated
    assert by_key["persistence"].residual.likelihood == "High"  # 24 of 30 refused after stress: up to 37.3% not


def test_old_style_run_renders_every_regime(tmp_path):
    records = make_records(extended=False)
    view = build_view(records)
    assert view.battery.suites == [] and view.finetune.objective == "sft" and not view.stress_finetune
    for regime in ("fca", "nhs", "uk-ai"):
        out = tmp_path / f"{regime}.pdf"
        assert render_pack(records, regime, out) >= 4
        text = pdf_text(out)
        assert "No persistence stress test was recorded" in text and "Prefilling attack" not in text
        assert "This run predates suites" in text and "cross-entropy" in text


def test_prefill_curve_chart():
    from assurance.report import sections
    from assurance.report.charts import asr_curve_chart

    rows = sections.prefill_rows(build_view(make_records()))
    a, b = asr_curve_chart(rows), asr_curve_chart(rows)
    assert a == b and a.lstrip().startswith("<?xml")
    assert asr_curve_chart([]) == ""
