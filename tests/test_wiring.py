"""Judges, paired statistics and public benchmarks wired into a run, end to end.

One reduced pipeline run on the tiny model with two judges (keyword + an HTTP
judge served by a real http.server on 127.0.0.1) and AdvBench as an extra
suite; then the ledger, the auditor's verify, the gate and the packs are
checked. Plus the failure paths (a malformed benchmark, a secret in the plan)
and unit checks of the wiring.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader
from typer.testing import CliRunner

from assurance.battery.builtin import load_battery
from assurance.battery.runner import evaluate
from assurance.battery.wiring import compare_stages, cross_judge, over_refusal_judge
from assurance.battery.judges import KeywordRefusalJudge
from assurance.cli import app
from assurance.evidence.hashing import tree_digest
from assurance.evidence.records import SampleRecord
from assurance.evidence.store import Store
from assurance.plan import PlanError, plan_from_dict
from assurance.policy import decide

runner = CliRunner()
BENCH = Path(__file__).parent / "fixtures" / "benchmarks"
SECRET = "sk-test-wiring-0123456789"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.auth.append(self.headers.get("Authorization"))
        text = body["messages"][-1]["content"]
        reply = text.split("[ASSISTANT REPLY]", 1)[-1]
        # Deliberately not the keyword judge: disagreements must be possible.
        answer = "REFUSED" if any(w in reply.lower() for w in ("sorry", "cannot", "can't")) else "COMPLIED"
        data = json.dumps({"model": body["model"], "system_fingerprint": "fp_wiring",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def judge_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.auth = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()


def write_plan(folder: Path, model_dir, **battery) -> Path:
    plan = {
        "name": "wiring",
        "model": {"path": str(model_dir)},
        "device": "cpu",
        "cpu_threads": 1,
        "battery": {"suites": ["refusal", "prefill"], "limit_per_category": 1, "max_new_tokens": 6,
                    "batch_size": 32, "comparison": {"n_resamples": 500}, **battery},
        "finetune": {"method": "lora", "max_steps": 2, "batch_size": 4, "warmup_steps": 0, "lr": 1e-3},
        "stress": {"max_steps": 1, "batch_size": 4, "warmup_steps": 0},
        "report": {"organisation": "Test Org"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def pdf_text(path) -> str:
    return "".join("".join(page.extract_text().split()) for page in PdfReader(path).pages)


@pytest.fixture(scope="module")
def wired_run(tmp_path_factory, tiny_model_dir, judge_server):
    tmp = tmp_path_factory.mktemp("wiring")
    (tmp / "bench").mkdir()
    shutil.copy(BENCH / "harmful_behaviors.csv", tmp / "bench" / "harmful_behaviors.csv")
    plan = write_plan(tmp, tiny_model_dir, judges=[
        {"kind": "keyword"},
        {"kind": "http", "model": "judge-lm", "base_url": judge_server.base, "api_key_env": "ASSURE_TEST_JUDGE_KEY",
         "workers": 2, "retries": 0, "timeout": 10},
    ], extra_suites=[{"name": "advbench", "path": "bench/harmful_behaviors.csv", "expected_rows": 5}])
    db = f"sqlite:///{tmp / 'evidence.db'}"
    env = {"ASSURE_HOME": str(tmp / "runs"), "ASSURE_TEST_JUDGE_KEY": SECRET}
    result = runner.invoke(app, ["run", str(plan), "--db", db, "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    out = json.loads(result.stdout)
    assert out["error"] is None, out
    return dict(tmp=tmp, db=db, out=out, records=Store(db).records(out["run_id"]))


def test_ledger_holds_agreement_comparison_and_extra_suite(wired_run, judge_server):
    records = wired_run["records"]
    kinds = {r.kind for r in records}
    assert {"agreement", "comparison", "judge_verdicts"} <= kinds

    agreements = [r for r in records if r.kind == "agreement"]
    assert {a.stage for a in agreements} == {"base", "tuned", "stress"}
    for a in agreements:
        assert a.judge_a == "keyword-refusal@2" and a.judge_b == "http:judge-lm@1" and a.scope == "all"
        assert a.n > 0 and 0 <= a.agreement <= 1 and -1 <= a.kappa <= 1
        assert len(a.disagreements) == round((1 - a.agreement) * a.n)
    verdicts = [r for r in records if r.kind == "judge_verdicts"]
    assert {v.stage for v in verdicts} == {"base", "tuned", "stress"}
    assert all(v.served == {"judge-lm fp_wiring": len(v.item_ids)} for v in verdicts)
    # Secondary verdicts are stored beside, never as, the primary's samples.
    assert {s.judge_id for s in records if s.kind == "sample" and s.suite == "refusal"} == {"keyword-refusal@2"}

    comps = [r for r in records if r.kind == "comparison"]
    assert {(c.stage_from, c.stage_to) for c in comps} == {("base", "tuned"), ("tuned", "stress")}
    assert {(c.suite, c.metric) for c in comps} == {("refusal", "refusal_rate"), ("prefill", "non_refusal_rate")}
    overall = [c for c in comps if c.category == "overall" and c.variant is None]
    assert len(overall) == 4
    for c in comps:
        assert c.ci_low <= c.delta <= c.ci_high and c.n_resamples == 500 and c.seed == 0
        assert c.delta == pytest.approx(c.value_to - c.value_from)
        assert 0 <= c.mcnemar_p_value <= 1 and c.mcnemar_b + c.mcnemar_c <= c.n
    assert any(c.k is not None for c in comps) and any(c.category not in ("overall",) for c in comps)

    extra = [r for r in records if r.kind == "metric" and r.suite == "extra:advbench"]
    assert {m.stage for m in extra} == {"base", "tuned", "stress"}
    assert {m.name for m in extra} == {"refusal_rate"} and all(m.n > 0 for m in extra)
    art = next(r for r in records if r.kind == "artifact" and r.role == "dataset:benchmark:advbench")
    path = wired_run["tmp"] / "bench" / "harmful_behaviors.csv"
    assert art.path == str(path.resolve()) and art.digest == tree_digest(path).digest
    manifest = next(r for r in records if r.kind == "manifest")
    assert manifest.artifacts["dataset:benchmark:advbench"] == art.digest
    battery = next(r for r in records if r.kind == "battery")
    assert [e["suite"] for e in battery.extra_suites] == ["extra:advbench"]
    assert battery.extra_suites[0]["file_digest"] == art.digest
    assert "extra:advbench" not in battery.suites  # beside the battery, outside its digest
    roles = {j.get("role") for j in battery.judges}
    assert "secondary" in roles


def test_the_api_key_reaches_the_server_but_never_the_ledger(wired_run, judge_server):
    assert judge_server.auth and set(judge_server.auth) == {f"Bearer {SECRET}"}
    raw = (wired_run["tmp"] / "evidence.db").read_bytes()
    assert SECRET.encode() not in raw
    started = wired_run["records"][0]
    assert started.plan["battery"]["judges"][1]["api_key_env"] == "ASSURE_TEST_JUDGE_KEY"


def test_verify_passes_and_packs_show_the_new_sections(wired_run):
    out, db = wired_run["out"], wired_run["db"]
    ok = runner.invoke(app, ["verify", out["run_id"], "--db", db])
    assert ok.exit_code == 0, ok.output
    for regime, path in out["packs"].items():
        text = pdf_text(path)
        for heading in ("Pairedcomparisonofthestages", "Agreementbetweenjudges", "Publicbenchmarksrunbesidethebattery",
                        "extra:advbench", "McNemar", "http:judge-lm@1"):
            assert heading in text, (regime, heading)


def test_gate_ignores_extra_suite_metrics(wired_run):
    records = wired_run["records"]
    metrics = [r for r in records if r.kind == "metric"]
    plan = plan_from_dict(records[0].plan)
    verdict = next(r for r in records if r.kind == "verdict")
    assert decide(plan.policy, metrics, comparisons=records).checks == verdict.checks
    flipped = [m.model_copy(update={"value": 1.0 - m.value, "successes": m.n - m.successes})
               if m.suite.startswith("extra:") else m for m in metrics]
    without = [m for m in metrics if not m.suite.startswith("extra:")]
    assert (decide(plan.policy, flipped, comparisons=records).checks
            == decide(plan.policy, without, comparisons=records).checks == verdict.checks)
    assert not any("advbench" in c.subject for c in verdict.checks)


def test_malformed_benchmark_exits_2_naming_the_row_and_writes_nothing(tmp_path, tiny_model_dir):
    plan = write_plan(tmp_path, tiny_model_dir,
                      extra_suites=[{"name": "advbench", "path": str(BENCH / "malformed_advbench.csv")}])
    db_file = tmp_path / "evidence.db"
    result = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{db_file}", "--json"],
                           env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert result.exit_code == 2, result.output
    assert "malformed_advbench.csv row 2" in result.output and "extra_suites[0]" in result.output
    assert not db_file.exists() and not (tmp_path / "runs").exists()


def test_plan_refuses_secrets_and_judge_fields_of_another_kind(tmp_path, tiny_model_dir):
    with pytest.raises(PlanError, match="secrets are not allowed"):
        plan_from_dict({"battery": {"judges": [{"kind": "http", "model": "m", "api_key": "sk-x"}]}})
    with pytest.raises(PlanError, match="no credentials"):
        plan_from_dict({"battery": {"judges": [{"kind": "http", "model": "m", "base_url": "http://u:p@h/v1"}]}})
    with pytest.raises(PlanError, match=r"\['path'\] do not apply to a http judge"):
        plan_from_dict({"battery": {"judges": [{"kind": "http", "model": "m", "path": "x"}]}})
    with pytest.raises(PlanError, match="listed more than once"):
        plan_from_dict({"battery": {"extra_suites": [{"name": "xstest", "path": "a"}, {"name": "xstest", "path": "b"}]}})
    # A model judge whose folder is missing fails before anything is written.
    plan = write_plan(tmp_path, tiny_model_dir, judges=[{"kind": "keyword"}, {"kind": "model", "path": "no-such-guard"}])
    db_file = tmp_path / "evidence.db"
    result = runner.invoke(app, ["run", str(plan), "--db", f"sqlite:///{db_file}"],
                           env={"ASSURE_HOME": str(tmp_path / "runs")})
    assert result.exit_code == 2 and "battery.judges[1]" in result.output, result.output
    assert not db_file.exists()


# -- unit checks of the wiring -----------------------------------------------------------------------

class _HarmJudge:
    """A guard-like judge: says "safe" to everything; it must not score benign prompts."""

    id, version, digest, measures = "fake-guard", "1", "sha256:" + "0" * 64, "harm"

    def __init__(self):
        self.seen: list[str] = []

    def judge(self, prompts, outputs):
        self.seen += prompts
        return [True] * len(prompts)


def test_harm_primary_does_not_feed_over_refusal():
    battery = load_battery("assurance-core", "2").select(["refusal"]).limited(1)
    guard = _HarmJudge()
    benign = over_refusal_judge([guard])
    assert (benign.id, benign.version) == ("keyword-refusal", "2")

    def gen(model, tok, messages, **kw):
        return ["I'm sorry, I can't help with that."] * len(messages)

    samples, metrics = evaluate(None, None, battery, guard, stage="base", max_new_tokens=4, batch_size=8,
                                generator=gen, benign_judge=benign)
    harmful = [s for s in samples if s.expected == "refuse"]
    benign_samples = [s for s in samples if s.expected == "comply"]
    assert harmful and benign_samples
    assert {s.judge_id for s in harmful} == {"fake-guard@1"}
    assert {s.judge_id for s in benign_samples} == {"keyword-refusal@2"}
    assert set(guard.seen) == {s.prompt for s in harmful}
    over = next(m for m in metrics if m.name == "over_refusal_rate" and m.category == "overall")
    assert over.value == 1.0  # every benign prompt was refused, and the keyword judge saw it


def _sample(stage, item, refused, category="c1", expected="refuse", suite="refusal", variant=None, k=None):
    return SampleRecord(stage=stage, item_id=item, category=category, expected=expected, prompt="p", output="o",
                        refused=refused, judge_id="keyword-refusal@1", suite=suite, variant=variant, k=k,
                        attack_succeeded=(not refused) if suite == "prefill" else None)


def test_compare_stages_pairs_items_and_tests_the_change():
    base = [_sample("base", f"i{n}", refused=n < 2, category="c1" if n < 5 else "c2") for n in range(10)]
    tuned = [_sample("tuned", f"i{n}", refused=n < 9, category="c1" if n < 5 else "c2") for n in range(10)]
    benign = [_sample("base", "b1", True, expected="comply"), _sample("tuned", "b1", False, expected="comply")]
    pre = [_sample(st, "i0", r, suite="prefill", variant=f"prefill-k{k}", k=k)
           for st, r in (("base", False), ("tuned", True)) for k in (5, 10)]
    comps = compare_stages(base + tuned + benign + pre, "base", "tuned", n_resamples=200, seed=3)
    ref = next(c for c in comps if c.suite == "refusal" and c.category == "overall")
    assert (ref.n, ref.value_from, ref.value_to) == (10, 0.2, 0.9)  # the benign item is not paired
    assert (ref.mcnemar_b, ref.mcnemar_c, ref.mcnemar_method) == (0, 7, "exact-binomial")
    assert ref.mcnemar_p_value == pytest.approx(2 / 2 ** 7)
    assert ref.delta == pytest.approx(0.7) and ref.ci_low <= 0.7 <= ref.ci_high and ref.seed == 3
    assert {c.category for c in comps if c.suite == "refusal"} == {"overall", "c1", "c2"}
    asr = [c for c in comps if c.suite == "prefill"]
    assert {(c.category, c.k) for c in asr} == {("overall", None), ("overall", 5), ("overall", 10), ("c1", None)}
    assert all(c.value_from == 1.0 and c.value_to == 0.0 for c in asr)


def test_cross_judge_compares_harm_judges_on_harmful_items_only():
    samples = [_sample("base", "h1", True), _sample("base", "h2", False),
               _sample("base", "b1", False, expected="comply")]
    guard = _HarmJudge()

    class Wrapped(KeywordRefusalJudge):  # a harm judge with the BaseJudge interface
        measures = "harm"
        id = "fake-guard"  # type: ignore[assignment]

        def verdicts(self, prompts, outputs):
            from assurance.battery.judges import Verdict
            return [Verdict(refused=r, label="safe" if r else "unsafe") for r in guard.judge(prompts, outputs)]

    recs, agreements = cross_judge([KeywordRefusalJudge(), Wrapped()], samples, "base")
    assert recs[0].item_ids == ["h1", "h2"] and recs[0].measures == "harm"
    (a,) = agreements
    assert (a.scope, a.n, a.disagreements, a.a_refused, a.b_refused) == ("harmful", 2, ["h2"], 1, 2)
