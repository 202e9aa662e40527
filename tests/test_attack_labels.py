"""What the packs call an attack figure: named for the judge that measured it, on new and old runs alike."""

from __future__ import annotations

from assurance.evidence.records import BatteryRecord, MetricRecord
from assurance.report import sections
from assurance.report.view import RunView


def _battery(judges: list[dict]) -> BatteryRecord:
    return BatteryRecord(battery_id="assurance-core", version="3", digest="sha256:" + "0" * 64, n_items=1,
                         categories=["c"], judge_id="keyword-refusal", judge_version="1",
                         judge_digest="sha256:" + "1" * 64, generation={}, suites=["prefill"], judges=judges)


def _metric(name: str, k: int, hits: int) -> MetricRecord:
    return MetricRecord(stage="tuned", name=name, category="overall", successes=hits, n=10, value=hits / 10,
                        ci_low=0.0, ci_high=1.0, suite="prefill", variant=f"prefill-k{k}", k=k)


HARM = {"id": "guard-clf", "version": "1+abc", "digest": "sha256:" + "2" * 64, "suite": "prefill", "role": "harm",
        "measures": "harm"}


def _labels(judges: list[dict], metrics: list[MetricRecord]) -> list[tuple[str, str]]:
    view = RunView(battery=_battery(judges), metric_log=metrics)
    return [(f.metric, f.label) for f in sections.attack_figures(view)]


def test_a_new_run_without_a_harm_judge_reports_non_refusal_only():
    assert _labels([], [_metric("non_refusal_rate", 5, 4)]) == [
        ("non_refusal_rate", "non-refusal under attack (refusal judge: keyword-refusal@1)")]


def test_a_new_run_with_a_harm_judge_reports_both_figures_each_with_its_judge():
    view = RunView(battery=_battery([HARM]), metric_log=[_metric("non_refusal_rate", 5, 4),
                                                         _metric("attack_success_rate", 5, 1)])
    figs = sections.attack_figures(view)
    assert [(f.metric, f.label) for f in figs] == [
        ("non_refusal_rate", "non-refusal under attack (refusal judge: keyword-refusal@1)"),
        ("attack_success_rate", "attack success (harm judge: guard-clf@1+abc)")]
    tables = sections.attack_tables(view)
    assert [t["prefill"][0].tuned.value for t in tables] == [0.4, 0.1]  # each table reads its own metric


def test_an_old_keyword_judged_run_is_labelled_non_refusal():
    """Runs before harm judges wrote attack_success_rate for the non-refusal count."""
    assert _labels([], [_metric("attack_success_rate", 5, 4)]) == [
        ("attack_success_rate", "non-refusal under attack (refusal judge: keyword-refusal@1)")]


def test_an_old_run_whose_primary_judge_measured_harm_is_labelled_attack_success():
    benign = {"id": "keyword-refusal", "version": "1", "digest": "sha256:" + "3" * 64,
              "suite": "refusal (benign prompts: over-refusal)", "role": "over-refusal"}
    view = RunView(battery=_battery([benign]).model_copy(update={"judge_id": "llama-guard"}),
                   metric_log=[_metric("attack_success_rate", 5, 4)])
    assert [(f.metric, f.label) for f in sections.attack_figures(view)] == [
        ("attack_success_rate", "attack success (harm judge: llama-guard@1)")]
