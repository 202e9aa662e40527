"""The "Recipe comparison" section: a deep-alignment run beside a plain-SFT run of the same ledger.

Fixtures: the main run is _report_records' extended run (deep-alignment + constrained recipe);
the comparison run is the same plan tuned with plain SFT, built with the real record classes,
with its own run id, recipe, prefill ASR and refusal counts, and its own verdict.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from _report_records import RUN_ID, make_records, metric_record, pdf_text

from assurance.evidence.records import FinetuneRecord, ManifestRecord, MetricRecord, RunStarted
from assurance.evidence.store import Store
from assurance.report import build_view, comparison_records, render_pack
from assurance.report.comparison import recipe_comparison
from assurance.report.render import render_html

SFT_RUN_ID = "01931f5a-1111-7c3d-9e4f-5a6b7c8d9e0f"
SFT_ASR = {"base": (12, 16, 18, 19), "tuned": (9, 12, 14, 16), "stress": (12, 15, 17, 18)}  # of 20, per k
SFT_REFUSAL = {"tuned": 26, "stress": 21}  # of 30, overall
SFT_OVER = {"tuned": 5, "stress": 4}  # of 20, overall


def sft_records(*, manifest: bool = True):
    """The comparison run: the main fixture with plain SFT, its own id and its own measured numbers."""
    out = []
    for rec in make_records(verdict="PASS", manifest=manifest):
        if isinstance(rec, RunStarted):
            plan = {**rec.plan, "name": "credit-assistant-q3 (plain SFT comparison)"}
            rec = rec.model_copy(update={"run_id": SFT_RUN_ID, "plan": plan})
        elif isinstance(rec, FinetuneRecord) and rec.purpose == "safety":
            rec = rec.model_copy(update={"recipe": "sft", "objective": "sft", "augmentation": "none",
                                         "recipe_settings": {}, "literature": [],
                                         "hyperparameters": {**rec.hyperparameters, "lr": 3e-4}})
        elif isinstance(rec, MetricRecord) and rec.decoding == "greedy" and rec.category == "overall":
            if rec.suite == "prefill" and rec.k is not None:
                hits = SFT_ASR[rec.stage][(5, 10, 20, 40).index(rec.k)]
                rec = metric_record(rec.stage, rec.name, "overall", hits, 20, suite="prefill", variant=rec.variant, k=rec.k)
            elif rec.suite == "refusal" and rec.stage in SFT_REFUSAL:
                hits, n = (SFT_REFUSAL, 30) if rec.name == "refusal_rate" else (SFT_OVER, 20)
                rec = metric_record(rec.stage, rec.name, "overall", hits[rec.stage], n)
        out.append(rec)
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


def body(text: str) -> str:
    """The Recipe comparison section's text (its heading is the last "Recipe comparison" in a pack)."""
    t = flat(text)
    start = t.rindex("Recipe comparison")
    return t[start:t.index("Illustrative failures", start)]


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    out = {}
    for regime in ("fca", "nhs", "uk-ai"):
        path = root / f"{regime}.pdf"
        render_pack(make_records(), regime, path, comparison=sft_records())
        out[regime] = (path, pdf_text(path))
    return out


@pytest.mark.parametrize("regime", ["fca", "nhs", "uk-ai"])
def test_section_shows_both_runs(packs, regime):
    _, text = packs[regime]
    t = flat(text)
    assert "Recipe comparison" in t
    sec = body(text)
    assert sec.startswith("Recipe comparison This run is shown")
    squashed = "".join(sec.split())
    # Both run ids, recipes, learning rates and verdicts.
    assert RUN_ID in squashed and SFT_RUN_ID in squashed
    assert "deep-alignment+constrained" in squashed and "sft" in sec
    assert "0.0002" in sec and "0.0003" in sec
    assert "FAIL" in sec and "PASS" in sec
    # Overall refusal and over-refusal, tuned and stress, each with its Wilson interval.
    for hits, n in ((27, 30), (24, 30), (26, 30), (21, 30), (3, 20), (5, 20), (4, 20)):
        rec = metric_record("tuned", "refusal_rate", "overall", hits, n)
        assert f"{rec.value * 100:.1f}% [{rec.ci_low * 100:.1f}–{rec.ci_high * 100:.1f}]" in sec, (hits, n)
    # Prefill ASR per k for both runs and both stages.
    for k in (5, 10, 20, 40):
        assert f"Prefill ASR, k = {k}" in sec
    for hits in (2, 3, 5, 7, 8, 11, 14, 9, 12, 16, 15, 17, 18):
        rec = metric_record("tuned", "attack_success_rate", "overall", hits, 20)
        assert f"{rec.value * 100:.1f}% [{rec.ci_low * 100:.1f}–{rec.ci_high * 100:.1f}]" in sec, hits
    # The neutral sentence and the measured tally (deep-alignment lower at all 4 k when tuned).
    assert "Qi et al. (ICLR 2025) predict a lower prefilling attack success rate" in sec
    assert "These are the measured numbers for this model" in sec
    assert "lower than the comparison run’s at 4 of the 4 values of k" in sec
    # The key figures point to the section.
    # The decision summary points to the section, with the smallest and the largest k (never one k alone).
    assert "".join(("beside run 01931f5a (sft): tuned prefill ASR at k = 5 10.0% [2.8–30.1] against 45.0% [25.8–65.8]; "
                    "at k = 40 35.0% [18.1–56.7] against 80.0% [58.4–91.9]").split()) in "".join(t.split())


def test_comparison_rows_are_the_recorded_metrics():
    view = build_view(make_records())
    cmp = recipe_comparison(view, sft_records(), SFT_RUN_ID)
    assert cmp.status == "ok" and cmp.other_id == SFT_RUN_ID and cmp.deep_alignment_involved
    labels = [r.label for r in cmp.rows]
    assert labels == ["Refusal of harmful prompts", "Refusal of benign prompts (over-refusal)",
                      "Prefill ASR, k = 5", "Prefill ASR, k = 10", "Prefill ASR, k = 20", "Prefill ASR, k = 40"]
    k40 = cmp.rows[-1]
    assert (k40.this_tuned.successes, k40.this_stress.successes) == (7, 14)
    assert (k40.other_tuned.successes, k40.other_stress.successes) == (16, 18)
    # Only greedy, overall, suite prefill, variant prefill-k<k>: never the per-category or all-k records.
    for r in cmp.rows[2:]:
        for rec in (r.this_tuned, r.this_stress, r.other_tuned, r.other_stress):
            assert rec.category == "overall" and rec.variant == f"prefill-k{r.k}" and rec.decoding == "greedy"
    assert dict(cmp.same)["Base model (digest)"] is True
    tally = cmp.prefill_tally("tuned")
    assert tally["n"] == 4 and tally["lower"] == 4 and tally["higher"] == 0


def test_missing_comparison_run_gives_a_note(tmp_path):
    out = tmp_path / "fca.pdf"
    records = make_records()
    render_pack(records, "fca", out, report={"compare_with": "01999999-dead-beef"}, comparison=None)
    t = flat(pdf_text(out))
    sec = body(pdf_text(out))
    assert "Comparison run not found" in sec and "01999999-dead-beef" in "".join(sec.split())
    assert "Prefill ASR" not in sec and "not found in the ledger" in t  # the key figures say so too


def test_incomplete_comparison_run_shows_no_numbers(tmp_path):
    out = tmp_path / "nhs.pdf"
    render_pack(make_records(), "nhs", out, comparison=sft_records(manifest=False))
    sec = body(pdf_text(out))
    assert "The comparison run is incomplete, so its figures are not shown" in sec
    assert "the run was never sealed (no manifest record)" in sec
    assert "Prefill ASR, k = 5" not in sec and "DRAFT (run incomplete)" in sec


def test_without_comparison_nothing_changes():
    view = build_view(make_records())
    assert recipe_comparison(view, None, None) is None
    plain = render_html(view, "fca")
    assert "Recipe comparison" not in plain
    assert render_html(view, "fca", comparison=None, report={"compare_with": None}) == plain


def test_comparison_records_from_a_ledger(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.append(SFT_RUN_ID, sft_records())
    assert comparison_records(store, None) is None
    assert comparison_records(store, "") is None
    assert comparison_records(store, "no-such-run") is None  # unknown: None, and the pack shows a note
    assert comparison_records(store, "latest") is None  # never "the newest run"
    got = comparison_records(store, SFT_RUN_ID)
    assert got and isinstance(got[0], RunStarted) and got[0].run_id == SFT_RUN_ID
    assert comparison_records(store, SFT_RUN_ID[:13])[0].run_id == SFT_RUN_ID  # an unambiguous prefix


def test_plan_report_field():
    from assurance.plan import plan_from_dict

    assert plan_from_dict({}).report.compare_with is None
    assert plan_from_dict({"report": {"compare_with": SFT_RUN_ID}}).report.compare_with == SFT_RUN_ID


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler not installed")
def test_comparison_pages_rasterise(packs, tmp_path):
    path, _ = packs["fca"]
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(tmp_path / "p")], check=True)
    assert list(tmp_path.glob("p-*.png"))


def test_manifest_fixture_sanity():
    assert any(isinstance(r, ManifestRecord) for r in sft_records())
    assert not any(isinstance(r, ManifestRecord) for r in sft_records(manifest=False))
