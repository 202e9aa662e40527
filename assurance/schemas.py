"""JSON Schemas of the plan, the organisation profile and every evidence record (``assure schema``).

The committed copies in ``evidence/schema/`` are what auditors and other tools
read; a test regenerates them and fails on any drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from .evidence.attest_predicate import TestResultPredicate
from .evidence.records import RECORD_TYPES, Record
from .plan import Plan
from .profile import OrgProfile


def all_schemas() -> dict[str, dict]:
    """File name -> JSON Schema: the two input files a person writes (plan, organisation profile), then the records."""
    out = {"plan.schema.json": Plan.model_json_schema(), "profile.schema.json": OrgProfile.model_json_schema(),
           "record.schema.json": TypeAdapter(Record).json_schema()}
    for cls in RECORD_TYPES:
        kind = cls.model_fields["kind"].default
        out[f"{kind}.schema.json"] = cls.model_json_schema()
    out["attestation-predicate.schema.json"] = TestResultPredicate.model_json_schema(by_alias=True)
    return out


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        p = folder / name
        p.write_text(render(schema), encoding="utf-8")
        written.append(p)
    return written
