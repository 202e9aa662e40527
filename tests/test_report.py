"""Unit tests of pack rendering from hand-built evidence records (no model, no ledger)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from _report_records import BASE_DIGEST, BENIGN, HARMFUL, NASTY, RUN_ID, SECRET_TAIL, make_records, pdf_text

from assurance.evidence.records import EnvironmentRecord, RunFailed
from assurance.report import build_view, render_pack
from assurance.report import render as render_mod
from assurance.report.charts import rate_chart


@pytest.mark.parametrize("regime", ["fca", "nhs", "uk-ai"])
def test_each_regime_renders(tmp_path, regime, recording_fetcher):
    out = tmp_path / f"{regime}.pdf"
    pages = render_pack(make_records(), regime, out)
    assert pages >= 4 and out.is_file()
    assert not list(tmp_path.glob("*.part")), "temp file left behind"
    text = pdf_text(out)
    flat = "".join(text.split())  # digests may wrap across lines
    assert RUN_ID in flat and BASE_DIGEST in flat
    assert "FAIL" in text and "DRAFT" not in text
    assert "Acme Bank plc" in text and "Page 1 of" in text
    # Only the stylesheet and the data: charts were asked for, all inside templates/.
    root = render_mod.TEMPLATES_DIR.resolve().as_uri()
    assert recording_fetcher and all(u.startswith(("data:", root)) for u in recording_fetcher)


def test_untrusted_output_is_literal_and_never_fetched(tmp_path, recording_fetcher):
    out = tmp_path / "fca.pdf"
    render_pack(make_records(), "fca", out, redact_outputs=False)
    flat = "".join(pdf_text(out).split())
    assert "".join(NASTY.split()) in flat
    assert not any("passwd" in u or "example.com" in u or u.startswith("http") for u in recording_fetcher)


def test_fetcher_refuses_everything_but_templates_and_data(tmp_path):
    fetcher = render_mod.TemplateOnlyFetcher()
    for url in ("http://example.com/x.css", "https://example.com/x.css", "file:///etc/passwd",
                render_mod.TEMPLATES_DIR.as_uri() + "/../pyproject.toml", "ftp://example.com/x"):
        with pytest.raises(render_mod.FetchRefused):
            fetcher.fetch(url)
    css = fetcher.fetch((render_mod.TEMPLATES_DIR / "pack.css").as_uri())
    assert css.content_type == "text/css" and b"@page" in css.read()
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"


def test_redaction_default_and_opt_out(tmp_path):
    hidden, shown = tmp_path / "hidden.pdf", tmp_path / "shown.pdf"
    render_pack(make_records(), "nhs", hidden)
    render_pack(make_records(), "nhs", shown, redact_outputs=False)
    hidden_text, shown_text = ("".join(pdf_text(p).split()) for p in (hidden, shown))
    assert "".join(SECRET_TAIL.split()) not in hidden_text
    assert "redacted:" in hidden_text and "sampletuned/cyber-007" in hidden_text
    assert "".join(SECRET_TAIL.split()) in shown_text


def test_failed_run_is_draft(tmp_path):
    view = build_view(make_records(verdict="PASS", failed=True))
    assert not view.final
    out = tmp_path / "draft.pdf"
    render_pack(make_records(verdict="PASS", failed=True), "uk-ai", out)
    text = pdf_text(out)
    assert "DRAFT" in text and "NOT FOR SIGN-OFF" in text and "PASS" not in text


def test_unsealed_run_is_draft(tmp_path):
    records = make_records(verdict="PASS", manifest=False)
    assert not build_view(records).final
    out = tmp_path / "unsealed.pdf"
    render_pack(records, "fca", out)
    text = pdf_text(out)
    assert "DRAFT" in text and "PASS" not in text


def test_bare_failed_run_still_renders(tmp_path):
    records = [make_records()[0],
               RunFailed(stage="provenance", error="model folder not found", failed_at="2025-03-14T09:31:00Z")]
    out = tmp_path / "bare.pdf"
    assert render_pack(records, "nhs", out) >= 1
    text = pdf_text(out)
    assert "DRAFT" in text and "model folder not found" in text


def test_view_gathers_metrics_and_deltas():
    view = build_view(make_records(verdict="PASS"))
    assert view.final and view.run_id == RUN_ID and view.base_model_digest == BASE_DIGEST
    assert [r.category for r in view.refusal] == [*HARMFUL, "overall"]
    weapons = view.refusal[0]
    assert weapons.delta == pytest.approx(0.3) and weapons.meets
    self_harm = view.refusal[2]
    assert self_harm.threshold == 0.9  # per-category override from the plan
    assert [r.category for r in view.over_refusal] == [*BENIGN, "overall"]
    assert [s.item_id for s in view.failures()] == ["cyber-007", "benign-012"]


def test_chart_is_deterministic():
    rows = build_view(make_records()).refusal
    a, b = rate_chart(rows, title="t"), rate_chart(rows, title="t")
    assert a == b and a.lstrip().startswith("<?xml") and "<dc:date>" not in a


def test_failed_render_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "x.pdf"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    # The PDF is written from the laid-out Document (so its metadata can be set first).
    monkeypatch.setattr(render_mod.HTML, "render", boom)
    with pytest.raises(RuntimeError):
        render_pack(make_records(), "fca", out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler not installed")
def test_pages_rasterise(tmp_path):
    out = tmp_path / "fca.pdf"
    pages = render_pack(make_records(), "fca", out)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(out), str(tmp_path / "p")], check=True)
    assert len(list(tmp_path.glob("p-*.png"))) == pages



def test_a_resumed_run_names_the_resuming_environment(tmp_path):
    records = make_records()
    env = next(r for r in records if isinstance(r, EnvironmentRecord))
    resumed = env.model_copy(update={"accelerator": "NVIDIA H200 (CUDA 12.8)", "device": "cuda:0"})
    records.insert(records.index(env) + 2, resumed)
    view = build_view(records)
    assert view.environment == env and view.resumed_environments == [resumed]
    out = tmp_path / "p.pdf"
    render_pack(records, "fca", out)
    assert "resumed by another process" in pdf_text(out) and "H200" in pdf_text(out)
