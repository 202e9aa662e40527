"""Layout and accessibility of the packs, read back from real PDFs as a reviewer's tools see them.

Hostile text (a 3,000-character sign-off role, a bidi override in the organisation's name, a
5,000-character model output without a space) must not break the page; digests must be copyable
whole; no machine path may be printed; the PDF is tagged, has an outline and renders the same
bytes from the same records; chart legends fit; record counts explain themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from _pdf import (
    MM,
    PAGE_MARGINS_MM,
    assert_digests_whole,
    assert_no_machine_paths,
    assert_words_inside,
    lines_below,
    pdftotext,
    record_digests,
    words,
)
from _report_records import RUN_ID, make_records
from pypdf import PdfReader

from assurance.evidence.records import (
    BatteryRecord,
    FinetuneRecord,
    JudgeValidationRecord,
    ManifestRecord,
    PackRecord,
    RunStarted,
    SampleRecord,
    SignoffRecord,
)
from assurance.report import build_view, charts, render_pack, sections
from assurance.report.counts import record_counts
from assurance.report.filters import digest, display_path, neutralise, scrub_paths
from assurance.report.render import render_html

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler not installed")

LONG_ROLE = "R" * 3000
LONG_LINE = "X" * 5000
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE


def hostile_records():
    """make_records() with text people and models could supply: a bidi override in the names,
    a 3,000-character sign-off role and a 5,000-character output without a space."""
    recs = make_records()
    start = recs[0]
    assert isinstance(start, RunStarted)
    plan = dict(start.plan)
    plan["report"] = dict(plan["report"], organisation=f"Acme {RLO}Bank plc", system_name=f"Credit {LRI}Assistant")
    recs[0] = start.model_copy(update={"plan": plan})
    first = next(i for i, r in enumerate(recs) if isinstance(r, SampleRecord))
    recs[first] = recs[first].model_copy(update={"output": LONG_LINE})
    recs.append(SignoffRecord(name="Pat Long", role=LONG_ROLE, decision="approve", regime="fca",
                              signed_at="2025-03-16T09:00:00Z"))
    return recs


@pytest.fixture(scope="module")
def hostile_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "fca.pdf"
    render_pack(hostile_records(), "fca", out, redact_outputs=False)
    return out


@pytest.fixture(scope="module")
def plain_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "fca.pdf"
    render_pack(make_records(), "fca", out)
    return out


# --- 1. untrusted text ----------------------------------------------------------------------------

def test_long_signoff_role_keeps_date_and_decision(hostile_pack):
    found = assert_words_inside(hostile_pack)
    dates = [w for w in found if w.text == "2025-03-16"]
    assert dates, "the sign-off date vanished"
    date = dates[-1]  # the sign-off block's (a checklist cell names the decision and its date earlier)
    # The decision word sits on the date's line (not one of the blank rows' "approve / reject" hints).
    assert any(w.text == "approve" and w.page == date.page and abs(w.y0 - date.y0) < 3 for w in found)
    # Every character of the role is still there, wrapped inside its cell of the sign-off block (a checklist
    # cell elsewhere names it briefly).
    block = min(w.page for w in found if w.text == "Sign-off" and w.page > 2)  # past the contents page
    role_chars = sum(w.text.count("R") for w in found if set(w.text) == {"R"} and w.page >= block)
    assert role_chars == len(LONG_ROLE)


def test_bidi_override_is_shown_not_obeyed(hostile_pack):
    text = pdftotext(hostile_pack)
    # In order, with the override shown as a marker: nothing after it was reversed.
    assert "Acme ⟨U+202E⟩Bank plc — Credit ⟨U+2066⟩Assistant" in text
    assert "clp knaB" not in text
    # The running footer carries the same text, in order, on every page.
    found = words(hostile_pack)
    footers = lines_below(found, found[0].page_height - PAGE_MARGINS_MM[2] * MM)
    n = len(PdfReader(str(hostile_pack)).pages)
    assert footers == [f"Acme ⟨U+202E⟩Bank plc — Credit ⟨U+2066⟩Assistant Page {i} of {n}" for i in range(1, n + 1)]
    assert RLO not in text and LRI not in text


def test_long_output_line_stays_on_its_pages(hostile_pack):
    found = assert_words_inside(hostile_pack)
    pieces = [w for w in found if set(w.text) == {"X"}]
    assert sum(len(w.text) for w in pieces) == len(LONG_LINE)
    assert len({round(w.y0) for w in pieces}) > 10  # wrapped over many lines, not one line off the page


@pytest.mark.parametrize("regime", ["nhs", "uk-ai"])
def test_every_regime_keeps_long_names_inside_the_margins(tmp_path, regime):
    recs = make_records()
    plan = dict(recs[0].plan)
    plan["report"] = dict(plan["report"], organisation="Example Trust " * 300, system_name="S" * 2000)
    recs[0] = recs[0].model_copy(update={"plan": plan})
    out = tmp_path / f"{regime}.pdf"
    render_pack(recs, regime, out)
    found = assert_words_inside(out)
    assert sum(w.text.count("S") for w in found if set(w.text) == {"S"}) >= 2000  # wrapped, not cut


def test_finalize_replaces_invisible_characters_everywhere():
    assert neutralise("a\u202eb\u2067c\u200ed\u200ff\u061cg\u200bh\x07i") == (
        "a⟨U+202E⟩b⟨U+2067⟩c⟨U+200E⟩d⟨U+200F⟩f⟨U+061C⟩g⟨U+200B⟩h⟨U+0007⟩i")
    assert neutralise("line one\r\nline two\tend") == "line one\nline two\tend"
    assert neutralise(42) == 42
    html = render_html(build_view(hostile_records()), "nhs")
    assert RLO not in html and LRI not in html and "⟨U+202E⟩" in html


# --- 2. digests -----------------------------------------------------------------------------------

def test_digests_in_the_section_partials_are_whole(plain_pack):
    recs = make_records()
    shown = (record_digests([r for r in recs if isinstance(r, BatteryRecord)])
             | record_digests([r for r in recs if isinstance(r, FinetuneRecord)],
                              fields=("base_model_digest", "output_digest")))
    assert len(shown) >= 10
    assert_digests_whole(pdftotext(plain_pack), shown)


def test_digest_filter_is_one_escaped_span():
    assert str(digest("sha256:" + "ab" * 32)) == '<span class="digest">sha256:' + "ab" * 32 + "</span>"
    assert "&lt;b&gt;" in str(digest("<b>"))
    assert "not recorded" in str(digest(""))


# --- 3. paths -------------------------------------------------------------------------------------

def test_display_path_shows_names_only():
    assert display_path("/tmp/pytest-7/run/adapter") == "adapter"
    assert display_path("/home/ana/data/safety.jsonl") == "safety.jsonl"
    assert display_path("/root/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B/snapshots/9f1c") == "Qwen/Qwen2.5-0.5B"
    assert display_path("C:\\Users\\ana\\labels.csv") == "labels.csv"
    assert display_path("builtin:safety") == "builtin:safety"
    assert display_path("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert scrub_paths("cannot open /var/lib/x/labels.jsonl: no such file; see https://a.org/b/c") == (
        "cannot open labels.jsonl: no such file; see https://a.org/b/c")


def test_partials_print_no_machine_paths(tmp_path):
    recs = make_records()
    where = str(tmp_path)
    for i, r in enumerate(recs):
        if isinstance(r, FinetuneRecord):
            hp = dict(r.hyperparameters, stress_data=f"{where}/stress.jsonl", safety_data=f"{where}/safety.jsonl")
            recs[i] = r.model_copy(update={"output_path": f"{where}/{r.purpose}-out", "hyperparameters": hp})
    recs.append(JudgeValidationRecord(
        judge_id="keyword-refusal", judge_version="1", judge_digest="sha256:" + "44" * 32,
        labels_file=f"{where}/labels.jsonl", labels_digest="sha256:" + "5a" * 32, labels_format="ours", n=40,
        accuracy=0.9, kappa=0.8, precision=0.9, recall=0.9, f1=0.9,
        intervals={"accuracy": {"low": 0.8, "high": 0.97}, "kappa": {"low": 0.6, "high": 0.95}},
        confusion={"tp": 18, "fp": 2, "fn": 2, "tn": 18}, n_resamples=1000, seed=0, human_refusal_rate=0.5,
        judge_refusal_rate=0.5))
    html = render_html(build_view(recs), "fca")
    assert "labels.jsonl" in html and "stress.jsonl" in html and "safety-out" in html
    assert "sha256:" + "5a" * 32 in html  # the labels file's whole digest, not its first 19 characters
    assert_no_machine_paths(html, where)


# --- 4. tagged PDF, 5. determinism, 9. page numbers ------------------------------------------------

def test_pack_is_tagged_with_language_title_and_outline(plain_pack):
    reader = PdfReader(str(plain_pack))
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root
    assert bool(root["/MarkInfo"]["/Marked"])
    assert str(root["/Lang"]) == "en-GB"
    assert RUN_ID in reader.metadata.title
    titles = []

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                titles.append(item.title)

    walk(reader.outline)
    for heading in ("Decision summary", "Results", "Attacks", "The evaluation battery and its judges", "Sign-off"):
        assert heading in titles


def test_page_numbers_are_printed(plain_pack):
    n = len(PdfReader(str(plain_pack)).pages)
    text = pdftotext(plain_pack)
    for page in range(1, n + 1):
        assert f"Page {page} of {n}" in text


def test_same_records_same_bytes_with_dates_from_the_ledger(plain_pack, tmp_path):
    # Another process, another hash seed: nothing may depend on the clock, ids or set order.
    again = tmp_path / "again.pdf"
    script = ("import sys; sys.path.insert(0, 'tests'); from pathlib import Path; "
              "from _report_records import make_records; from assurance.report import render_pack; "
              f"render_pack(make_records(), 'fca', Path({str(again)!r}))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=Path(__file__).parents[1])
    assert again.read_bytes() == plain_pack.read_bytes()
    info = PdfReader(str(plain_pack)).metadata
    assert info["/CreationDate"].startswith("D:20250314100500")  # the manifest's sealed_at
    assert info["/ModDate"].startswith("D:20250315120000")  # the latest sign-off


def test_toc_css_prints_target_page_numbers(tmp_path):
    from weasyprint import HTML

    from assurance.report.render import TEMPLATES_DIR, TemplateOnlyFetcher

    page = "<p>" + "filler text " * 400 + "</p>"
    html = ('<html lang="en-GB"><head><link rel="stylesheet" href="pack.css"></head><body>'
            '<nav class="toc"><ol><li><a href="#one">First part</a></li>'
            '<li><a href="#two">Second part</a></li></ol></nav>'
            f'<section class="major" id="one"><h2>First part</h2>{page}</section>'
            f'<section class="major" id="two"><h2>Second part</h2>{page}</section></body></html>')
    out = tmp_path / "toc.pdf"
    HTML(string=html, base_url=str(TEMPLATES_DIR) + os.sep, url_fetcher=TemplateOnlyFetcher()).write_pdf(out)
    first = pdftotext(out, "-f", "1", "-l", "1", "-layout")
    assert re.search(r"First part\s*\.[ .]*2\b", first), first
    assert re.search(r"Second part\s*\.[ .]*[3-9]\b", first), first


# --- 6. charts ------------------------------------------------------------------------------------

def test_chart_legends_lie_inside_their_figures():
    view = build_view(make_records())
    rows = sections.prefill_rows(view)
    figures = [charts.rate_figure(view.refusal, title="Refusal rate on harmful prompts (higher is safer)"),
               charts.rate_figure(view.over_refusal, title="Over-refusal", lower_is_better=True),
               charts.asr_curve_figure(rows)]
    for fig in figures:
        assert fig is not None
        with matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": 8}):
            fig.draw_without_rendering()
        box, frame = fig.legends[0].get_window_extent(), fig.bbox
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (box, frame)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels[-1] in ("Policy minimum", "Policy maximum", "After benign stress tune")


def test_chart_svg_carries_no_date_or_version():
    svg = charts.rate_chart(build_view(make_records()).refusal, title="t")
    assert "Matplotlib v" not in svg and "<dc:date>" not in svg


# --- 7. category names ----------------------------------------------------------------------------

def test_category_and_metric_ids_are_never_labels(plain_pack):
    text = re.sub(r"/\n", "/", pdftotext(plain_pack))  # a record reference wrapped after its slash
    for category_id in ("advice_self_harm", "advice_medical", "advice_financial", "cap_arithmetic"):
        assert category_id not in text
    # Metric ids may appear only inside policy keys (min_refusal_rate) and record references
    # ("records: metric tuned/refusal_rate/…", which name ledger records for an auditor), never as a label.
    for metric in ("refusal_rate", "signposting_rate", "capability_score", "attack_success_rate"):
        assert not re.search(rf"(?<![\w./:]){metric}", text), metric


# --- 8. record counts -----------------------------------------------------------------------------

def test_record_counts_explain_packs_and_signoffs():
    recs = make_records()
    signoff = recs.pop()
    assert isinstance(signoff, SignoffRecord)
    manifest = recs[-1]
    assert isinstance(manifest, ManifestRecord)
    for regime in ("fca", "nhs"):
        recs.append(PackRecord(regime=regime, path=f"/tmp/{regime}.pdf", digest="sha256:" + "0" * 64, pages=20,
                               final=True, rendered_at="2025-03-14T10:06:00Z"))
    recs.append(signoff)
    counts = record_counts(recs)
    assert counts.read == len(recs)
    assert counts.sealed == manifest.n_records == counts.before_seal
    assert counts.after_seal == {"manifest": 1, "pack": 2, "signoff": 1}
    assert counts.sealed + sum(counts.after_seal.values()) == counts.read
    sentence = counts.explanation
    assert f"sealed {counts.sealed:,} records" in sentence and f"held {counts.read:,} records" in sentence
    assert "the manifest itself" in sentence and "2 pack records of packs rendered earlier" in sentence
    assert "1 sign-off added after the seal" in sentence


def test_record_counts_unsealed_and_altered():
    recs = [r for r in make_records() if not isinstance(r, (ManifestRecord, SignoffRecord))]
    unsealed = record_counts(recs)
    assert unsealed.sealed is None and "never sealed" in unsealed.explanation
    altered = make_records()
    del altered[3]  # a record removed before the seal
    counts = record_counts(altered)
    assert not counts.consistent and "does not match" in counts.explanation
