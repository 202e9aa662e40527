"""The published JSON Schemas in evidence/schema/ must match the models."""

from pathlib import Path

from typer.testing import CliRunner

from assurance.cli import app
from assurance.schemas import all_schemas, render

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "evidence" / "schema"


def test_committed_schemas_match_the_models():
    schemas = all_schemas()
    committed = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert committed == set(schemas), "run `assure schema` and commit evidence/schema/"
    for name, schema in schemas.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == render(schema), (
            f"evidence/schema/{name} drifted from the code: run `assure schema` (and bump schema_version "
            "with a migration if stored records would serialise differently)"
        )


def test_every_record_field_is_documented():
    for name, schema in all_schemas().items():
        if name == "record.schema.json":
            continue
        defs = [schema, *schema.get("$defs", {}).values()]
        for d in defs:
            for field, prop in d.get("properties", {}).items():
                if field in ("kind", "schema_version") and name != "plan.schema.json":
                    continue
                if "$ref" in prop:  # nested section: documented on its own class
                    continue
                assert prop.get("description"), f"{name}: field {field!r} has no docstring"


def test_schema_command_writes_files(tmp_path):
    res = CliRunner().invoke(app, ["schema", "--out", str(tmp_path)])
    assert res.exit_code == 0
    assert (tmp_path / "plan.schema.json").exists() and (tmp_path / "manifest.schema.json").exists()
