"""The plan's judge entries: one spec per judge kind, told apart by ``kind``; old recorded plans still read."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from assurance.battery.judges import (
    HttpJudgeSpec,
    KeywordJudgeSpec,
    KeywordRefusalJudge,
    ModelJudgeSpec,
    RefusalJudgeV2,
)
from assurance.evidence.hashing import json_digest
from assurance.evidence.records import RunStarted
from assurance.plan import BatterySpec, JudgeSpec, PlanError, plan_from_dict
from assurance.resume import ResumeError, recorded_plan

SPEC = TypeAdapter(JudgeSpec)

# Every default of the one flat JudgeSpec of d406631, as its run_started records store each judge entry.
OLD_FLAT = {"kind": "keyword", "path": None, "model_kind": "guard", "prompt_format": "auto", "true_labels": None,
            "classifier_input": "response", "measures": None, "max_new_tokens": 20, "batch_size": 8,
            "allow_pickle": False, "trust_remote_code": False, "model": None, "base_url": None,
            "api_key_env": "ASSURE_JUDGE_API_KEY", "style": "refusal", "seed": 0, "max_tokens": 16, "timeout": 60.0,
            "retries": 2, "workers": 4, "unparsed": "complied"}


def test_old_recorded_flat_entries_still_validate():
    """Copied from a plan recorded by d406631 (keyword, a classifier, a guard over HTTP)."""
    recorded = [OLD_FLAT,
                OLD_FLAT | {"kind": "model", "path": "/abs/guard", "model_kind": "classifier",
                            "true_labels": ["refusal"]},
                OLD_FLAT | {"kind": "http", "model": "judge-m", "base_url": "http://127.0.0.1:8000/v1",
                            "style": "guard"}]
    plan = plan_from_dict({"battery": {"judges": recorded}}, source="run x: recorded plan")
    keyword, model, http = plan.battery.judges
    assert keyword == KeywordJudgeSpec(version="1")  # old code ran v1: a recorded entry must stay on it
    assert isinstance(model, ModelJudgeSpec) and (model.path, model.model_kind, model.true_labels) == (
        "/abs/guard", "classifier", ["refusal"])
    assert model.judge_measures == "refusal"
    assert isinstance(http, HttpJudgeSpec) and (http.model, http.style, http.judge_measures) == (
        "judge-m", "guard", "harm")
    # Read back, the entries hold only their own kind's fields.
    dumped = plan.model_dump(mode="json")["battery"]["judges"]
    assert dumped[0] == {"kind": "keyword", "version": "1"} and "model" not in dumped[1] and "path" not in dumped[2]
    assert plan_from_dict(plan.model_dump(mode="json")) == plan


def test_an_old_field_away_from_its_default_still_fails():
    with pytest.raises(PlanError, match=r"\['style'\] do not apply to a keyword judge"):
        plan_from_dict({"battery": {"judges": [OLD_FLAT | {"style": "guard"}]}})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SPEC.validate_python({"kind": "keyword", "phrases": ["no"]})


def test_kind_picks_the_spec_and_defaults_to_keyword():
    assert SPEC.validate_python({}) == KeywordJudgeSpec()
    assert isinstance(SPEC.validate_python({"kind": "model", "path": "g"}), ModelJudgeSpec)
    assert BatterySpec().judges == [KeywordJudgeSpec()]
    with pytest.raises(ValidationError, match="Field required"):
        SPEC.validate_python({"kind": "http"})  # an http judge needs the model name
    with pytest.raises(ValidationError, match="guard model measures harm"):
        SPEC.validate_python({"kind": "model", "path": "g", "measures": "refusal"})


def test_secrets_are_refused_by_every_kind():
    for kind in ("keyword", "model", "http"):
        with pytest.raises(ValidationError, match="secrets are not allowed"):
            SPEC.validate_python({"kind": kind, "path": "g", "model": "m", "token": "t"})
    with pytest.raises(ValidationError, match="secrets are not allowed"):
        HttpJudgeSpec.model_validate({"kind": "http", "model": "m", "api_key": "sk-1"})


def test_specs_build_their_judges(tmp_path, monkeypatch):
    assert isinstance(KeywordJudgeSpec().build(), RefusalJudgeV2)
    assert isinstance(KeywordJudgeSpec(version="1").build(), KeywordRefusalJudge)
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-from-env")
    http = SPEC.validate_python({"kind": "http", "model": "m", "base_url": "http://h:1/v1",
                                 "api_key_env": "MY_JUDGE_KEY"}).build()
    assert http._api_key == "sk-from-env" and "sk-from-env" not in str(http.config())
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "config.json").write_text("{}")
    model = SPEC.validate_python({"kind": "model", "path": "guard", "model_kind": "classifier",
                                  "measures": "harm", "batch_size": 3}).build(tmp_path, device="cpu")
    assert (model.path, model.kind, model.measures, model.batch_size) == (
        (tmp_path / "guard").resolve(), "classifier", "harm", 3)


def test_an_old_run_resumes_with_its_plan_file():
    """A run started by d406631 recorded its judges flat; the same plan file given beside --resume matches."""
    plan = plan_from_dict({"battery": {"judges": [{"kind": "keyword"}]}})
    old_dump = plan.model_dump(mode="json")
    old_dump["battery"]["judges"] = [OLD_FLAT]
    started = RunStarted(run_id="r1", plan=old_dump, plan_digest=json_digest(old_dump), tool_version="0",
                         started_at="2026-01-01T00:00:00Z")
    resumed = recorded_plan(started, plan, None)
    # The resumed run keeps the judge it started with (v1), though the same file read today means v2.
    assert resumed.battery.judges == [KeywordJudgeSpec(version="1")] and plan.battery.judges == [KeywordJudgeSpec()]
    assert resumed.model_copy(update={"battery": plan.battery}) == plan
    explicit = plan_from_dict({"battery": {"judges": [{"kind": "keyword", "version": "2"}]}})
    with pytest.raises(ResumeError, match="differs from the plan recorded"):
        recorded_plan(started, explicit, None)  # asking for v2 by name is another plan
    other = plan_from_dict({"battery": {"judges": [{"kind": "http", "model": "m"}]}})
    with pytest.raises(ResumeError, match="differs from the plan recorded"):
        recorded_plan(started, other, None)


def test_a_run_recorded_without_a_keyword_version_resumes_on_v1():
    """Code between the judge-spec union and v2 recorded ``{"kind": "keyword"}``: that meant v1."""
    plan = plan_from_dict({})
    old_dump = plan.model_dump(mode="json")
    old_dump["battery"]["judges"] = [{"kind": "keyword"}]
    started = RunStarted(run_id="r2", plan=old_dump, plan_digest=json_digest(old_dump), tool_version="0",
                         started_at="2026-01-01T00:00:00Z")
    assert recorded_plan(started, None, None).battery.judges[0].build().key == "keyword-refusal@1"
    assert recorded_plan(started, plan, None).battery.judges[0].version == "1"
    # A new run records its version, so reading it back changes nothing.
    new = plan.model_dump(mode="json")
    started_new = RunStarted(run_id="r3", plan=new, plan_digest=json_digest(new), tool_version="0",
                             started_at="2026-01-01T00:00:00Z")
    assert recorded_plan(started_new, plan, None) == plan
    assert recorded_plan(started_new, None, None).battery.judges[0].build().key == "keyword-refusal@2"
