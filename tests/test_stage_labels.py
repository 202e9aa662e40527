"""Stage labels a reader sees: Base / Tuned for a run that fine-tuned, Baseline / Target for an evaluate-only
run (a supplied target and baseline), in every regime's pack (read back with pdftotext) and in ``assure show``.
The records keep the stage names ``base`` and ``tuned`` either way."""

from __future__ import annotations

import io

import pytest
from _pdf import pdftotext
from _report_records import BASE_DIGEST, RUN_ID, TUNED_DIGEST, make_records
from rich.console import Console

from assurance.console import show_run
from assurance.evidence.records import ArtifactRecord, FinetuneRecord, MetricRecord, SuppliedModelRecord
from assurance.regimes import REGIMES
from assurance.report.render import render_pack
from assurance.stage_labels import is_evaluate_only, legend_label, stage_label, stage_labels


def evaluate_only_records() -> list:
    """``make_records``'s run as ``assure evaluate`` records it: no fine-tune, no stress stage, no training data; the
    baseline supplied (the baseline's metrics are the ``base`` stage, the target's the ``tuned`` stage)."""
    kept = [r for r in make_records() if not isinstance(r, FinetuneRecord) and getattr(r, "stage", None) != "stress"
            and not (isinstance(r, ArtifactRecord) and (r.role == "adapter" or r.role.startswith("dataset:")))]
    supplied = [
        SuppliedModelRecord(role="target", stage="tuned", source="folder", model_path="/models/acme-chat-1b-v2",
                            model_digest=TUNED_DIGEST, weights_hashed=True),
        SuppliedModelRecord(role="baseline", stage="base", source="folder", model_path="/models/acme-chat-1b",
                            model_digest=BASE_DIGEST, weights_hashed=True),
    ]
    return kept[:3] + supplied + kept[3:]


def test_one_function_decides_the_label_from_the_run():
    assert [stage_label(s, False) for s in ("base", "tuned", "stress")] == ["Base", "Tuned", "Stress"]
    assert [stage_label(s, True) for s in ("base", "tuned")] == ["Baseline", "Target"]
    assert stage_label("tuned", True, lower=True) == "target" and stage_labels(True)["base"] == "Baseline"
    # chart legends come from the same module
    assert [legend_label(s, False) for s in ("base", "tuned", "stress")] == \
        ["Base model", "Safety-tuned", "After benign stress tune"]
    assert [legend_label(s, True) for s in ("base", "tuned")] == ["Baseline model", "Target model"]
    assert is_evaluate_only(evaluate_only_records()) and not is_evaluate_only(make_records())
    # only the labels change: the recorded stage names stay base and tuned
    assert {m.stage for m in evaluate_only_records() if isinstance(m, MetricRecord)} == {"base", "tuned"}


@pytest.fixture(scope="module")
def packs(tmp_path_factory) -> dict[tuple[str, bool], str]:
    """Every regime's pack, for the evaluate-only run and for the run that fine-tuned, as pdftotext reads them."""
    out = tmp_path_factory.mktemp("labels")
    texts = {}
    for evaluate_only in (True, False):
        records = evaluate_only_records() if evaluate_only else make_records()
        for regime in REGIMES:
            path = out / f"{regime}-{evaluate_only}.pdf"
            render_pack(records, regime, path)
            texts[(regime, evaluate_only)] = pdftotext(path)
    return texts


@pytest.mark.parametrize("regime", REGIMES)
def test_evaluate_only_packs_say_target_and_baseline_not_tuned(packs, regime):
    text = packs[(regime, True)]
    assert "Target [95% CI]" in text and "Baseline [95% CI]" in text
    assert "Δ target" in text and "− baseline" in text
    assert "Harmful prompts refused: target " in text  # the key figures, made in Python
    flat = " ".join(text.split())  # table cells wrap
    assert "at stages baseline, target" in flat and "baseline → target" in flat  # requirement map, gate checks
    for gone in ("Tuned [95% CI]", "Base [95% CI]", "Δ tuned", "Tuned refusal", " tuned model", "The base model",
                 "base → tuned", "stages base, tuned", "refused: tuned", "against the base model"):
        assert gone not in flat, (regime, gone)
    # "tuned" is left only in references to records (metric tuned/…, sample tuned/…: the stored stage names) and in
    # the verdict's reason as the run recorded it


@pytest.mark.parametrize("regime", REGIMES)
def test_packs_of_a_run_that_fine_tuned_keep_base_and_tuned(packs, regime):
    text = packs[(regime, False)]
    assert "Tuned [95% CI]" in text and "Base [95% CI]" in text and "Δ tuned" in text
    assert "Target [95% CI]" not in text and "Baseline [95% CI]" not in text


def _show(records: list) -> str:
    console = Console(file=io.StringIO(), width=220, record=True)
    show_run(records, console=console)
    return console.export_text()


def test_show_labels_the_stages_of_an_evaluate_only_run():
    shown = _show(evaluate_only_records())
    assert "target − baseline" in shown and "tuned" not in shown.split("Harmful requests refused")[1].split("\n")[2]
    header = next(line for line in shown.splitlines() if "category" in line and "n" in line)
    assert "baseline" in header and "target" in header and "tuned" not in header and " base " not in header
    fine_tuned = next(line for line in _show(make_records()).splitlines() if "category" in line)
    assert "base" in fine_tuned and "tuned" in fine_tuned and "target" not in fine_tuned


def test_assure_show_of_a_stored_evaluate_only_run(tmp_path):
    """``assure show`` on the run stored in a real SQLite ledger: the stored stages stay base and tuned."""
    from typer.testing import CliRunner

    from assurance.cli import app
    from assurance.evidence.store import Store

    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    store.append(RUN_ID, evaluate_only_records())
    res = CliRunner().invoke(app, ["show", RUN_ID, "--db", f"sqlite:///{tmp_path / 'e.db'}"],
                             env={"COLUMNS": "220"})
    assert res.exit_code == 0, res.output
    assert "target − baseline" in res.stdout and "tuned − base" not in res.stdout
    assert {m.stage for m in store.records(RUN_ID, kinds=["metric"])} == {"base", "tuned"}
