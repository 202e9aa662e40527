"""The battery runner on the tiny model: records, metrics, sampling and reproducibility."""

from __future__ import annotations

import statistics

import pytest
import torch
from pydantic import TypeAdapter

from assurance.battery.builtin import battery_from_spec, load_battery
from assurance.battery.capability import ChoiceScorer
from assurance.battery.judges import KeywordRefusalJudge as KeywordJudge
from assurance.battery.metrics import compute_metrics
from assurance.battery.runner import battery_record, evaluate, judges_used, planned_probes, refusals
from assurance.evidence.records import BatteryRecord, MetricRecord, Record, SampleRecord
from assurance.models.generate import Sampling, generate, render_prompts
from assurance.plan import BatterySpec, SamplingSpec

MAX_NEW = 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_battery():
    """Every suite, one item per category (jailbreak: 4 categories), so the whole battery runs in seconds."""
    return battery_from_spec(BatterySpec(limit_per_category=1, suite_limits={"jailbreak": 1}))


def _run(model, tok, battery, *, batch_size=16, sampling=None, progress=None):
    return evaluate(model, tok, battery, KeywordJudge(), stage="base", max_new_tokens=MAX_NEW,
                    batch_size=batch_size, progress=progress, sampling=sampling)


def test_evaluate_records_every_suite(tiny_model, small_battery):
    model, tok = tiny_model
    done: list[int] = []
    samples, metrics = _run(model, tok, small_battery, progress=done.append)
    assert sum(done) == planned_probes(small_battery) == len(samples) == small_battery.n_probes()
    by_suite = {s: [x for x in samples if x.suite == s] for s in small_battery.suite_names}
    assert {s: len(v) for s, v in by_suite.items()} == {
        "refusal": 22, "signposting": 3, "prefill": 44, "jailbreak": 11 * 12, "capability": 4}
    for s in by_suite["prefill"]:
        assert s.variant == f"prefill-k{s.k}" and s.prefill and s.attack_succeeded is (not s.refused)
        assert not s.output.startswith(s.prefill)  # the output is only the continuation
    ks = {s.k: len(tok(s.prefill, add_special_tokens=False)["input_ids"]) for s in by_suite["prefill"]}
    assert sorted(ks) == [5, 10, 20, 40] and all(abs(n - k) <= 2 for k, n in ks.items())  # re-tokenising may merge
    assert {s.variant for s in by_suite["jailbreak"]} == {f"jailbreak:{n}" for n, _ in
                                                          small_battery.suites[3].solver.templates}
    assert all(s.signposted is not None and s.judge_id == "keyword-signposting@2" for s in by_suite["signposting"])
    choice = [s for s in by_suite["capability"] if s.category == "cap_choice"]
    assert choice and choice[0].judge_id == "choice-loglik@1"
    assert all(s.correct is not None and s.answer for s in by_suite["capability"])
    assert all(s.seed is None for s in samples)
    # Every record serialises and parses back through the ledger's union.
    adapter = TypeAdapter(Record)
    for rec in samples[:5] + metrics[:5]:
        assert adapter.validate_json(rec.model_dump_json()) == rec

    names = {(m.suite, m.name) for m in metrics}
    assert names == {("refusal", "refusal_rate"), ("refusal", "over_refusal_rate"),
                     ("signposting", "signposting_rate"), ("prefill", "non_refusal_rate"),
                     ("jailbreak", "non_refusal_rate"), ("capability", "capability_score")}
    curve = {m.k: m for m in metrics if m.suite == "prefill" and m.category == "overall" and m.k}
    assert sorted(curve) == [5, 10, 20, 40] and all(m.n == 11 and m.variant == f"prefill-k{k}"
                                                     for k, m in curve.items())
    per_template = [m for m in metrics if m.suite == "jailbreak" and m.category == "overall" and m.variant]
    assert len(per_template) == 12
    assert all(m.decoding == "greedy" and m.ci_low <= m.value <= m.ci_high for m in metrics)


def test_reproducible_twice_on_cpu(tiny_model, small_battery):
    """The same battery run twice gives identical per-sample outputs and metrics,
    greedy and sampled; sampled outputs do not depend on the batch size either."""
    model, tok = tiny_model
    sampling = SamplingSpec(enabled=True, n_seeds=2, temperature=1.0, top_p=0.95)
    first = _run(model, tok, small_battery, sampling=sampling)
    second = _run(model, tok, small_battery, sampling=sampling)
    assert [s.model_dump() for s in first[0]] == [s.model_dump() for s in second[0]]
    assert [m.model_dump() for m in first[1]] == [m.model_dump() for m in second[1]]
    other_batch = _run(model, tok, small_battery, sampling=sampling, batch_size=5)
    assert [s.output for s in other_batch[0]] == [s.output for s in first[0]]

    samples, metrics = first
    assert {s.seed for s in samples} == {None, 0, 1}
    greedy = [s.output for s in samples if s.seed is None and s.suite != "capability"]
    seed0 = [s.output for s in samples if s.seed == 0 and s.suite != "capability"]
    seed1 = [s.output for s in samples if s.seed == 1 and s.suite != "capability"]
    assert seed0 != greedy and seed0 != seed1  # sampling samples, and seeds differ
    summaries = [m for m in metrics if m.seeds]
    assert summaries and all(m.seeds == [0, 1] and m.decoding == "sampled" for m in summaries)
    for m in summaries:
        per_seed = [x.value for x in metrics if x.seed is not None and
                    (x.suite, x.name, x.variant, x.k, x.category) == (m.suite, m.name, m.variant, m.k, m.category)]
        assert len(per_seed) == 2 and m.value == pytest.approx(statistics.fmean(per_seed))
        assert m.seed_min == min(per_seed) and m.seed_max == max(per_seed)
        assert m.seed_sd == pytest.approx(statistics.stdev(per_seed))


def test_sampling_is_keyed_not_global(tiny_model):
    model, tok = tiny_model
    convs = [[{"role": "user", "content": f"Tell me about the number {i}."}] for i in range(6)]
    s = Sampling(seed=3, temperature=1.0, top_p=1.0)
    batched = generate(model, tok, convs, max_new_tokens=12, batch_size=6, sampling=s)
    torch.manual_seed(999)  # the global RNG plays no part
    single = [generate(model, tok, [c], max_new_tokens=12, batch_size=1, sampling=s)[0] for c in convs]
    assert batched == single
    # A nucleus smaller than the top token leaves only the top token: greedy.
    tiny_p = Sampling(seed=3, temperature=1.0, top_p=1e-9)
    assert generate(model, tok, convs, max_new_tokens=12, batch_size=3, sampling=tiny_p) == generate(
        model, tok, convs, max_new_tokens=12, batch_size=3)


def test_choice_scorer_is_batch_independent(tiny_model):
    model, tok = tiny_model
    items = [i for i in load_battery().suites[4].items if i.choices][:6]
    prompts = render_prompts(tok, [[{"role": "user", "content": i.prompt}] for i in items])
    choices = [i.choices for i in items]
    batched = ChoiceScorer().choose(model, tok, prompts, choices, batch_size=24)
    single = ChoiceScorer().choose(model, tok, prompts, choices, batch_size=1)
    assert batched == single and all(0 <= c < len(ch) for c, ch in zip(batched, choices))


def test_metrics_from_synthetic_samples():
    def sample(suite, cat, *, variant=None, k=None, seed=None, **kw):
        base = dict(stage="tuned", item_id=f"{cat}-x", category=cat, prompt="p", output="o", judge_id="j",
                    suite=suite, variant=variant, k=k, seed=seed)
        return SampleRecord(**(base | kw))

    samples = [
        sample("refusal", "fraud", expected="refuse", refused=True),
        sample("refusal", "fraud", expected="refuse", refused=False),
        sample("refusal", "benign_fraud", expected="comply", refused=True),
        sample("prefill", "fraud", expected="refuse", refused=False, attack_succeeded=True, variant="prefill-k5", k=5),
        sample("prefill", "fraud", expected="refuse", refused=True, attack_succeeded=False, variant="prefill-k40",
               k=40),
        sample("signposting", "advice_medical", expected="signpost", refused=False, signposted=True),
        sample("capability", "cap_facts", expected="answer", refused=False, correct=False, answer="7"),
    ] + [sample("signposting", "advice_medical", expected="signpost", refused=False, signposted=s == 1, seed=s)
         for s in (0, 1, 2)]
    scoring = {"refusal": "refusal", "prefill": "attack", "signposting": "signposting", "capability": "capability"}
    ms = compute_metrics(samples, "tuned", scoring)
    get = {(m.suite, m.name, m.variant, m.category, m.seed, bool(m.seeds)): m for m in ms}
    assert get[("refusal", "refusal_rate", None, "fraud", None, False)].value == 0.5
    assert get[("refusal", "over_refusal_rate", None, "overall", None, False)].value == 1.0
    assert get[("prefill", "non_refusal_rate", "prefill-k5", "overall", None, False)].k == 5
    assert get[("prefill", "non_refusal_rate", None, "overall", None, False)].n == 2
    assert not [m for m in ms if m.name == "attack_success_rate"]  # no harm judge: no attack success claimed
    assert get[("signposting", "signposting_rate", None, "advice_medical", None, False)].value == 1.0
    assert get[("capability", "capability_score", None, "overall", None, False)].value == 0.0
    summary = get[("signposting", "signposting_rate", None, "overall", None, True)]
    assert (summary.seeds, summary.value, summary.seed_min, summary.seed_max) == ([0, 1, 2], 1 / 3, 0.0, 1.0)
    assert summary.seed_sd == pytest.approx(statistics.stdev([0, 1, 0])) and summary.n == 3


def test_old_records_still_parse():
    """Records written before suites existed (no new fields) parse, with defaults."""
    old_sample = {"kind": "sample", "stage": "base", "item_id": "harm-x-001", "category": "x", "expected": "refuse",
                  "prompt": "p", "output": "o", "refused": True, "judge_id": "keyword-refusal@1", "schema_version": 1}
    old_metric = {"kind": "metric", "stage": "base", "name": "refusal_rate", "category": "overall", "successes": 1,
                  "n": 2, "value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "schema_version": 1}
    old_battery = {"kind": "battery", "battery_id": "assurance-core", "version": "1", "digest": "sha256:x",
                   "n_items": 1, "categories": ["x"], "judge_id": "k", "judge_version": "1", "judge_digest": "d",
                   "generation": {}, "schema_version": 1}
    s = SampleRecord.model_validate(old_sample)
    assert s.suite == "refusal" and s.variant is None and s.seed is None and s.signposts == []
    m = MetricRecord.model_validate(old_metric)
    assert m.suite == "refusal" and m.decoding == "greedy" and m.seeds == []
    assert BatteryRecord.model_validate(old_battery).suites == []


def test_battery_record_fields(small_battery):
    judges = judges_used(small_battery)
    assert {j["id"] for j in judges} == {"keyword-signposting", "exact-match", "choice-loglik"}
    sampling = SamplingSpec(enabled=True, n_seeds=2)
    rec = battery_record(small_battery, KeywordJudge(), {"backend": "transformers"}, sampling)
    assert rec.suites == small_battery.suite_names and rec.suite_digests == small_battery.suite_digests()
    assert rec.digest == small_battery.digest and rec.judges == judges and rec.judge_id == "keyword-refusal"
    assert rec.generation["sampling"]["seeds"] == [0, 1] and rec.generation["backend"] == "transformers"
    assert rec.generation["n_probes"] == planned_probes(small_battery, sampling) == small_battery.n_probes() * 3 - 2
    assert TypeAdapter(Record).validate_json(rec.model_dump_json()) == rec
    assert "sampling" not in battery_record(small_battery, KeywordJudge(), {}).generation

def test_batched_judges_are_called_once_with_the_requests():
    class Batched:
        id, version, calls = "fake", "1", []

        def judge(self, prompts, outputs):
            self.calls.append((list(prompts), list(outputs)))
            return [o.startswith("No") for o in outputs]

    j = Batched()
    assert refusals(j, ["req a", "req b"], ["No.", "Yes."]) == [True, False]
    assert j.calls == [(["req a", "req b"], ["No.", "Yes."])]
    assert refusals(KeywordJudge(), ["r"], ["I can't help with that."]) == [True]
