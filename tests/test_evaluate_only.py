"""Evaluate-only runs (``assure evaluate``, ``finetune.enabled: false``) on supplied models: a folder, a base model
with a PEFT adapter made here with peft, and an OpenAI-compatible endpoint served by a real local HTTP server that
runs the tiny model. Real SQLite ledgers, real packs read back with pdftotext."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
import yaml
from _pdf import assert_no_machine_paths, pdftotext
from typer.testing import CliRunner

from assurance.cli import app
from assurance.endpoint import EndpointGenerator
from assurance.evidence.hashing import tree_digest
from assurance.evidence.store import Store
from assurance.models.generate import stop_token_ids
from assurance.models.loading import load_model
from assurance.plan import EndpointTarget

runner = CliRunner()
BATTERY = {"suites": ["refusal", "prefill"], "limit_per_category": 1, "max_new_tokens": 6, "batch_size": 16}


def write_plan(tmp_path, name="plan.yaml", **fields):
    plan = {"name": "evaluate-only", "device": "cpu", "cpu_threads": 1, "battery": BATTERY,
            "report": {"regimes": ["uk-ai"], "organisation": "Test Org"}, **fields}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan))
    return path


def invoke(tmp_path, *args):
    return runner.invoke(app, [*args, "--db", f"sqlite:///{tmp_path / 'evidence.db'}", "--json"],
                         env={"ASSURE_HOME": str(tmp_path / "runs")})


def records(tmp_path, run_id, kind):
    return Store(f"sqlite:///{tmp_path / 'evidence.db'}").records(run_id, kinds=[kind])


# -- a real OpenAI-compatible server that serves the tiny model ---------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append({"path": self.path, "body": body})
        model, tok = srv.model
        if self.path == "/v1/completions":
            prompt = body["prompt"]
        elif self.path == "/v1/chat/completions":
            prompt = tok.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False)
        else:
            self.send_error(404)
            return
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with srv.lock, torch.inference_mode():  # one generation at a time on the shared model
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=body["max_tokens"],
                                 do_sample=body["temperature"] > 0, eos_token_id=stop_token_ids(model, tok),
                                 pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        choice = {"text": text} if self.path == "/v1/completions" else {"message": {"role": "assistant",
                                                                                      "content": text}}
        payload = json.dumps({"model": f"served-{body['model']}", "choices": [choice | {"index": 0}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.model = load_model(tiny_model_dir, device="cpu", dtype=torch.float32)
    srv.requests, srv.lock = [], threading.Lock()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir):
    """A LoRA adapter made with peft on the tiny model, its B matrices drawn so it really changes the outputs."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_model(tiny_model_dir, device="cpu", dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=gen) * 0.5
    out = tmp_path_factory.mktemp("adapter") / "my-adapter"
    peft_model.save_pretrained(out)
    return out


# -- the runs ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory, tiny_model_dir, adapter_dir):
    """``assure evaluate``: base + adapter as the target, the tiny model folder as the baseline."""
    tmp = tmp_path_factory.mktemp("evaluate-adapter")
    plan = write_plan(tmp, target={"kind": "adapter", "base": str(tiny_model_dir), "adapter": str(adapter_dir)},
                      baseline={"kind": "folder", "path": str(tiny_model_dir)})
    res = invoke(tmp, "evaluate", str(plan))
    assert res.exit_code in (0, 1), res.output
    return tmp, json.loads(res.stdout)


@pytest.fixture(scope="module")
def endpoint_run(tmp_path_factory, tiny_model_dir, server):
    """``assure run`` with ``finetune.enabled: false``: the endpoint as the target, the same model's folder as the
    baseline, so greedy outputs over HTTP can be held against local ones."""
    tmp = tmp_path_factory.mktemp("evaluate-endpoint")
    plan = write_plan(tmp, finetune={"enabled": False},
                      target={"kind": "endpoint", "base_url": server.base, "model": "tiny",
                              "tokenizer": str(tiny_model_dir), "workers": 2},
                      baseline={"kind": "folder", "path": str(tiny_model_dir)})
    server.requests.clear()
    res = invoke(tmp, "run", str(plan))
    assert res.exit_code in (0, 1), res.output
    return tmp, json.loads(res.stdout), list(server.requests)


def test_adapter_target_records_both_digests_and_is_gated_against_the_baseline(adapter_run, tiny_model_dir,
                                                                                adapter_dir):
    tmp, out = adapter_run
    run_id = out["run_id"]
    assert out["status"] in ("PASS", "FAIL") and out["exit_code"] == {"PASS": 0, "FAIL": 1}[out["status"]]
    supplied = {r.role: r for r in records(tmp, run_id, "supplied_model")}
    target, baseline = supplied["target"], supplied["baseline"]
    assert (target.source, target.stage, target.weights_hashed) == ("adapter", "tuned", True)
    assert target.model_digest == tree_digest(tiny_model_dir).digest
    assert target.adapter_digest == tree_digest(adapter_dir).digest
    assert (baseline.source, baseline.stage, baseline.model_digest) == ("folder", "base", target.model_digest)
    roles = {a.role: a.digest for a in records(tmp, run_id, "artifact")}
    assert roles["supplied_adapter"] == target.adapter_digest and roles["baseline_model"] == baseline.model_digest
    assert not records(tmp, run_id, "finetune")
    assert not any(r.startswith("dataset:") for r in roles)  # no fine-tune data was read or recorded
    metrics = records(tmp, run_id, "metric")
    assert {m.stage for m in metrics} == {"base", "tuned"}
    assert {(c.stage_from, c.stage_to) for c in records(tmp, run_id, "comparison")} == {("base", "tuned")}
    assert any(c.name == "max_regression" for c in records(tmp, run_id, "verdict")[0].checks)
    # the adapter was applied: the same prompts got other answers than from the base model alone
    samples = [s for s in records(tmp, run_id, "sample") if s.suite == "refusal"]
    by_stage = {st: {s.item_id: s.output for s in samples if s.stage == st} for st in ("base", "tuned")}
    assert by_stage["base"].keys() == by_stage["tuned"].keys()
    assert by_stage["base"] != by_stage["tuned"]
    res = runner.invoke(app, ["verify", run_id, "--db", f"sqlite:///{tmp / 'evidence.db'}"])
    assert res.exit_code == 0, res.output


def test_the_pack_states_the_model_supplied_and_has_no_fine_tuning_section(adapter_run):
    tmp, out = adapter_run
    text = pdftotext(out["packs"]["uk-ai"])
    assert "Model supplied" in text and "a base model with a PEFT adapter" in text
    assert "my-adapter" in text and "Baseline (before the change)" in text
    for gone in ("Fine-tuning settings", "Safety fine-tune\n", "Training loss",
                 "Does safety persist after downstream fine-tuning"):
        assert gone not in text, gone
    assert_no_machine_paths(text)


def test_endpoint_target_generates_over_http_and_records_that_no_weights_were_hashed(endpoint_run, server,
                                                                                     tiny_model_dir):
    tmp, out, requests = endpoint_run
    run_id = out["run_id"]
    target = next(r for r in records(tmp, run_id, "supplied_model") if r.role == "target")
    assert (target.source, target.weights_hashed, target.model_digest) == ("endpoint", False, None)
    assert target.endpoint_url == server.base and target.endpoint_model == "tiny"
    assert target.tokenizer_digest == tree_digest(tiny_model_dir).digest
    assert requests and {r["path"] for r in requests} == {"/v1/completions"}
    assert all(r["body"]["temperature"] == 0 and r["body"]["model"] == "tiny" for r in requests)
    battery = records(tmp, run_id, "battery")[0]
    assert battery.generation["backend"] == "endpoint"
    assert battery.generation["backend_by_stage"] == {"base": "transformers", "tuned": "endpoint"}
    # The same model, greedy, locally and over HTTP: every refusal and prefill probe gets the same answer.
    samples = records(tmp, run_id, "sample")
    by_stage = {st: {(s.suite, s.item_id, s.variant, s.k): s.output for s in samples if s.stage == st}
                for st in ("base", "tuned")}
    assert by_stage["base"] and by_stage["base"] == by_stage["tuned"]
    assert len(requests) == len(by_stage["tuned"])
    assert not records(tmp, run_id, "finetune")
    text = pdftotext(out["packs"]["uk-ai"])
    assert "endpoint: weights not hashed" in text and "Fine-tuning settings" not in text


def test_chat_api_sends_messages_and_refuses_a_prefill(server, tiny_model_dir):
    spec = EndpointTarget(kind="endpoint", base_url=server.base, model="tiny", api="chat")
    chat = EndpointGenerator(spec)
    completions = EndpointGenerator(spec.model_copy(update={"api": "completions", "tokenizer": str(tiny_model_dir)}))
    _, tok = server.model
    conversations = [[{"role": "user", "content": "Say hello."}], [{"role": "user", "content": "Name a colour."}]]
    server.requests.clear()
    got = chat(None, None, conversations, max_new_tokens=5, batch_size=8)
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    assert [r["body"]["messages"] for r in sorted(server.requests, key=lambda r: r["body"]["messages"][0]["content"])
            ] == sorted(conversations, key=lambda c: c[0]["content"])
    assert got == completions(None, tok, conversations, max_new_tokens=5, batch_size=8)
    assert chat.served == {"served-tiny": 2}
    with pytest.raises(RuntimeError, match="prefilled probe"):
        chat(None, None, conversations[:1], max_new_tokens=5, batch_size=8, prefills=["Sure"])


# -- a folder target, and fine-tune settings that do not apply ----------------------------------------------------

def test_folder_target_under_run_with_finetune_disabled_evaluates_model_as_it_is(tmp_path, tiny_model_dir):
    plan = write_plan(tmp_path, model={"path": str(tiny_model_dir)}, finetune={"enabled": False},
                      battery={**BATTERY, "suites": ["refusal"]}, report={"regimes": []})
    res = invoke(tmp_path, "run", str(plan))
    assert res.exit_code in (0, 1), res.output
    run_id = json.loads(res.stdout)["run_id"]
    (target,) = records(tmp_path, run_id, "supplied_model")
    assert (target.source, target.stage, target.model_digest) == ("folder", "tuned", tree_digest(tiny_model_dir).digest)
    assert {m.stage for m in records(tmp_path, run_id, "metric")} == {"tuned"}
    assert not records(tmp_path, run_id, "comparison") and not records(tmp_path, run_id, "finetune")
    assert records(tmp_path, run_id, "run_started")[0].plan["stress"]["enabled"] is False


# -- plans that are refused: exit 2, one line, nothing written -----------------------------------------------------

def assert_refused(tmp_path, res, *needles):
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "evidence.db").exists() and not (tmp_path / "runs").exists()
    for n in needles:
        assert n in res.output, res.output


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_duplicate_keys_are_refused_naming_the_file_both_lines_and_the_key(tmp_path, command):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\ndevice: cpu\nbattery:\n  max_new_tokens: 4\n  batch_size: 2\n  max_new_tokens: 8\n")
    assert_refused(tmp_path, invoke(tmp_path, command, str(path)), "dup.yaml", "battery.max_new_tokens",
                   "lines 4 and 6")
    path.write_text("seed: 1\nname: a\nseed: 2\n")
    assert_refused(tmp_path, invoke(tmp_path, command, str(path)), "dup.yaml", "seed", "lines 1 and 3")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_plan_file_is_refused(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    for command in ("run", "evaluate"):
        assert_refused(tmp_path, invoke(tmp_path, command, str(path)), "empty.yaml", "plan file is empty")


def test_evaluate_only_settings_that_cannot_hold_are_refused(tmp_path, tiny_model_dir):
    cases = [
        ({"target": {"kind": "folder", "path": str(tiny_model_dir)}}, "run", "target: only for an evaluate-only run"),
        ({"stress": {"enabled": True}}, "evaluate", "stress.enabled"),
        ({"target": {"kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api": "chat"},
          "battery": {"suites": ["refusal", "capability"]}}, "evaluate", "capability suite"),
        ({"target": {"kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api": "chat"},
          "battery": {"suites": ["prefill"]}}, "evaluate", "cannot send prefilling attacks"),
        ({"target": {"kind": "endpoint", "base_url": "http://user:pw@127.0.0.1:9/v1", "model": "m", "api": "chat",
                     }, "battery": {"suites": ["refusal"]}}, "evaluate", "no credentials"),
        ({"target": {"kind": "adapter", "base": str(tiny_model_dir), "adapter": str(tmp_path)}}, "evaluate",
         "adapter_config.json is missing"),
    ]
    for fields, command, needle in cases:
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump({"device": "cpu", **fields}))
        assert_refused(tmp_path, invoke(tmp_path, command, str(path)), needle)


def test_old_plans_stay_valid_and_fine_tune(tmp_path):
    from assurance.plan import plan_from_dict

    plan = plan_from_dict({"name": "old", "finetune": {"max_steps": 3}, "stress": {"enabled": True}})
    assert plan.finetune.enabled and plan.stress.enabled and plan.target is None and plan.baseline is None
