"""The Python API (``assurance.run``, ``Store``, ``verify_run``) and the package's shape: a real run of the tiny
model through the API, checked with the API; plans given as a mapping, a file or a Plan; py.typed and the
package data the wheel must carry (.ci/wheel_check.sh builds and installs the wheel itself)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

import assurance
from assurance.api import as_plan
from assurance.report.render import TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[1]


def small_plan(model_dir: Path) -> dict:
    return {
        "name": "api",
        "model": {"path": str(model_dir)},
        "device": "cpu",
        "cpu_threads": 1,
        "battery": {"suites": ["refusal"], "limit_per_category": 1, "max_new_tokens": 6},
        "finetune": {"method": "full", "max_steps": 3, "batch_size": 4, "warmup_steps": 0, "lr": 1e-3},
        "stress": {"enabled": False},
        "report": {"regimes": ["fca"]},
    }


def test_run_a_plan_mapping_then_verify_it_with_the_api(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("ASSURE_HOME", str(tmp_path / "runs"))
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    result = assurance.run(small_plan(tiny_model_dir), store_url=url, run_root=tmp_path / "runs")
    assert isinstance(result, assurance.RunResult)
    assert result.status in ("PASS", "FAIL") and result.exit_code == {"PASS": 0, "FAIL": 1}[result.status]
    assert result.packs["fca"].is_file() and result.run_dir == tmp_path / "runs" / result.run_id
    store = assurance.Store(url)
    report = assurance.verify_run(store, result.run_id)
    assert isinstance(report, assurance.VerifyReport)
    assert report.ok and report.complete, [f.line() for f in report.findings]
    assert store.records(result.run_id)[0].plan["name"] == "api"


def test_evaluate_a_supplied_model_with_the_api(tmp_path, tiny_model_dir):
    # The same plan through evaluate: the fine-tune section is switched off, so the run holds no fine-tune
    # record, the supplied model is recorded, and the run verifies complete.
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    result = assurance.evaluate(small_plan(tiny_model_dir), store_url=url, run_root=tmp_path / "runs")
    assert result.status in ("PASS", "FAIL"), result.error
    store = assurance.Store(url)
    kinds = {r.kind for r in store.records(result.run_id)}
    assert "finetune" not in kinds and "supplied_model" in kinds, kinds
    assert store.records(result.run_id)[0].plan["finetune"]["enabled"] is False
    report = assurance.verify_run(store, result.run_id)
    assert report.ok and report.complete, [f.line() for f in report.findings]


def test_a_bad_plan_raises_plan_error_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    with pytest.raises(assurance.PlanError, match="finetune.max_step"):
        assurance.run({"finetune": {"max_step": 3}}, store_url=url, run_root=tmp_path / "runs")
    with pytest.raises(assurance.PlanError, match="not int"):
        as_plan(3)  # type: ignore[arg-type]
    assert not (tmp_path / "evidence.db").exists() and not (tmp_path / "runs").exists()


def test_plans_as_a_file_a_mapping_or_a_plan(tmp_path, monkeypatch):
    (tmp_path / "plans").mkdir()
    plan_file = tmp_path / "plans" / "plan.yaml"
    plan_file.write_text(yaml.safe_dump({"name": "from-file", "model": {"path": "model"}}))
    from_file, path = as_plan(plan_file)
    # A file's relative paths resolve against its folder (as `assure run` reads it); a mapping's against the
    # current directory; a Plan is taken as it is.
    assert path == plan_file and from_file.model.path == str(tmp_path / "plans" / "model")
    monkeypatch.chdir(tmp_path)
    from_dict, path = as_plan({"name": "from-dict", "model": {"path": "model"}})
    assert path is None and from_dict.model.path == str(tmp_path / "model")
    assert as_plan(str(plan_file))[0] == from_file
    assert as_plan(from_dict) == (from_dict, None)


def test_the_public_names_are_documented_and_listed():
    for name in ("run", "evaluate", "Store", "verify_run", "Plan", "load_plan", "RunResult", "VerifyReport"):
        value = getattr(assurance, name)
        assert name in assurance.__all__ and name in dir(assurance)
        assert (value.__doc__ or "").strip(), f"assurance.{name} has no docstring"
    with pytest.raises(AttributeError):
        assurance.no_such_name  # noqa: B018


def _setup_package_data() -> dict[str, list[str]]:
    # setup.py calls setup() when imported: read its literal instead.
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PACKAGE_DATA")
    return ast.literal_eval(node.value)


def test_package_data_and_typing_marker_are_declared():
    data = _setup_package_data()
    assert (ROOT / "assurance" / "py.typed").is_file() and "py.typed" in data["assurance"]
    # Every non-Python file under assurance/ and templates/ matches a declared pattern.
    declared: set[Path] = set()
    for package, patterns in data.items():
        base = ROOT / "templates" if package == "assurance.templates" else ROOT / package.replace(".", "/")
        for pattern in patterns:
            declared |= {p for p in base.glob(pattern) if p.is_file()}
    found = {p for p in (ROOT / "assurance").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    found |= {p for p in TEMPLATES_DIR.rglob("*") if p.is_file()}
    assert found - declared == set()
    assert (ROOT / "assurance" / "battery" / "data" / "assurance-attacks-v1.json") in declared


def test_dependencies_are_the_ones_imported():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in meta["dependencies"]}
    assert {"sqlalchemy", "pypdf", "transformers"} <= names and "accelerate" not in names
    assert "transformers>=4.56" in meta["dependencies"]  # from_pretrained(dtype=...)
    assert set(meta["optional-dependencies"]) >= {"vllm", "postgres", "bench", "test"}
